/**
 * argv → a typed configuration, in one place: the flag table ({@link FLAGS}: each flag's parser, default,
 * client option and doc line, from which `--help`, the client's options and the docs' options table
 * come), the exit codes, and the validation of every value (a bad value is a usage error, exit 2, with a message that
 * names the option and says what is allowed). The flags a curl or wget user reaches for are here under
 * their names (docs/http-get.md shows them side by side).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import {
  MAX_MS,
  addFlags,
  buildOptions,
  certificates,
  collect,
  flag,
  integer,
  metricsFileFrom,
  nonEmpty,
  seconds,
  type Flag,
  setPath,
  headerFlag,
  headersOf,
  userAgentFlag,
  insecureFlag,
  metricsFileFlag,
  quietFlags,
  traceFromEnv,
  versionAndHelpFlags,
  withTrace,
} from '@bulwark/cli-support';
import { HTTP_CLIENT_DEFAULTS, defaultCacheDir, type HttpClientOptions } from '@bulwark/http';
import { METRICS_FILE_ENV } from './metrics.js';

/** The cache directory's name under $XDG_CACHE_HOME (or ~/.cache): the CLI's own, not the library's default. */
const CACHE_APP_NAME = 'bulwark-http-get';

/** The version `--version` prints (and the User-Agent carries): package.json's. */
export const VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

/** Exit codes (printed by `--help`, listed in docs/http-get.md). */
export const EXIT = Object.freeze({
  /** The body was served (from any tier; a stale copy with a warning on stderr). */
  OK: 0,
  /** An unexpected internal error (a bug): please report it. */
  INTERNAL: 1,
  /** Bad arguments: unknown option, invalid value, missing or extra URL. */
  USAGE: 2,
  /** Only a stale cached copy was available and `--fail-on-stale` was given (nothing written). */
  STALE_REFUSED: 3,
  /** Network or protocol failure with a single source: refused, reset, timed out, cut short, malformed, body too large, redirect loop. */
  NETWORK: 7,
  /** HTTP error: the server answered with a status it does not serve (≥ 400, after retries for 408/425/429/500/502/503/504). */
  HTTP: 22,
  /** All tiers failed: fallbacks or a cached copy existed, and none could serve. */
  ALL_TIERS_FAILED: 69,
  /** I/O error: the output file or stdout could not be written (a full disk, an I/O error). */
  IO: 74,
  /** Interrupted by SIGINT (Ctrl-C): nothing partial left behind. */
  INTERRUPTED: 130,
  /** stdout was closed before everything was written (e.g. `| head`): 128 + SIGPIPE, as a shell reports. */
  BROKEN_PIPE: 141,
  /** Terminated by SIGTERM: nothing partial left behind. */
  TERMINATED: 143,
});

/** How long a stale-while-revalidate refresh may keep the process after the body is out (the CLI's own). */
export const REFRESH_BOUND_MS = 2_000;

/** The User-Agent sent unless `-A` or `-H` says otherwise. */
const USER_AGENT = `http-get/${VERSION} (bulwark)`;

/** What to do with a status the client does not serve (≥ 400). */
export type FailMode = 'fail' | 'no-fail' | 'fail-with-body';

/** The client options the flags set (its names), built from {@link FLAGS}. */
export type ClientFlags = Readonly<
  Pick<
    HttpClientOptions,
    | 'totalTimeoutMs'
    | 'attemptTimeoutMs'
    | 'connectTimeoutMs'
    | 'retry'
    | 'maxBodyBytes'
    | 'maxRedirects'
    | 'followRedirects'
    | 'decompress'
    | 'maxStaleMs'
    | 'headers'
    | 'tls'
  >
>;

export interface CliConfig {
  /** The URL, or `-`: read it from stdin (main does, before the run). */
  readonly url: string;
  readonly fallbacks: readonly string[];
  /** The client's options, from the flags' rows in {@link FLAGS} (the cache is the run's). */
  readonly client: ClientFlags;
  /** The caller's trace, continued from `TRACEPARENT` (its headers are in `client.headers`), if any. */
  readonly traceId: string | undefined;
  /** Why `TRACEPARENT` was ignored (the run warns), if it was. */
  readonly traceProblem: string | undefined;
  /** `-k`: certificates are not checked (`client.tls` says so; the run warns). */
  readonly insecure: boolean;
  readonly cacertPath: string | undefined;
  /** The cache directory, or `undefined` with `--no-cache`. */
  readonly cacheDir: string | undefined;
  /** Write the body here (atomically) instead of stdout. */
  readonly output: string | undefined;
  /** `-O`: the output file is named after the URL. */
  readonly remoteName: boolean;
  /** `-i`: the status line and headers before the body. */
  readonly include: boolean;
  /** `-I`: a HEAD request; the status line and headers only. */
  readonly head: boolean;
  readonly fail: FailMode;
  readonly json: boolean;
  readonly verbose: boolean;
  readonly quiet: boolean;
  readonly failOnStale: boolean;
  readonly color: boolean | undefined;
  readonly progress: boolean;
  /** Write the run's Prometheus metrics here (absolute, `*.prom`, atomically) at the end of the run. */
  readonly metricsFile: string | undefined;
}

