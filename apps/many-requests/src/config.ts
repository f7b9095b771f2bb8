/**
 * argv → a typed configuration, in one place: the defaults, the option table `--help` prints, the exit
 * codes, and the validation of every value (a bad value is a usage error, exit 2, with a message that
 * names the option). The flags a curl or wget user reaches for are here under their names
 * (docs/many-requests.md shows them side by side).
 */
import { Command, CommanderError, Option } from 'commander';
import {
  MAX_MS,
  certificates,
  collect,
  decimal,
  header,
  integer,
  metricsFileArgument,
  metricsFileFrom,
  nonEmpty,
  seconds,
  userAgent,
} from '@bulwark/cli-support';
import { ADAPTIVE_THROTTLE_DEFAULTS, CIRCUIT_BREAKER_DEFAULTS, HEDGE_DEFAULTS } from '@bulwark/core';
import { FETCH_ALL_DEFAULTS } from '@bulwark/http';
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

/** The defaults of the CLI's options (those of `fetchAll` where they exist). */
export const CLI_DEFAULTS = Object.freeze({
  concurrency: FETCH_ALL_DEFAULTS.concurrency,
  perHost: FETCH_ALL_DEFAULTS.perHostConcurrency,
  attemptTimeoutMs: FETCH_ALL_DEFAULTS.attemptTimeoutMs,
  /** fetchAll's `retry.maxAttempts` less the first attempt. */
  retries: FETCH_ALL_DEFAULTS.retry.maxAttempts - 1,
  retryBudgetRatio: FETCH_ALL_DEFAULTS.retryBudget.ratio,
  ratePerHost: FETCH_ALL_DEFAULTS.ratePerHost,
  /** fetchAll's `circuitBreaker.strategy.threshold` (consecutive failures). */
  breakerFailures: FETCH_ALL_DEFAULTS.circuitBreaker.strategy.threshold,
  /** Core's `openDurationMs`: fetchAll keeps it. */
  breakerOpenMs: CIRCUIT_BREAKER_DEFAULTS.openDurationMs,
  maxWaitMs: FETCH_ALL_DEFAULTS.maxWaitMs,
  /** Core's adaptiveThrottle `k` (the throttle is on unless --no-adaptive-throttle). */
  throttleK: ADAPTIVE_THROTTLE_DEFAULTS.k,
  /** Core's hedge budget ratio (hedging is off unless --hedge-after-ms). */
  hedgeBudgetRatio: HEDGE_DEFAULTS.budgetRatio,
  json: false,
  quiet: false,
  verbose: false,
  allowFailures: false,
});

/** Where URLs come from, in order. */
export type Source =
  | { readonly kind: 'url'; readonly url: string }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'stdin' };

