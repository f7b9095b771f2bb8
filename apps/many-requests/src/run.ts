/**
 * The whole CLI as one function of its streams and an interrupt signal, so tests can run it in process:
 * parse argv → stream the URLs through `fetchAll` → write each result → summary → metrics → exit code.
 */
import type { Readable, Writable } from 'node:stream';
import { TempFile, hidePasswords } from '@bulwark/cli-support';
import { fetchAll, type FetchAllRun } from '@bulwark/http';
import { EXIT, parseArgs, type CliConfig } from './config.js';
import { checkReadable, readUrls } from './input.js';
import { writeMetricsFile, type RunEnd } from './metrics.js';
import { ResultWriter, stdoutWritable } from './output.js';
import { Progress, wantProgress } from './progress.js';
import { Summary, formatSummary, type SummaryData } from './summary.js';

export interface CliIo {
  /** Arguments without the node and script paths. */
  readonly argv: readonly string[];
  readonly stdin: Readable & { isTTY?: boolean };
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  /**
   * Aborted on SIGINT / SIGTERM: in-flight requests are aborted, the partial summary is printed, exit 130
   * (143 when the reason is an {@link Interrupted} for SIGTERM).
   */
  readonly interrupt: AbortSignal;
  /** Printed by `--version`. */
  readonly version: string;
  /** The environment (for `MANY_REQUESTS_METRICS_FILE`). @default process.env */
  readonly env?: NodeJS.ProcessEnv;
}

/** The reason the interrupt signal is aborted with: which signal arrived, and so the exit code. */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
  constructor(readonly signalName: 'SIGINT' | 'SIGTERM') {
    super(`interrupted (${signalName})`);
  }
  get exitCode(): number {
    return this.signalName === 'SIGTERM' ? EXIT.TERMINATED : EXIT.INTERRUPTED;
  }
}

/** The run in progress, for a hard exit (a second Ctrl-C writes the metrics file from it). */
export const current: {
  metricsFile: string | undefined;
  summary: () => SummaryData | undefined;
  bytes: number;
} = { metricsFile: undefined, summary: () => undefined, bytes: 0 };

/** The end of a run, as the metrics file reports it. */
export function runEnd(exitCode: number): RunEnd {
  return {
    exitCode,
    endedAtMs: Date.now(),
    durationMs: performance.now(), // since the process started (performance.timeOrigin)
    summary: current.summary(),
    bytes: current.bytes,
  };
}

/** Runs the CLI; resolves with the exit code. Never calls `process.exit`. */
export async function runCli(io: CliIo): Promise<number> {
  const parsed = parseArgs(io.argv, io.version, io.env);
  if (parsed.kind === 'exit') {
    if (parsed.stdout) io.stdout.write(parsed.stdout);
    if (parsed.stderr) io.stderr.write(parsed.stderr);
    return parsed.code;
  }
  const config = parsed.config;
  const usage = (message: string): number => {
    io.stderr.write(`many-requests: ${message}\nTry 'many-requests --help' for more information.\n`);
    return EXIT.USAGE;
  };
  if (config.stdinImplied && io.stdin.isTTY === true) {
    return usage('no URLs given: pass URLs as arguments, -i FILE, or pipe them to stdin');
  }
  const unreadable = await checkReadable(config.sources);
  if (unreadable !== undefined) return usage(unreadable);

  current.metricsFile = config.metricsFile;
  const code = await fetchAndReport(config, io);
  if (config.metricsFile !== undefined) {
    await writeMetricsFile(config.metricsFile, runEnd(code)).catch((error: unknown) => {
      // the exit code stays the run's: the results were (or were not) delivered all the same
      io.stderr.write(
        `many-requests: error: cannot write the metrics file ${config.metricsFile}: ${(error as Error).message}\n`,
      );
    });
  }
  return code;
}

