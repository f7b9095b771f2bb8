/**
 * argv → a typed configuration, in one place: the defaults, the option table `--help` prints, the exit
 * codes, and the validation of every value (a bad value is a usage error, exit 2, with a message that
 * names the option and says what is allowed).
 */
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { HTTP_CLIENT_DEFAULTS, defaultCacheDir } from '@bulwark/http';
import { METRICS_FILE_ENV, metricsFileProblem } from './metrics.js';

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
  /** Network or protocol failure with a single source: refused, reset, timed out, truncated, malformed, body too large, redirect loop. */
  NETWORK: 7,
  /** HTTP error: the server answered with a status ≥ 400 (after retries for 408/425/429/500/502/503/504). */
  HTTP: 22,
  /** All tiers failed: fallbacks or a cached copy existed, and none could serve. */
  ALL_TIERS_FAILED: 69,
  /** I/O error: the output file or stdout could not be written. */
  IO: 74,
  /** Interrupted by SIGINT (Ctrl-C): nothing partial left behind. */
  INTERRUPTED: 130,
  /** stdout was closed before everything was written (e.g. `| head`): 128 + SIGPIPE, as a shell reports. */
  BROKEN_PIPE: 141,
  /** Terminated by SIGTERM: nothing partial left behind. */
  TERMINATED: 143,
});

/** The defaults of the CLI's options (those of @bulwark/http where they exist). */
export const CLI_DEFAULTS = Object.freeze({
  timeoutMs: HTTP_CLIENT_DEFAULTS.totalTimeoutMs,
  /** None: only `--timeout-ms` bounds an attempt. */
  attemptTimeoutMs: Infinity,
  connectTimeoutMs: HTTP_CLIENT_DEFAULTS.connectTimeoutMs,
  retries: HTTP_CLIENT_DEFAULTS.maxAttempts - 1,
  maxBodyBytes: HTTP_CLIENT_DEFAULTS.maxBodyBytes,
  maxRedirects: HTTP_CLIENT_DEFAULTS.maxRedirects,
  cache: true,
});

export interface CliConfig {
  readonly url: string;
  readonly fallbacks: readonly string[];
  readonly timeoutMs: number;
  /** Bound on one request (connect + headers + body); `Infinity`: only `timeoutMs` bounds it. */
  readonly attemptTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retries: number;
  readonly maxBodyBytes: number;
  readonly maxRedirects: number;
  /** The cache directory, or `undefined` with `--no-cache`. */
  readonly cacheDir: string | undefined;
  /** `undefined`: the response's stale-if-error window, else 24 h. */
  readonly maxStaleMs: number | undefined;
  /** Write the body here (atomically) instead of stdout. */
  readonly output: string | undefined;
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

const MAX_MS = 2_147_483_647;

/**
 * An integer argument from `min` to `max`. The message names what is allowed; commander puts the option
 * and the bad value before it. (many-requests' config.ts has the same parser: the CLIs share conventions,
 * not a package.)
 */
function integer(min: number, max: number, unit?: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        `expected an integer${unit === undefined ? '' : ` number of ${unit}`} from ${min} to ${max}.`,
      );
    }
    return n;
  };
}

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

function collect(parse: (v: string) => string) {
  return (value: string, previous: string[] = []): string[] => [...previous, parse(value)];
}

function metricsFile(value: string): string {
  const problem = metricsFileProblem(value);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
  return resolve(value);
}

function nonEmptyPath(what: string) {
  return (value: string): string => {
    if (value.trim() === '') throw new InvalidArgumentError(`expected a ${what}, not an empty string.`);
    return value;
  };
}

export function exitCodeTable(): string {
  const rows: [number, string][] = [
    [EXIT.OK, 'body served (from any tier; a stale copy is announced on stderr)'],
    [EXIT.INTERNAL, 'internal error (a bug)'],
    [EXIT.USAGE, 'usage error (bad option or value)'],
    [EXIT.STALE_REFUSED, 'only a stale copy was available and --fail-on-stale was given'],
    [EXIT.NETWORK, 'network/protocol failure: refused, reset, timeout, truncated, malformed, too large'],
    [EXIT.HTTP, 'HTTP error: status >= 400 (after retries for 408/425/429/5xx)'],
    [EXIT.ALL_TIERS_FAILED, 'all tiers failed (fallbacks or a cached copy existed, none could serve)'],
    [EXIT.IO, 'I/O error writing the output file or stdout'],
    [EXIT.INTERRUPTED, 'interrupted (Ctrl-C); no partial output file; a second Ctrl-C exits at once'],
    [EXIT.BROKEN_PIPE, 'stdout closed early (e.g. piped into head): stopped quietly'],
    [EXIT.TERMINATED, 'terminated (SIGTERM); no partial output file'],
  ];
  return rows.map(([code, text]) => `  ${String(code).padStart(3)}  ${text}`).join('\n');
}