export interface CliConfig {
  readonly sources: readonly Source[];
  /** No URL argument or input file was given: stdin is the input (when it is not a terminal). */
  readonly stdinImplied: boolean;
  readonly concurrency: number;
  readonly perHost: number;
  /** Time allowed per attempt (connect + headers + body). */
  readonly attemptTimeoutMs: number;
  readonly retries: number;
  readonly retryBudgetRatio: number;
  readonly ratePerHost: number;
  readonly breakerFailures: number;
  readonly breakerOpenMs: number;
  /** How long the run may wait for hosts whose breaker is open once nothing else is left. */
  readonly maxWaitMs: number;
  /** Client-side adaptive throttling per host (fetchAll's `adaptiveThrottle`; `false`: off). */
  readonly adaptiveThrottle: false | { readonly k: number };
  /** Hedging (fetchAll's `hedge`): core's `delayMs` and the budget's ratio; `false`: off. */
  readonly hedge: false | { readonly delayMs: number; readonly budgetRatio: number };
  /** Request headers (lower-case names). */
  readonly headers: Readonly<Record<string, string>>;
  readonly insecure: boolean;
  readonly cacert: string | undefined;
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

function program(version: string): Command {
  const d = CLI_DEFAULTS;
  return (
    new Command()
      .name('many-requests')
      .description(
        'GET many URLs concurrently, with per-host limits, a circuit breaker per host, timeouts and budgeted retries.',
      )
      .version(version, '-V, --version', 'print the version')
      .helpOption('-h, --help', 'print this help')
      .argument('[urls...]', 'URLs to fetch; "-" reads URLs from stdin')
      .addOption(
        new Option(
          '-i, --input-file <path>',
          'read URLs from a file, one per line ("-" = stdin), like wget -i',
        ).argParser(nonEmpty('file path or -')),
      )
      .addOption(
        new Option(
          '-o, --output <file>',
          'write the results to FILE (atomically: a temp file renamed at the end) instead of stdout',
        ).argParser(nonEmpty('file path')),
      )
      .addOption(
        new Option('-c, --concurrency <n>', 'requests in flight at once, over all hosts')
          .argParser(integer(1, 10_000))
          .default(d.concurrency),
      )
      .addOption(
        new Option('--per-host <n>', 'requests in flight at once per host (origin)')
          .argParser(integer(1, 10_000))
          .default(d.perHost),
      )
      .addOption(
        new Option('--attempt-timeout-ms <ms>', 'time allowed per attempt: connect + headers + body')
          .argParser(integer(1, MAX_MS, 'milliseconds'))
          .default(d.attemptTimeoutMs),
      )
      .addOption(
        new Option('--attempt-timeout <seconds>', 'the same in seconds (e.g. 2.5)').argParser(seconds(1)),
      )
      .addOption(
        new Option(
          '--retries <n>',
          'retries per URL after its first attempt (for network errors, timeouts, 408/425/429/5xx)',
        )
          .argParser(integer(0, 100))
          .default(d.retries),
      )
      .addOption(
        new Option('--retry-budget-ratio <r>', 'retries allowed across the run per URL started (+10/s floor)')
          .argParser(decimal(0, 100))
          .default(d.retryBudgetRatio),
      )
      .addOption(
        new Option(
          '--rate-per-host <n>',
          'requests started per second per host (default: no limit)',
        ).argParser(decimal(0, 1_000_000, true)),
      )
      .addOption(
        new Option('--breaker-failures <n>', "consecutive failures that open a host's circuit breaker")
          .argParser(integer(1, 1_000_000))
          .default(d.breakerFailures),
      )
      .addOption(
        new Option(
          '--breaker-open-ms <ms>',
          'how long an open breaker fails fast before it probes the host again',
        )
          .argParser(integer(1, MAX_MS, 'milliseconds'))
          .default(d.breakerOpenMs),
      )
      .addOption(
        new Option(
          '--max-wait-ms <ms>',
          'once nothing else is left, how long to wait for hosts whose breaker is open (URLs refused by one wait for it anyway while other URLs are in progress)',
        )
          .argParser(integer(0, MAX_MS, 'milliseconds'))
          .default(d.maxWaitMs),
      )
      .addOption(new Option('--max-wait <seconds>', 'the same in seconds').argParser(seconds(0)))
      .addOption(
        new Option(
          '--no-adaptive-throttle',
          'do not reject requests locally when a host refuses most of them (adaptive throttling is on by default)',
        ),
      )
      .addOption(
        new Option(
          '--throttle-k <k>',
          "adaptive throttling's k: a refusing host gets about k requests per one it accepts",
        )
          .argParser(decimal(1, 1000))
          .default(d.throttleK),
      )
      .addOption(
        new Option(
          '--hedge-after-ms <ms>',
          'hedging: a URL whose request has not answered after MS gets a second request; the first to answer wins (default: off)',
        ).argParser(integer(0, MAX_MS, 'milliseconds')),
      )
      .addOption(
        new Option(
          '--hedge-budget-ratio <r>',
          'hedges allowed per URL attempt across the run, in a sliding 10 s window (with --hedge-after-ms)',
        )
          .argParser(decimal(0, 1))
          .default(d.hedgeBudgetRatio),
      )
      .addOption(
        new Option('-H, --header <header>', '"Name: value" sent with every request (repeatable)').argParser(
          collect(header('many-requests', false)),
        ),
      )
      .addOption(new Option('-A, --user-agent <name>', 'the User-Agent header').argParser(userAgent))
      .addOption(new Option('-k, --insecure', 'do not verify TLS certificates (warns on stderr)'))
      .addOption(
        new Option('--cacert <file>', 'trust the PEM certificates in FILE (for a private CA)').argParser(
          certificates,
        ),
      )
      // switches are off unless given: no "(default: false)" in --help
      .option('--json', 'one JSON document at the end instead of NDJSON (buffers all results)')
      .option('-v, --verbose', "each host's circuit breaker opening and closing, on stderr")
      .option('-q, --quiet', 'nothing on stderr but errors (no progress bar, no summary)')
      .option('-s, --silent', 'the same as --quiet (curl -s)')
      .option('--allow-failures', 'exit 0 even if some URLs failed')
      .addOption(
        new Option(
          '--metrics-file <path>',
          `at the end of the run, write its Prometheus metrics to PATH (*.prom, atomically) for node-exporter's textfile collector (also: env ${METRICS_FILE_ENV})`,
        ).argParser(metricsFileArgument),
      )
      .addHelpText('after', EXIT_HELP)
      .showSuggestionAfterError(true)
      .allowExcessArguments(false)
  );
}

interface RawOptions {
  inputFile?: string;
  output?: string;
  concurrency: number;
  perHost: number;
  attemptTimeoutMs: number;
  attemptTimeout?: number;
  retries: number;
  retryBudgetRatio: number;
  ratePerHost?: number;
  breakerFailures: number;
  breakerOpenMs: number;
  maxWaitMs: number;
  maxWait?: number;
  adaptiveThrottle: boolean;
  throttleK: number;
  hedgeAfterMs?: number;
  hedgeBudgetRatio: number;
  header?: [string, string][];
  userAgent?: string;
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
  const headers: Record<string, string> = {};
  if (o.userAgent !== undefined) headers['user-agent'] = o.userAgent;
  for (const [name, value] of o.header ?? []) headers[name] = value;
  return {
    kind: 'run',
    config: {
      sources,
      stdinImplied,
      concurrency: o.concurrency,
      perHost: o.perHost,
      attemptTimeoutMs: o.attemptTimeout ?? o.attemptTimeoutMs,
      retries: o.retries,
      retryBudgetRatio: o.retryBudgetRatio,
      ratePerHost: o.ratePerHost ?? CLI_DEFAULTS.ratePerHost,
      breakerFailures: o.breakerFailures,
      breakerOpenMs: o.breakerOpenMs,
      maxWaitMs: o.maxWait ?? o.maxWaitMs,
      adaptiveThrottle: o.adaptiveThrottle ? { k: o.throttleK } : false,
      hedge:
        o.hedgeAfterMs === undefined ? false : { delayMs: o.hedgeAfterMs, budgetRatio: o.hedgeBudgetRatio },
      headers,
      insecure: o.insecure === true,
      cacert: o.cacert,
      output: o.output === '-' ? undefined : o.output,
      json: o.json ?? CLI_DEFAULTS.json,
      quiet,
      verbose: o.verbose ?? CLI_DEFAULTS.verbose,
      allowFailures: o.allowFailures ?? CLI_DEFAULTS.allowFailures,
      metricsFile: metricsPath,
    },
  };
}
