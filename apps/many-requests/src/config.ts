/**
 * argv → a typed configuration, in one place: the flag table ({@link FLAGS}: each flag's parser, default,
 * fetchAll option and doc line, from which `--help`, fetchAll's options and the docs' options table come),
 * the exit codes, and the validation of every value (a bad value is a usage error, exit 2, with a message
 * that names the option). The flags a curl or wget user reaches for are here under their names
 * (docs/many-requests.md shows them side by side).
 */
import { Command, CommanderError } from 'commander';
import {
  MAX_MS,
  addFlags,
  buildOptions,
  certificates,
  decimal,
  flag,
  integer,
  metricsFileFrom,
  nonEmpty,
  seconds,
  setPath,
  type Flag,
  headerFlag,
  userAgentFlag,
  insecureFlag,
  metricsFileFlag,
  quietFlags,
  traceFromEnv,
  versionAndHelpFlags,
  withTrace,
} from '@bulwark/cli-support';
import {
  ADAPTIVE_THROTTLE_DEFAULTS,
  CIRCUIT_BREAKER_DEFAULTS,
  HEDGE_DEFAULTS,
  retryBudget,
} from '@bulwark/core';
import { FETCH_ALL_DEFAULTS, type FetchAllOptions } from '@bulwark/http';
import { METRICS_FILE_ENV } from './metrics.js';

/** Exit codes (printed by `--help`, listed in docs/many-requests.md). */
export const EXIT = Object.freeze({
  /** Every URL succeeded (or `--allow-failures`). */
  OK: 0,
  /** At least one URL failed. */
  FAILED: 1,
  /** Bad arguments: unknown option, invalid value, no URLs, unreadable input file. */
  USAGE: 2,
  /** The results could not be written (stdout or `--output`: a full disk, an I/O error). */
  IO: 74,
  /** Interrupted (SIGINT / Ctrl-C): in-flight requests aborted, partial output and summary written. */
  INTERRUPTED: 130,
  /** stdout was closed early (e.g. `| head`): the run stopped quietly. 128 + SIGPIPE, as a shell reports. */
  BROKEN_PIPE: 141,
  /** Terminated (SIGTERM): as for SIGINT. */
  TERMINATED: 143,
});

/** Where URLs come from, in order. */
export type Source =
  | { readonly kind: 'url'; readonly url: string }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'stdin' };

/** The fetchAll options the flags set (core's names), built from {@link FLAGS}. */
export type FetchAllFlags = Readonly<
  Pick<
    FetchAllOptions,
    | 'concurrency'
    | 'perHostConcurrency'
    | 'attemptTimeoutMs'
    | 'retry'
    | 'retryBudget'
    | 'ratePerHost'
    | 'circuitBreaker'
    | 'maxWaitMs'
    | 'adaptiveThrottle'
    | 'hedge'
    | 'headers'
    | 'tls'
  >
>;

export interface CliConfig {
  readonly sources: readonly Source[];
  /** No URL argument or input file was given: stdin is the input (when it is not a terminal). */
  readonly stdinImplied: boolean;
  /** fetchAll's options, from the flags' rows in {@link FLAGS} (the signal is the run's). */
  readonly fetchAll: FetchAllFlags;
  /** The caller's trace, continued from `TRACEPARENT` (its headers are in `fetchAll.headers`), if any. */
  readonly traceId: string | undefined;
  /** Why `TRACEPARENT` was ignored (the run warns), if it was. */
  readonly traceProblem: string | undefined;
  /** `-k`: certificates are not checked (`fetchAll.tls` says so; the run warns). */
  readonly insecure: boolean;
  /** Write the results here (atomically, at the end) instead of stdout. */
  readonly output: string | undefined;
  readonly json: boolean;
  readonly quiet: boolean;
  /** Breaker state changes on stderr as they happen. */
  readonly verbose: boolean;
  readonly allowFailures: boolean;
  /** Write the run's Prometheus metrics here (absolute, `*.prom`, atomically) at the end of the run. */
  readonly metricsFile: string | undefined;
}

/** What parsing decided: run with a config, or exit now (help, version, usage error). */
export type ParseResult =
  | { readonly kind: 'run'; readonly config: CliConfig }
  | { readonly kind: 'exit'; readonly code: number; readonly stdout: string; readonly stderr: string };