export type ParseResult =
  | { readonly kind: 'run'; readonly config: CliConfig }
  | { readonly kind: 'exit'; readonly code: number; readonly stdout: string; readonly stderr: string };

function httpUrl(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new InvalidArgumentError('expected an absolute http:// or https:// URL.');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new InvalidArgumentError(`expected an http:// or https:// URL, not ${u.protocol}//.`);
  }
  return u.href;
}

/** The URL argument: an http(s) URL, or `-` (read from stdin). */
function urlArgument(value: string): string {
  return value === '-' ? value : httpUrl(value);
}

/** `--cacert FILE`: a readable file of PEM certificates (read again when the run starts). */
function cacertFile(value: string): string {
  certificates(nonEmpty('file of PEM certificates')(value));
  return value;
}

/** The longest URL read from stdin (`http-get -`). */
const MAX_STDIN_URL = 64 * 1024;

/**
 * The URL of `http-get -`: the first line of stdin that is not blank, trimmed, checked like an argument.
 * Reads at most 64 KiB.
 */
export async function readUrlFrom(stdin: NodeJS.ReadableStream): Promise<string | { problem: string }> {
  let text = '';
  for await (const chunk of stdin as AsyncIterable<Buffer | string>) {
    text += chunk.toString();
    const line = text.split(/\r?\n/).find((l, i, all) => l.trim() !== '' && i < all.length - 1);
    if (line !== undefined) {
      text = line;
      break;
    }
    if (text.length > MAX_STDIN_URL)
      return { problem: `the URL on stdin is longer than ${MAX_STDIN_URL} bytes` };
  }
  const url = text.trim();
  if (url === '') return { problem: 'no URL on stdin (the argument "-" reads it from there)' };
  try {
    return httpUrl(url);
  } catch (error) {
    return { problem: `the URL on stdin is invalid. ${(error as Error).message}` };
  }
}

/** The file name `-O` saves `url` under: the last path segment (no query), or why there is none. */
export function remoteName(url: string): string | { problem: string } {
  const u = new URL(url);
  const segment = u.pathname.split('/').at(-1) ?? '';
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    name = segment;
  }
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    return { problem: `the URL has no file name to save as (${JSON.stringify(u.pathname)}); give -o FILE` };
  }
  return name;
}

export function exitCodeTable(): string {
  const rows: [number, string][] = [
    [EXIT.OK, 'body served (from any tier; a stale copy is announced on stderr)'],
    [EXIT.INTERNAL, 'internal error (a bug)'],
    [EXIT.USAGE, 'usage error (bad option or value)'],
    [EXIT.STALE_REFUSED, 'only a stale copy was available and --fail-on-stale was given'],
    [EXIT.NETWORK, 'network/protocol failure: refused, reset, timeout, cut short, malformed, too large'],
    [EXIT.HTTP, 'HTTP error: a status that is not served (>= 400, after retries for 408/425/429/5xx)'],
    [EXIT.ALL_TIERS_FAILED, 'all tiers failed (fallbacks or a cached copy existed, none could serve)'],
    [EXIT.IO, 'I/O error writing the output file or stdout (e.g. disk full)'],
    [EXIT.INTERRUPTED, 'interrupted (Ctrl-C); no partial output file; a second Ctrl-C exits at once'],
    [EXIT.BROKEN_PIPE, 'stdout closed early (e.g. piped into head): stopped quietly'],
    [EXIT.TERMINATED, 'terminated (SIGTERM); no partial output file'],
  ];
  return rows.map(([code, text]) => `  ${String(code).padStart(3)}  ${text}`).join('\n');
}

const MS = integer(1, MAX_MS, 'milliseconds');
const OFF = 'off';

