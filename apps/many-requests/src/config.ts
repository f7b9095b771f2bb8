/**
 * argv → a typed configuration, in one place: the defaults, the option table `--help` prints, the exit
 * codes, and the validation of every value (a bad value is a usage error, exit 2, with a message that
 * names the option).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { FETCH_ALL_DEFAULTS } from '@bulwark/http';

/** Exit codes (printed by `--help`, listed in docs/many-requests.md). */
export const EXIT = Object.freeze({
  /** Every URL succeeded (or `--allow-failures`). */
  OK: 0,
  /** At least one URL failed. */
  FAILED: 1,
  /** Bad arguments: unknown option, invalid value, no URLs, unreadable `--file`. */
  USAGE: 2,
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
  attemptTimeoutMs: FETCH_ALL_DEFAULTS.timeoutMs,
  retries: FETCH_ALL_DEFAULTS.retries,
  retryBudgetRatio: FETCH_ALL_DEFAULTS.retryBudgetRatio,
  ratePerHost: FETCH_ALL_DEFAULTS.ratePerHost,
  breakerFailures: FETCH_ALL_DEFAULTS.breakerFailures,
  breakerOpenMs: FETCH_ALL_DEFAULTS.breakerOpenMs,
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
  readonly concurrency: number;
  readonly perHost: number;
  /** Time allowed per attempt (connect + headers + body). */
  readonly attemptTimeoutMs: number;
  readonly retries: number;
  readonly retryBudgetRatio: number;
  readonly ratePerHost: number;
  readonly breakerFailures: number;
  readonly breakerOpenMs: number;
  readonly json: boolean;
  readonly quiet: boolean;
  /** Breaker state changes on stderr as they happen. */
  readonly verbose: boolean;
  readonly allowFailures: boolean;
}

/** What parsing decided: run with a config, or exit now (help, version, usage error). */
export type ParseResult =
  | { readonly kind: 'run'; readonly config: CliConfig }
  | { readonly kind: 'exit'; readonly code: number; readonly stdout: string; readonly stderr: string };

/**
 * An integer argument from `min` to `max`. The message names what is allowed; commander puts the option
 * and the bad value before it. (http-get's config.ts has the same parser: the CLIs share conventions, not
 * a package.)
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

/** A decimal number (plain notation: `0.5`, `10`) from `min` (or above it) to `max`. */
function decimal(min: number, max: number, above = false) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(value) || (above ? n <= min : n < min) || n > max) {
      throw new InvalidArgumentError(
        `expected a decimal number ${above ? `greater than ${min} and at most` : `from ${min} to`} ${max}.`,
      );
    }
    return n;
  };
}

const EXIT_HELP = `
Input:
  URLs are read from the arguments, then --file, in order; "-" (as an argument or as
  --file -) reads stdin. Files and stdin are streamed line by line: one URL per line,
  blank lines and lines starting with # are skipped.

Output:
  stdout: one JSON object per URL, one per line (NDJSON), in completion order:
    {"index","url","host","ok","status","bytes","durationMs","attempts","errorCode","error"}
  --json: one document at the end instead: {"schemaVersion":1,"results":[…],"summary":{…}}
    (buffers every result in memory until the end; prefer NDJSON for long lists).
  stderr: a summary (counts by outcome, breaker trips, retries, throughput, p50/p99
  latency), and a progress bar when stderr is a terminal (not with --quiet or --verbose,
  nor when NDJSON goes to the same terminal).

Exit codes:
  ${EXIT.OK}    every URL succeeded (or --allow-failures)
  ${EXIT.FAILED}    at least one URL failed (or the input could not be read midway, or a bug)
  ${EXIT.USAGE}    usage error (bad option or value, no URLs, unreadable file)
  ${EXIT.INTERRUPTED}  interrupted (Ctrl-C): in-flight requests aborted; the lines written are
       complete, a partial summary is printed; a second Ctrl-C exits at once
  ${EXIT.BROKEN_PIPE}  stdout closed early (e.g. piped into head): stopped quietly
  ${EXIT.TERMINATED}  terminated (SIGTERM): as for Ctrl-C

Examples:
  many-requests https://example.com/a https://example.com/b
  many-requests --file urls.txt -c 100 --per-host 20 > results.ndjson
  cat urls.txt | many-requests - --attempt-timeout-ms 2000 --retries 1 --json > results.json
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
      .option('-f, --file <path>', 'read URLs from a file, one per line ("-" = stdin)')
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
          .argParser(integer(1, 2 ** 31 - 1, 'milliseconds'))
          .default(d.attemptTimeoutMs),
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
          .argParser(integer(1, 2 ** 31 - 1, 'milliseconds'))
          .default(d.breakerOpenMs),
      )
      // switches are off unless given: no "(default: false)" in --help
      .option('--json', 'one JSON document at the end instead of NDJSON (buffers all results)')
      .option('-v, --verbose', "each host's circuit breaker opening and closing, on stderr")
      .option('-q, --quiet', 'nothing on stderr but errors (no progress bar, no summary)')
      .option('--allow-failures', 'exit 0 even if some URLs failed')
      .addHelpText('after', EXIT_HELP)
      .showSuggestionAfterError(true)
      .allowExcessArguments(false)
  );
}

interface RawOptions {
  file?: string;
  concurrency: number;
  perHost: number;
  attemptTimeoutMs: number;
  retries: number;
  retryBudgetRatio: number;
  ratePerHost?: number;
  breakerFailures: number;
  breakerOpenMs: number;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  allowFailures?: boolean;
}

const usage = (message: string): ParseResult => ({
  kind: 'exit',
  code: EXIT.USAGE,
  stdout: '',
  stderr: `many-requests: ${message}\nTry 'many-requests --help' for more information.\n`,
});

/** Parses `argv` (without the node and script paths). Never exits the process and never throws. */
export function parseArgs(argv: readonly string[], version: string): ParseResult {
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
      return usage(message);
    }
    throw error;
  }
  const o = cmd.opts<RawOptions>();
  if (o.quiet && o.verbose) return usage('choose one of --quiet and --verbose');
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
  if (o.file !== undefined) {
    if (o.file === '-') {
      const problem = addStdin();
      if (problem) return usage(problem);
    } else if (o.file.trim() === '') {
      return usage("option '-f, --file <path>' argument '' is invalid. expected a file path or -.");
    } else {
      sources.push({ kind: 'file', path: o.file });
    }
  }
  if (sources.length === 0) {
    return usage('no URLs given: pass URLs as arguments, --file <path>, or - to read them from stdin');
  }
  return {
    kind: 'run',
    config: {
      sources,
      concurrency: o.concurrency,
      perHost: o.perHost,
      attemptTimeoutMs: o.attemptTimeoutMs,
      retries: o.retries,
      retryBudgetRatio: o.retryBudgetRatio,
      ratePerHost: o.ratePerHost ?? CLI_DEFAULTS.ratePerHost,
      breakerFailures: o.breakerFailures,
      breakerOpenMs: o.breakerOpenMs,
      json: o.json ?? CLI_DEFAULTS.json,
      quiet: o.quiet ?? CLI_DEFAULTS.quiet,
      verbose: o.verbose ?? CLI_DEFAULTS.verbose,
      allowFailures: o.allowFailures ?? CLI_DEFAULTS.allowFailures,
    },
  };
}