const EXIT_HELP = `
Input:
  URLs are read from the arguments, then --input-file, in order; "-" (as an argument or as
  --input-file -) reads stdin there. With neither, a piped stdin is read. Files and stdin are
  streamed line by line: one URL per line, blank lines and lines starting with # are skipped.

Output:
  stdout (or --output FILE): one JSON object per URL, one per line (NDJSON), in completion order:
    {"index","url","host","ok","status","bytes","durationMs","attempts","errorCode","error"}
  --json: one document at the end instead: {"schemaVersion":2,"exitCode","results":[…],"summary":{…}}
    (buffers every result in memory until the end; prefer NDJSON for long lists).
  stderr: a summary (counts by outcome, breaker trips, retries, throughput, p50/p99
  latency), and a progress bar when stderr is a terminal (not with --quiet or --verbose,
  nor when NDJSON goes to the same terminal).

Exit codes:
  ${EXIT.OK}    every URL succeeded (or --allow-failures)
  ${EXIT.FAILED}    at least one URL failed (or the input could not be read midway, or a bug)
  ${EXIT.USAGE}    usage error (bad option or value, no URLs, unreadable file)
  ${EXIT.IO}   the results could not be written (e.g. a full disk): one line, then the summary
  ${EXIT.INTERRUPTED}  interrupted (Ctrl-C): in-flight requests aborted; the lines written are
       complete, a partial summary is printed; a second Ctrl-C exits at once
  ${EXIT.BROKEN_PIPE}  stdout closed early (e.g. piped into head): stopped quietly
  ${EXIT.TERMINATED}  terminated (SIGTERM): as for Ctrl-C

Examples:
  many-requests https://example.com/a https://example.com/b
  many-requests -i urls.txt -c 100 --per-host 20 -o results.ndjson
  cat urls.txt | many-requests --attempt-timeout 2 --retries 1 --json > results.json
`;

/**
 * Every flag, in the order of `--help` and of docs/many-requests.md's options table (test/docs.test.ts
 * checks it row for row). A row with a `target` sets that path of fetchAll's options; its default is
 * fetchAll's (`FETCH_ALL_DEFAULTS`) or core's, read here, never restated. Rules across flags are in
 * {@link parseArgs}.
 */