/**
 * Every flag, in the order of `--help` and of docs/http-get.md's options table (test/docs.test.ts checks
 * it row for row). A row with a `target` sets that path of the client's options; its default is the
 * client's (`HTTP_CLIENT_DEFAULTS`), read here, never restated. Rules across flags are in {@link parseArgs}.
 */
export const FLAGS: readonly Flag[] = [
  flag({
    flags: '--fallback <url>',
    parse: collect(httpUrl),
    defaultText: 'none',
    doc: 'a mirror of the same resource, tried after the primary (repeatable)',
  }),
  // --- time
  flag({
    flags: '--timeout-ms <ms>',
    parse: MS,
    default: HTTP_CLIENT_DEFAULTS.totalTimeoutMs,
    target: 'totalTimeoutMs',
    doc: 'total deadline of the network tiers (all attempts, backoffs, fallbacks)',
  }),
  flag({
    flags: '-m, --max-time <seconds>',
    parse: seconds(),
    target: 'totalTimeoutMs',
    doc: 'the same in seconds, like curl (e.g. 2.5)',
  }),
  flag({
    flags: '--attempt-timeout-ms <ms>',
    parse: MS,
    defaultText: 'derived from the total',
    target: 'attemptTimeoutMs',
    doc: 'time per attempt until the response headers (see docs)',
  }),
  flag({
    flags: '--attempt-timeout <seconds>',
    parse: seconds(),
    target: 'attemptTimeoutMs',
    doc: 'the same in seconds',
  }),
  flag({
    flags: '--connect-timeout-ms <ms>',
    parse: MS,
    default: HTTP_CLIENT_DEFAULTS.connectTimeoutMs,
    target: 'connectTimeoutMs',
    doc: 'TCP/TLS connect timeout per connection',
  }),
  flag({
    flags: '--connect-timeout <seconds>',
    parse: seconds(),
    target: 'connectTimeoutMs',
    doc: 'the same in seconds, like curl',
  }),
  flag({
    flags: '--retries <n>',
    parse: integer(0, 100),
    default: HTTP_CLIENT_DEFAULTS.retry.maxAttempts - 1,
    // retry.maxAttempts = n + 1; and one source's own attempts never open its origin's breaker: in a
    // one-shot run it would only cut its retries short (and end in "circuit open" instead of the status)
    apply: (n: number | undefined, options) => {
      const attempts = (n ?? HTTP_CLIENT_DEFAULTS.retry.maxAttempts - 1) + 1;
      setPath(options, 'retry.maxAttempts', attempts);
      const strategy = HTTP_CLIENT_DEFAULTS.circuitBreaker.strategy;
      if (strategy?.type === 'consecutive' && strategy.threshold < attempts)
        setPath(options, 'circuitBreaker.strategy', { ...strategy, threshold: attempts });
    },
    doc: 'retries per source after its first attempt (for network errors, timeouts, 408/425/429/5xx)',
  }),
  // --- the request
  userAgentFlag('`http-get/<version> (bulwark)`', USER_AGENT),
  // after -A: a -H 'User-Agent: …' wins; an empty value removes the header, a default one included
  headerFlag('http-get', true, '"Name: value" sent with the request (repeatable; "Name:" removes a default)'),
  flag({
    flags: '--compressed',
    defaultText: 'on',
    // after -H: -H 'Accept-Encoding:' (no value) turns decoding off too
    apply: (on: boolean | undefined, options) => {
      options['decompress'] =
        (on ?? HTTP_CLIENT_DEFAULTS.decompress) && headersOf(options)['accept-encoding'] !== '';
    },
    doc: 'ask for gzip/deflate/br and decode it (on by default)',
  }),
  flag({ flags: '--no-compressed', doc: 'no Accept-Encoding; bodies as sent' }),
  flag({
    flags: '-L, --location',
    defaultText: 'on',
    apply: (on: boolean | undefined, options) => {
      options['followRedirects'] = on ?? HTTP_CLIENT_DEFAULTS.followRedirects;
    },
    doc: 'follow redirects (on by default; credentials are not sent to another origin)',
  }),
  flag({ flags: '--no-location', doc: 'do not follow redirects: a 3xx is the answer' }),
  flag({
    flags: '--max-redirects <n>',
    parse: integer(0, 100),
    default: HTTP_CLIENT_DEFAULTS.maxRedirects,
    target: 'maxRedirects',
    doc: 'redirects followed per attempt',
  }),
  flag({
    flags: '-I, --head',
    defaultText: OFF,
    doc: 'a HEAD request: print the status line and headers only',
  }),
  insecureFlag(),
  flag({
    flags: '--cacert <file>',
    parse: cacertFile,
    defaultText: "the system's",
    apply: (path: string | undefined, options) => {
      if (path !== undefined) options['tls'] = { ca: readFileSync(path, 'utf8') };
    },
    doc: 'trust the PEM certificates in FILE (for a private CA)',
  }),
  flag({
    flags: '--max-body-bytes <bytes>',
    parse: integer(0, Number.MAX_SAFE_INTEGER, 'bytes'),
    default: HTTP_CLIENT_DEFAULTS.maxBodyBytes,
    target: 'maxBodyBytes',
    doc: 'abort and fail when the body exceeds this size',
  }),
  // --- the cache
  flag({
    flags: '--cache-dir <dir>',
    parse: nonEmpty('directory path'),
    defaultText: `\`$XDG_CACHE_HOME/${CACHE_APP_NAME}\`, else \`~/.cache/${CACHE_APP_NAME}\``,
    doc: 'the durable cache directory, created with mode 0700',
  }),
  flag({
    flags: '--no-cache',
    defaultText: OFF,
    doc: 'neither read nor write the cache (no fresh or stale tier)',
  }),
  flag({
    flags: '--max-stale-ms <ms>',
    parse: integer(0, Number.MAX_SAFE_INTEGER, 'milliseconds'),
    defaultText: `the response's \`stale-if-error\`, else \`${HTTP_CLIENT_DEFAULTS.defaultMaxStaleMs}\` (24 h)`,
    target: 'maxStaleMs',
    doc: 'serve a stale copy at most this many milliseconds past its freshness when every source failed',
  }),
  flag({
    flags: '--fail-on-stale',
    defaultText: OFF,
    doc: `exit ${EXIT.STALE_REFUSED} instead of serving a stale copy`,
  }),
  // --- the output
  flag({
    flags: '-o, --output <file>',
    parse: nonEmpty('file path'),
    defaultText: 'stdout',
    doc: 'write the body to FILE atomically (temp file + rename, through a symlink; never torn)',
  }),
  flag({
    flags: '-O, --remote-name',
    defaultText: OFF,
    doc: "write the body to a file named like the URL's last path segment",
  }),
  flag({
    flags: '-i, --include',
    defaultText: OFF,
    doc: 'the status line and headers before the body',
  }),
  flag({
    flags: '--fail',
    defaultText: 'on',
    doc: `a status >= 400 is an error: exit ${EXIT.HTTP}, no body (the default)`,
  }),
  flag({
    flags: '--no-fail',
    doc: 'a status >= 400 that is an answer (404, 403, …) is served like any: body out, exit 0',
  }),
  flag({ flags: '--fail-with-body', defaultText: OFF, doc: `like --no-fail, but exit ${EXIT.HTTP}` }),
  flag({
    flags: '--json',
    defaultText: OFF,
    doc: 'print metadata as one JSON document on stdout (schemaVersion 2); the body goes only to --output',
  }),
  flag({
    flags: '-v, --verbose',
    defaultText: OFF,
    doc: 'show the ladder as it happens on stderr (tiers, attempts, cache)',
  }),
  ...quietFlags('no notes, warnings or progress'),
  flag({
    flags: '--no-color',
    defaultText: 'colour on a terminal',
    doc: 'no colour on stderr (also: NO_COLOR=1, or stderr not a terminal)',
  }),
  flag({
    flags: '--no-progress',
    defaultText: 'bar on a terminal',
    doc: 'no progress bar (shown only on a terminal, for bodies over 1 MiB, not with -q, -v or --json)',
  }),
  metricsFileFlag(METRICS_FILE_ENV),
  ...versionAndHelpFlags(),
];

