#!/usr/bin/env node
/**
 * http-get: process wiring only (argv, signals, streams, exit code). Everything else is in run.ts.
 */
import { removePendingTempFiles } from '@bulwark/cli-support';
import { EXIT, parseArgs, readUrlFrom } from './config.js';
import { RunRecord, writeMetricsFile, writeMetricsFileSync, type RunEnd } from './metrics.js';
import { Interrupted } from './outcome.js';
import { run } from './run.js';

/** A bug: said in one line, never with a stack trace. */
function internalError(error: unknown): number {
  process.stderr.write(
    `http-get: error: internal error: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  return EXIT.INTERNAL;
}

async function main(): Promise<number> {
  let parsed = parseArgs(process.argv.slice(2));
  if (parsed.kind === 'exit') {
    if (parsed.stdout) process.stdout.write(parsed.stdout);
    if (parsed.stderr) process.stderr.write(parsed.stderr);
    return parsed.code;
  }

  if (parsed.config.url === '-') {
    const url = await readUrlFrom(process.stdin);
    if (typeof url !== 'string') {
      process.stderr.write(`http-get: ${url.problem}\nTry 'http-get --help' for more information.\n`);
      return EXIT.USAGE;
    }
    parsed = { kind: 'run', config: { ...parsed.config, url } };
  }
  const { metricsFile } = parsed.config;
  const record = new RunRecord();
  const runEnd = (exitCode: number): RunEnd => ({
    exitCode,
    endedAtMs: Date.now(),
    durationMs: performance.now(), // since the process started (performance.timeOrigin)
  });

  // One AbortController for the whole run: Ctrl-C aborts the requests and any output file being written.
  const controller = new AbortController();
  const onSignal = (name: 'SIGINT' | 'SIGTERM') => (): void => {
    if (controller.signal.aborted) {
      // second signal: leave now, still without a partial output (or metrics) file
      const code = name === 'SIGINT' ? EXIT.INTERRUPTED : EXIT.TERMINATED;
      removePendingTempFiles();
      if (metricsFile !== undefined) writeMetricsFileSync(metricsFile, record, runEnd(code));
      process.exit(code);
    }
    controller.abort(new Interrupted(name));
  };
  const onInt = onSignal('SIGINT');
  const onTerm = onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  const config = parsed.config;
  let code: number;
  try {
    code = await run(config, {
      stdout: process.stdout,
      stderr: process.stderr,
      signal: controller.signal,
      record,
    });
  } catch (error) {
    code = internalError(error);
  } finally {
    removePendingTempFiles();
  }
  // every run that started ends here (served, failed, interrupted, a bug), but for a second signal above
  if (metricsFile !== undefined) {
    await writeMetricsFile(metricsFile, record, runEnd(code)).catch((error: unknown) => {
      // the exit code stays the run's: the body was (or was not) delivered all the same
      process.stderr.write(
        `http-get: error: cannot write the metrics file ${metricsFile}: ${error instanceof Error ? error.message : String(error)}\n`,
      );
    });
  }
  if (controller.signal.aborted) {
    // interrupted: sockets may linger in the agent; nothing is left to flush
    process.exit(code);
  }
  process.off('SIGINT', onInt);
  process.off('SIGTERM', onTerm);
  return code;
}

// A closed stdout (EPIPE, e.g. `| head`) is reported to the write's callback, a closed stderr has no one
// to tell: neither may crash the process with an unhandled 'error' event.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});
main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.exitCode = internalError(error);
  },
);