export const FLAGS: readonly Flag[] = [
  flag({
    flags: '-i, --input-file <path>',
    parse: nonEmpty('file path or -'),
    defaultText: 'none',
    doc: 'read URLs from a file, one per line ("-" = stdin), like wget -i',
  }),
  flag({
    flags: '-o, --output <file>',
    parse: nonEmpty('file path'),
    defaultText: 'stdout',
    doc: 'write the results to FILE, atomically (a temp file renamed at the end)',
  }),
  flag({
    flags: '-c, --concurrency <n>',
    parse: integer(1, 10_000),
    default: FETCH_ALL_DEFAULTS.concurrency,
    target: 'concurrency',
    doc: 'requests in flight at once, over all hosts',
  }),
  flag({
    flags: '--per-host <n>',
    parse: integer(1, 10_000),
    default: FETCH_ALL_DEFAULTS.perHostConcurrency,
    target: 'perHostConcurrency',
    doc: 'requests in flight at once per host (origin)',
  }),
  flag({
    flags: '--attempt-timeout-ms <ms>',
    parse: integer(1, MAX_MS, 'milliseconds'),
    default: FETCH_ALL_DEFAULTS.attemptTimeoutMs,
    target: 'attemptTimeoutMs',
    doc: 'time allowed per attempt: connect + headers + body',
  }),
  flag({
    flags: '--attempt-timeout <seconds>',
    parse: seconds(1),
    target: 'attemptTimeoutMs',
    doc: 'the same in seconds (e.g. 2.5)',
  }),
  flag({
    flags: '--retries <n>',
    parse: integer(0, 100),
    default: FETCH_ALL_DEFAULTS.retry.maxAttempts - 1,
    target: 'retry.maxAttempts',
    to: (n: number) => n + 1,
    doc: 'retries per URL after its first attempt (for network errors, timeouts, 408/425/429/5xx)',
  }),
  flag({
    flags: '--retry-budget-ratio <r>',
    parse: decimal(0, 100),
    default: FETCH_ALL_DEFAULTS.retryBudget.ratio,
    target: 'retryBudget.ratio',
    doc: 'retries allowed across the run per URL started (+10/s floor)',
  }),
  flag({
    flags: '--rate-per-host <n>',
    parse: decimal(0, 1_000_000, true),
    default: FETCH_ALL_DEFAULTS.ratePerHost,
    defaultText: 'no limit',
    target: 'ratePerHost',
    doc: 'requests started per second per host',
  }),
  flag({
    flags: '--breaker-failures <n>',
    parse: integer(1, 1_000_000),
    default: FETCH_ALL_DEFAULTS.circuitBreaker.strategy.threshold,
    target: 'circuitBreaker.strategy',
    to: (threshold: number) => ({ type: 'consecutive', threshold }),
    doc: "consecutive failures that open a host's circuit breaker",
  }),
  flag({
    flags: '--breaker-open-ms <ms>',
    parse: integer(1, MAX_MS, 'milliseconds'),
    default: CIRCUIT_BREAKER_DEFAULTS.openDurationMs,
    target: 'circuitBreaker.openDurationMs',
    doc: 'how long an open breaker fails fast before it probes the host again',
  }),
  flag({
    flags: '--max-wait-ms <ms>',
    parse: integer(0, MAX_MS, 'milliseconds'),
    default: FETCH_ALL_DEFAULTS.maxWaitMs,
    target: 'maxWaitMs',
    doc: 'once nothing else is left, how long to wait for hosts whose breaker is open (URLs refused by one wait for it anyway while other URLs are in progress)',
  }),
  flag({
    flags: '--max-wait <seconds>',
    parse: seconds(0),
    target: 'maxWaitMs',
    doc: 'the same in seconds',
  }),
  flag({
    flags: '--no-adaptive-throttle',
    defaultText: 'on',
    target: 'adaptiveThrottle',
    // on: fetchAll's throttle (core's options, `k` below); off: `false`
    to: (on: boolean) => (on ? {} : false),
    doc: 'do not reject requests locally when a host refuses most of them (adaptive throttling is on by default)',
  }),
  flag({
    flags: '--throttle-k <k>',
    parse: decimal(1, 1000),
    default: ADAPTIVE_THROTTLE_DEFAULTS.k,
    target: 'adaptiveThrottle.k',
    doc: "adaptive throttling's k: a refusing host gets about k requests per one it accepts",
  }),
  flag({
    flags: '--hedge-after-ms <ms>',
    parse: integer(0, MAX_MS, 'milliseconds'),
    defaultText: 'off',
    // hedging is off unless given
    apply: (delayMs: number | undefined, options) =>
      delayMs === undefined ? (options['hedge'] = false) : setPath(options, 'hedge.delayMs', delayMs),
    doc: 'hedging: a URL whose request has not answered after MS gets a second request; the first to answer wins',
  }),
  flag({
    flags: '--hedge-budget-ratio <r>',
    parse: decimal(0, 1),
    default: HEDGE_DEFAULTS.budgetRatio,
    target: 'hedge.budget',
    // core's hedge budget: a retry budget of this ratio, no floor
    to: (ratio: number) => retryBudget({ ratio, minRetriesPerSecond: 0 }),
    doc: 'hedges allowed per URL attempt across the run, in a sliding 10 s window (with --hedge-after-ms)',
  }),
  userAgentFlag("undici's"),
  // after -A: a -H 'User-Agent: …' wins
  headerFlag('many-requests', false, '"Name: value" sent with every request (repeatable)'),
  insecureFlag(),
  flag({
    flags: '--cacert <file>',
    parse: certificates,
    defaultText: "the system's",
    apply: (ca: string | undefined, options) => {
      if (ca !== undefined) options['tls'] = { ca };
    },
    doc: 'trust the PEM certificates in FILE (for a private CA)',
  }),
  flag({
    flags: '--json',
    defaultText: 'off',
    doc: 'one JSON document at the end instead of NDJSON (buffers all results)',
  }),
  flag({
    flags: '-v, --verbose',
    defaultText: 'off',
    doc: "each host's circuit breaker opening and closing, on stderr",
  }),
  ...quietFlags('no progress bar, no summary'),
  flag({ flags: '--allow-failures', defaultText: 'off', doc: 'exit 0 even if some URLs failed' }),
  metricsFileFlag(METRICS_FILE_ENV),
  ...versionAndHelpFlags(),
];

function program(version: string): Command {
  const cmd = new Command()
    .name('many-requests')
    .description(
      'GET many URLs concurrently, with per-host limits, a circuit breaker per host, timeouts and budgeted retries.',
    )
    .argument('[urls...]', 'URLs to fetch; "-" reads URLs from stdin');
  return addFlags(cmd, FLAGS, version)
    .addHelpText('after', EXIT_HELP)
    .showSuggestionAfterError(true)
    .allowExcessArguments(false);
}

/** The values of the flags that rules across flags and the app read (the rest go to fetchAll). */
interface RawOptions {
  inputFile?: string;
  output?: string;
  adaptiveThrottle: boolean;
  hedgeAfterMs?: number;
  insecure?: boolean;
  cacert?: string;
  json?: boolean;
  quiet?: boolean;
  silent?: boolean;
  verbose?: boolean;
  allowFailures?: boolean;
  metricsFile?: string;
}