function program(): Command {
  const cmd = new Command('http-get')
    .description(
      'GET a URL and print the body, degrading step by step instead of failing:\n' +
        'fresh cache -> primary -> fallback mirror(s) -> stale cache -> explicit failure.',
    )
    .argument('<url>', 'the http:// or https:// URL to fetch ("-": read it from stdin)', urlArgument);
  return addFlags(cmd, FLAGS, VERSION)
    .addHelpText('after', `\nExit codes:\n${exitCodeTable()}\n\nDocs: docs/http-get.md`)
    .showSuggestionAfterError(true)
    .allowExcessArguments(false);
}

/** The values of the flags that rules across flags and the app read (the rest go to the client). */
interface RawOptions {
  fallback?: string[];
  head?: boolean;
  insecure?: boolean;
  cacert?: string;
  cacheDir?: string;
  cache: boolean;
  maxStaleMs?: number;
  failOnStale?: boolean;
  output?: string;
  remoteName?: boolean;
  include?: boolean;
  fail: boolean;
  failWithBody?: boolean;
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  silent?: boolean;
  color: boolean;
  progress: boolean;
  metricsFile?: string;
}

const usage = (message: string): ParseResult => ({
  kind: 'exit',
  code: EXIT.USAGE,
  stdout: '',
  stderr: `http-get: ${message}\nTry 'http-get --help' for more information.\n`,
});