function program(): Command {
  return new Command('http-get')
    .description(
      'GET a URL and print the body, degrading step by step instead of failing:\n' +
        'fresh cache -> primary -> fallback mirror(s) -> stale cache -> explicit failure.',
    )
    .argument('<url>', 'the http:// or https:// URL to fetch', httpUrl)
    .addOption(
      new Option(
        '--fallback <url>',
        'a mirror of the same resource, tried after the primary (repeatable)',
      ).argParser(collect(httpUrl)),
    )
    .addOption(
      new Option(
        '--timeout-ms <ms>',
        'total deadline of the network tiers (all attempts, backoffs, fallbacks)',
      )
        .argParser(integer(1, MAX_MS, 'milliseconds'))
        .default(CLI_DEFAULTS.timeoutMs),
    )
    .addOption(
      new Option(
        '--attempt-timeout-ms <ms>',
        'time allowed per attempt: connect + headers + body (default: none; --timeout-ms bounds it)',
      ).argParser(integer(1, MAX_MS, 'milliseconds')),
    )
    .addOption(
      new Option('--connect-timeout-ms <ms>', 'TCP/TLS connect timeout per connection')
        .argParser(integer(1, MAX_MS, 'milliseconds'))
        .default(CLI_DEFAULTS.connectTimeoutMs),
    )
    .addOption(
      new Option(
        '--retries <n>',
        'retries per source after its first attempt (for network errors, timeouts, 408/425/429/5xx)',
      )
        .argParser(integer(0, 100))
        .default(CLI_DEFAULTS.retries),
    )
    .addOption(
      new Option('--max-body-bytes <bytes>', 'abort and fail when the body exceeds this size')
        .argParser(integer(0, Number.MAX_SAFE_INTEGER, 'bytes'))
        .default(CLI_DEFAULTS.maxBodyBytes),
    )
    .addOption(
      new Option('--max-redirects <n>', 'redirects followed per attempt')
        .argParser(integer(0, 100))
        .default(CLI_DEFAULTS.maxRedirects),
    )
    .addOption(
      new Option(
        '--cache-dir <dir>',
        'the durable cache directory, created with mode 0700 (default: $XDG_CACHE_HOME/bulwark-http-get, else ~/.cache/bulwark-http-get)',
      ).argParser(nonEmptyPath('directory path')),
    )
    .addOption(new Option('--no-cache', 'neither read nor write the cache (no fresh or stale tier)'))
    .addOption(
      new Option(
        '--max-stale-ms <ms>',
        "serve a stale copy at most this many milliseconds past its freshness when every source failed (default: the response's stale-if-error window, else 86400000 = 24 h)",
      ).argParser(integer(0, Number.MAX_SAFE_INTEGER, 'milliseconds')),
    )
    .addOption(new Option('--fail-on-stale', `exit ${EXIT.STALE_REFUSED} instead of serving a stale copy`))
    .addOption(
      new Option(
        '-o, --output <file>',
        'write the body to FILE atomically (temp file + rename; never torn) instead of stdout',
      ).argParser(nonEmptyPath('file path')),
    )
    .addOption(
      new Option(
        '--json',
        'print metadata as one JSON document on stdout (schema_version 1); the body goes only to --output',
      ),
    )
    .addOption(
      new Option('-v, --verbose', 'show the ladder as it happens on stderr (tiers, attempts, cache)'),
    )
    .addOption(new Option('-q, --quiet', 'nothing on stderr but errors (no notes, warnings or progress)'))
    .addOption(new Option('--no-color', 'no colour on stderr (also: NO_COLOR=1, or stderr not a terminal)'))
    .addOption(
      new Option(
        '--no-progress',
        'no progress bar (shown only on a terminal, for bodies over 1 MiB, not with -q, -v or --json)',
      ),
    )
    .addOption(
      new Option(
        '--metrics-file <path>',
        `at the end of the run, write its Prometheus metrics to PATH (*.prom, atomically) for node-exporter's textfile collector (also: env ${METRICS_FILE_ENV})`,
      ).argParser(metricsFile),
    )
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'print this help')
    .addHelpText('after', `\nExit codes:\n${exitCodeTable()}\n\nDocs: docs/http-get.md`)
    .showSuggestionAfterError(true)
    .allowExcessArguments(false);
}

interface RawOptions {
  fallback?: string[];
  timeoutMs: number;
  attemptTimeoutMs?: number;
  connectTimeoutMs: number;
  retries: number;
  maxBodyBytes: number;
  maxRedirects: number;
  cacheDir?: string;
  cache: boolean;
  maxStaleMs?: number;
  failOnStale?: boolean;
  output?: string;
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
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
  const url = cmd.processedArgs[0] as string;
  if (o.quiet && o.verbose) return usage('choose one of --quiet and --verbose');
  if (o.cache === false && (o.cacheDir !== undefined || o.maxStaleMs !== undefined)) {
    return usage(
      `--no-cache cannot be combined with ${o.cacheDir !== undefined ? '--cache-dir' : '--max-stale-ms'}`,
    );
  }
  // the option wins over the environment; an empty variable is unset
  let metricsPath = o.metricsFile;
  const metricsEnv = env[METRICS_FILE_ENV];
  if (metricsPath === undefined && metricsEnv !== undefined && metricsEnv !== '') {
    const problem = metricsFileProblem(metricsEnv);
    if (problem !== undefined) {
      return usage(`environment variable ${METRICS_FILE_ENV} '${metricsEnv}' is invalid. ${problem}`);
    }
    metricsPath = resolve(metricsEnv);
  }
  const noColorEnv = env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '';
  return {
    kind: 'run',
    config: {
      url,
      fallbacks: o.fallback ?? [],
      timeoutMs: o.timeoutMs,
      attemptTimeoutMs: o.attemptTimeoutMs ?? CLI_DEFAULTS.attemptTimeoutMs,
      connectTimeoutMs: o.connectTimeoutMs,
      retries: o.retries,
      maxBodyBytes: o.maxBodyBytes,
      maxRedirects: o.maxRedirects,
      cacheDir: o.cache === false ? undefined : (o.cacheDir ?? defaultCacheDir(env)),
      maxStaleMs: o.maxStaleMs,
      output: o.output === '-' ? undefined : o.output,
      json: o.json === true,
      verbose: o.verbose === true,
      quiet: o.quiet === true,
      failOnStale: o.failOnStale === true,
      color: o.color === false || noColorEnv ? false : undefined,
      progress: o.progress !== false,
      metricsFile: metricsPath,
    },
  };
}