const usage = (message: string): ParseResult => ({
  kind: 'exit',
  code: EXIT.USAGE,
  stdout: '',
  stderr: `many-requests: ${message}\nTry 'many-requests --help' for more information.\n`,
});

/** Parses `argv` (without the node and script paths). Never exits the process and never throws. */
export function parseArgs(
  argv: readonly string[],
  version: string,
  env: NodeJS.ProcessEnv = process.env,
): ParseResult {
  let out = '';
  let err = '';
  const cmd = program(version)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => (out += s),
      writeErr: (s) => (err += s),
      getOutHelpWidth: () => 100,
      getErrHelpWidth: () => 100,
    });
  try {
    cmd.parse([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end parsing with exit code 0
      if (error.exitCode === 0) return { kind: 'exit', code: EXIT.OK, stdout: out, stderr: err };
      let message = err.trim().replace(/^error: /, '') || error.message;
      // http-get's --timeout-ms bounds a whole URL; here only an attempt is bounded, under its own name
      if (/^unknown option '--timeout-ms'/.test(message) && !message.includes('Did you mean'))
        message += '\n(Did you mean --attempt-timeout-ms? many-requests bounds each attempt, not each URL)';
      // -f was the URL file before -i (wget's); curl's -f is --fail
      if (/^unknown option '(-f|--file)'/.test(message))
        message += '\n(Did you mean -i, --input-file? as in wget, -i reads the URL list)';
      return usage(message);
    }
    throw error;
  }
  const o = cmd.opts<RawOptions>();
  const given = (key: string): boolean => cmd.getOptionValueSource(key) === 'cli';
  const quiet = o.quiet === true || o.silent === true;
  if (quiet && o.verbose) return usage('choose one of --quiet (or -s) and --verbose');
  if (given('attemptTimeout') && given('attemptTimeoutMs'))
    return usage('choose one of --attempt-timeout (seconds) and --attempt-timeout-ms');
  if (given('maxWait') && given('maxWaitMs'))
    return usage('choose one of --max-wait (seconds) and --max-wait-ms');
  if (o.insecure && o.cacert !== undefined) return usage('choose one of -k/--insecure and --cacert');
  if (!o.adaptiveThrottle && given('throttleK'))
    return usage('choose one of --no-adaptive-throttle and --throttle-k');
  if (o.hedgeAfterMs === undefined && given('hedgeBudgetRatio'))
    return usage('--hedge-budget-ratio needs --hedge-after-ms (hedging is off without it)');
  const sources: Source[] = [];
  let stdinUsed = false;
  const addStdin = (): string | undefined => {
    if (stdinUsed) return 'stdin ("-") can be read only once';
    stdinUsed = true;
    sources.push({ kind: 'stdin' });
    return undefined;
  };
  for (const arg of cmd.args) {
    if (arg === '-') {
      const problem = addStdin();
      if (problem) return usage(problem);
    } else if (arg.trim() === '') {
      return usage('an empty URL argument was given: expected a URL, or - for stdin');
    } else {
      sources.push({ kind: 'url', url: arg });
    }
  }
  if (o.inputFile !== undefined) {
    if (o.inputFile === '-') {
      const problem = addStdin();
      if (problem) return usage(problem);
    } else {
      sources.push({ kind: 'file', path: o.inputFile });
    }
  }
  const stdinImplied = sources.length === 0;
  if (stdinImplied) sources.push({ kind: 'stdin' });
  // the option wins over the environment; an empty variable is unset
  const metricsPath = metricsFileFrom(o.metricsFile, env, METRICS_FILE_ENV);
  if (typeof metricsPath === 'object') return usage(metricsPath.problem);
  const fetchAll = buildOptions(FLAGS, cmd.opts()) as FetchAllFlags;
  const trace = traceFromEnv(env);
  const traced = trace !== undefined && 'traceId' in trace ? trace : undefined;
  const headers = withTrace(fetchAll.headers, traced);
  return {
    kind: 'run',
    config: {
      sources,
      stdinImplied,
      fetchAll: (headers === undefined ? fetchAll : { ...fetchAll, headers }) as FetchAllFlags,
      traceId: traced?.traceId,
      traceProblem: trace !== undefined && 'problem' in trace ? trace.problem : undefined,
      insecure: o.insecure === true,
      output: o.output === '-' ? undefined : o.output,
      json: o.json === true,
      quiet,
      verbose: o.verbose === true,
      allowFailures: o.allowFailures === true,
      metricsFile: metricsPath,
    },
  };
}