/** Parses `argv` (without the node and script paths). Never exits the process. */
export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ParseResult {
  let stdout = '';
  let stderr = '';
  const cmd = program()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => (stdout += s),
      writeErr: (s) => (stderr += s),
    });
  try {
    cmd.parse([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end parsing with exit code 0
      if (error.exitCode === 0) return { kind: 'exit', code: EXIT.OK, stdout, stderr };
      return usage(stderr.trim().replace(/^error: /, '') || error.message);
    }
    throw error;
  }
  const o = cmd.opts<RawOptions>();
  const given = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
  const url = cmd.processedArgs[0] as string;
  const quiet = o.quiet === true || o.silent === true;
  if (quiet && o.verbose) return usage('choose one of --quiet (or -s) and --verbose');
  for (const [seconds, ms] of [
    ['--max-time', '--timeout-ms'],
    ['--attempt-timeout', '--attempt-timeout-ms'],
    ['--connect-timeout', '--connect-timeout-ms'],
  ] as const) {
    const key = (flag: string): string => flag.slice(2).replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
    if (given(key(seconds)) && given(key(ms))) return usage(`choose one of ${seconds} (seconds) and ${ms}`);
  }
  if (o.cache === false && (o.cacheDir !== undefined || o.maxStaleMs !== undefined)) {
    return usage(
      `--no-cache cannot be combined with ${o.cacheDir !== undefined ? '--cache-dir' : '--max-stale-ms'}`,
    );
  }
  if (o.output !== undefined && o.remoteName) return usage('choose one of -o/--output and -O/--remote-name');
  if (o.insecure && o.cacert !== undefined) return usage('choose one of -k/--insecure and --cacert');
  const failFlags = [
    given('fail') && o.fail ? '--fail' : '',
    given('fail') && !o.fail ? '--no-fail' : '',
    o.failWithBody ? '--fail-with-body' : '',
  ].filter(Boolean);
  if (failFlags.length > 1) return usage(`choose one of ${failFlags.join(' and ')}`);
  if (o.head && (o.failWithBody || (given('fail') && !o.fail)))
    return usage('-I/--head has no body to show: --no-fail and --fail-with-body do not apply');
  let output = o.output === '-' ? undefined : o.output;
  if (o.remoteName) {
    if (url === '-') return usage('-O/--remote-name needs the URL on the command line, not "-"');
    const name = remoteName(url);
    if (typeof name !== 'string') return usage(name.problem);
    output = name;
  }
  // the option wins over the environment; an empty variable is unset
  const metricsPath = metricsFileFrom(o.metricsFile, env, METRICS_FILE_ENV);
  if (typeof metricsPath === 'object') return usage(metricsPath.problem);
  const noColorEnv = env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '';
  const client = buildOptions(FLAGS, cmd.opts()) as ClientFlags;
  const trace = traceFromEnv(env);
  const traced = trace !== undefined && 'traceId' in trace ? trace : undefined;
  return {
    kind: 'run',
    config: {
      url,
      fallbacks: o.fallback ?? [],
      client: { ...client, headers: withTrace(client.headers, traced) } as ClientFlags,
      traceId: traced?.traceId,
      traceProblem: trace !== undefined && 'problem' in trace ? trace.problem : undefined,
      insecure: o.insecure === true,
      cacertPath: o.cacert,
      cacheDir: o.cache === false ? undefined : (o.cacheDir ?? defaultCacheDir(env, CACHE_APP_NAME)),
      output,
      remoteName: o.remoteName === true,
      include: o.include === true,
      head: o.head === true,
      fail: o.failWithBody ? 'fail-with-body' : o.fail === false ? 'no-fail' : 'fail',
      json: o.json === true,
      verbose: o.verbose === true,
      quiet,
      failOnStale: o.failOnStale === true,
      color: o.color === false || noColorEnv ? false : undefined,
      progress: o.progress !== false,
      metricsFile: metricsPath,
    },
  };
}