async function fetchAndReport(config: CliConfig, io: CliIo): Promise<number> {
  if (config.traceProblem !== undefined && !config.quiet)
    io.stderr.write(`many-requests: warning: ${config.traceProblem}\n`);
  if (config.traceId !== undefined && config.verbose)
    io.stderr.write(`many-requests: trace ${config.traceId} (continued from TRACEPARENT)\n`);
  if (config.insecure) {
    io.stderr.write(
      'many-requests: WARNING: TLS certificates are NOT verified (-k/--insecure): anyone on the path can read and change these transfers\n',
    );
  }
  // --output: the results go into a temp file, renamed over it at the end
  let file: TempFile | undefined;
  if (config.output !== undefined) {
    try {
      file = await TempFile.open(config.output, 'many-requests');
    } catch (error) {
      io.stderr.write(
        `many-requests: error: cannot write the results to ${config.output}: ${(error as Error).message}\n`,
      );
      return EXIT.IO;
    }
  }
  const out: Writable = file === undefined ? stdoutWritable(io.stdout) : file.writable();
  const target = config.output ?? 'stdout';

  const controller = new AbortController();
  const onInterrupt = (): void => controller.abort(io.interrupt.reason);
  if (io.interrupt.aborted) onInterrupt();
  else io.interrupt.addEventListener('abort', onInterrupt, { once: true });
  const writer = new ResultWriter(out, config.json, () =>
    controller.abort(new Error(`cannot write the results to ${target}`)),
  );
  const summary = new Summary();
  let run: FetchAllRun | undefined;
  let progress: Progress | undefined;
  let failure: { error: unknown } | undefined;
  current.summary = () => summary.data(run?.stats, io.interrupt.aborted);
  current.bytes = 0;
  try {
    run = fetchAll(readUrls(config.sources, io.stdin), {
      ...config.fetchAll,
      signal: controller.signal,
    });
    const running = run;
    if (config.verbose)
      running.onBreakerStateChange((e) =>
        io.stderr.write(`many-requests: circuit breaker for ${e.host}: ${e.from} -> ${e.to}\n`),
      );
    if (
      wantProgress({
        quiet: config.quiet,
        verbose: config.verbose,
        json: config.json,
        stderrIsTTY: io.stderr.isTTY === true,
        // the bar shares the terminal only with results that go to it
        stdoutIsTTY: file === undefined && io.stdout.isTTY === true,
      })
    ) {
      progress = new Progress(io.stderr, () => running.stats);
    }
    for await (const result of running) {
      summary.add(result);
      current.bytes += result.bytes;
      const congested = writer.add(result);
      if (congested !== undefined) await congested;
    }
  } catch (error) {
    // an abort (Ctrl-C, a failed write) ends the iteration with its reason: that is not a failure
    if (!controller.signal.aborted) failure = { error };
  } finally {
    progress?.stop();
    io.interrupt.removeEventListener('abort', onInterrupt);
  }

  const interrupted = io.interrupt.aborted;
  const data = summary.data(run?.stats, interrupted);
  const interruptedCode =
    io.interrupt.reason instanceof Interrupted ? io.interrupt.reason.exitCode : EXIT.INTERRUPTED;
  let code: number =
    failure !== undefined
      ? interrupted
        ? interruptedCode
        : EXIT.FAILED
      : interrupted
        ? interruptedCode
        : data.failed > 0 && !config.allowFailures
          ? EXIT.FAILED
          : EXIT.OK;
  if (writer.failure === undefined) await writer.finish(data, code);
  if (file !== undefined && writer.failure === undefined) {
    // every line in it is complete: publish it (also after Ctrl-C: the lines written are results)
    await new Promise<void>((resolve) => out.end(resolve));
    try {
      await file.commit();
    } catch (error) {
      io.stderr.write(
        `many-requests: error: cannot write the results to ${target}: ${(error as Error).message}\n`,
      );
      await file.abort();
      if (!config.quiet) io.stderr.write(formatSummary(data));
      return EXIT.IO;
    }
  }
  const failed = writer.failure;
  if (failed !== undefined) {
    await file?.abort();
    // the reader went away (`| head`): quietly, with the code a shell gives a process SIGPIPE kills
    if (failed.kind === 'epipe') return EXIT.BROKEN_PIPE;
    io.stderr.write(`many-requests: error: cannot write the results to ${target}: ${failed.error.message}\n`);
    if (!config.quiet) io.stderr.write(formatSummary(data));
    return EXIT.IO;
  }
  if (!config.quiet && data.urls > 0) io.stderr.write(formatSummary(data));
  if (failure !== undefined) {
    const error = failure.error;
    io.stderr.write(
      `many-requests: ${hidePasswords(error instanceof Error ? error.message : String(error))}\n`,
    );
    return code;
  }
  if (data.urls === 0 && !interrupted) {
    const message = config.stdinImplied
      ? 'no URLs on stdin: pass URLs as arguments, -i FILE, or pipe them to stdin'
      : 'no URLs in the input (blank lines and # comments are not URLs)';
    io.stderr.write(`many-requests: ${message}\nTry 'many-requests --help' for more information.\n`);
    code = EXIT.USAGE;
  }
  return code;
}
