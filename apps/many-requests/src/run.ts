/**
 * The whole CLI as one function of its streams and an interrupt signal, so tests can run it in process:
 * parse argv → stream the URLs through `fetchAll` → write each result → summary → exit code.
 */
import type { Readable, Writable } from 'node:stream';
import { fetchAll, type FetchAllRun } from '@bulwark/http';
import { EXIT, parseArgs } from './config.js';
import { checkReadable, readUrls } from './input.js';
import { ResultWriter } from './output.js';
import { Progress, wantProgress } from './progress.js';
import { Summary, formatSummary } from './summary.js';

export interface CliIo {
  /** Arguments without the node and script paths. */
  readonly argv: readonly string[];
  readonly stdin: Readable;
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  /**
   * Aborted on SIGINT / SIGTERM: in-flight requests are aborted, the partial summary is printed, exit 130
   * (143 when the reason is an {@link Interrupted} for SIGTERM).
   */
  readonly interrupt: AbortSignal;
  /** Printed by `--version`. */
  readonly version: string;
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

/** Runs the CLI; resolves with the exit code. Never calls `process.exit`. */
export async function runCli(io: CliIo): Promise<number> {
  const parsed = parseArgs(io.argv, io.version);
  if (parsed.kind === 'exit') {
    if (parsed.stdout) io.stdout.write(parsed.stdout);
    if (parsed.stderr) io.stderr.write(parsed.stderr);
    return parsed.code;
  }
  const config = parsed.config;
  const unreadable = await checkReadable(config.sources);
  if (unreadable !== undefined) {
    io.stderr.write(`many-requests: ${unreadable}\n`);
    return EXIT.USAGE;
  }

  const controller = new AbortController();
  const onInterrupt = (): void => controller.abort(io.interrupt.reason);
  if (io.interrupt.aborted) onInterrupt();
  else io.interrupt.addEventListener('abort', onInterrupt, { once: true });
  const writer = new ResultWriter(io.stdout, config.json, () =>
    controller.abort(new Error('stdout was closed')),
  );
  const summary = new Summary();
  let run: FetchAllRun | undefined;
  let progress: Progress | undefined;
  let failure: { error: unknown } | undefined;
  try {
    run = fetchAll(readUrls(config.sources, io.stdin), {
      concurrency: config.concurrency,
      perHostConcurrency: config.perHost,
      timeoutMs: config.attemptTimeoutMs,
      retries: config.retries,
      retryBudgetRatio: config.retryBudgetRatio,
      ratePerHost: config.ratePerHost,
      breakerFailures: config.breakerFailures,
      breakerOpenMs: config.breakerOpenMs,
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
        stdoutIsTTY: io.stdout.isTTY === true,
      })
    ) {
      progress = new Progress(io.stderr, () => running.stats);
    }
    for await (const result of running) {
      summary.add(result);
      const congested = writer.add(result);
      if (congested !== undefined) await congested;
    }
  } catch (error) {
    // an abort (Ctrl-C, closed stdout) ends the iteration with its reason: that is not a failure
    if (!controller.signal.aborted) failure = { error };
  } finally {
    progress?.stop();
    io.interrupt.removeEventListener('abort', onInterrupt);
  }

  if (writer.broken) return EXIT.BROKEN_PIPE;
  const interrupted = io.interrupt.aborted;
  const data = summary.data(run?.stats, interrupted);
  await writer.finish(data);
  if (!config.quiet) io.stderr.write(formatSummary(data));
  const interruptedCode =
    io.interrupt.reason instanceof Interrupted ? io.interrupt.reason.exitCode : EXIT.INTERRUPTED;
  if (failure !== undefined) {
    const error = failure.error;
    io.stderr.write(`many-requests: ${error instanceof Error ? error.message : String(error)}\n`);
    return interrupted ? interruptedCode : EXIT.FAILED;
  }
  if (interrupted) return interruptedCode;
  return data.failed > 0 && !config.allowFailures ? EXIT.FAILED : EXIT.OK;
}
