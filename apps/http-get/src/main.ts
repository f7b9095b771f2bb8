#!/usr/bin/env node
/**
 * http-get: process wiring only (argv, signals, streams, exit code). Everything else is in run.ts.
 */
import { EXIT, parseArgs } from './config.js';
import { Interrupted } from './outcome.js';
import { removePendingTempFiles } from './output.js';
import { run } from './run.js';

async function main(): Promise<void> {
  const parsed = parseArgs(process.argv.slice(2));
  if (parsed.kind === 'exit') {
    if (parsed.stdout) process.stdout.write(parsed.stdout);
    if (parsed.stderr) process.stderr.write(parsed.stderr);
    process.exitCode = parsed.code;
    return;
  }

  // One AbortController for the whole run: Ctrl-C aborts the requests and any output file being written.
  const controller = new AbortController();
  const onSignal = (name: 'SIGINT' | 'SIGTERM') => (): void => {
    if (controller.signal.aborted) {
      // second signal: leave now, still without a partial output file
      removePendingTempFiles();
      process.exit(name === 'SIGINT' ? EXIT.INTERRUPTED : EXIT.TERMINATED);
    }
    controller.abort(new Interrupted(name));
  };
  const onInt = onSignal('SIGINT');
  const onTerm = onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  // EPIPE (stdout closed early, e.g. `| head`) is reported to the write callback; never crash on it
  process.stdout.on('error', () => {});

  let code: number;
  try {
    code = await run(parsed.config, {
      stdout: process.stdout,
      stderr: process.stderr,
      signal: controller.signal,
    });
  } catch (error) {
    process.stderr.write(
      `http-get: error: internal error: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    code = EXIT.INTERNAL;
  } finally {
    removePendingTempFiles();
  }
  if (controller.signal.aborted) {
    // interrupted: sockets may linger in the agent; nothing is left to flush
    process.exit(code);
  }
  process.off('SIGINT', onInt);
  process.off('SIGTERM', onTerm);
  process.exitCode = code;
}

void main();
