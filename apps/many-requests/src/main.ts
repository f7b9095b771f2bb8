#!/usr/bin/env node
// many-requests: process wiring only (signals, streams, exit). Everything else is in run.ts.
import { createRequire } from 'node:module';
import { removePendingTempFiles } from '@bulwark/cli-support';
import { EXIT } from './config.js';
import { writeMetricsFileSync } from './metrics.js';
import { Interrupted, current, runCli, runEnd } from './run.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

// A closed stdout is noticed by the result writer (exit 141) and a closed stderr has no one to tell:
// neither may crash the process with an unhandled 'error' event (e.g. `--help | head -1`).
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

const interrupt = new AbortController();
for (const name of ['SIGINT', 'SIGTERM'] as const) {
  process.on(name, () => {
    // first signal: abort in-flight requests, print the partial summary, exit 130 / 143; second: at once
    const reason = new Interrupted(name);
    if (interrupt.signal.aborted) {
      // second signal: leave now, without a partial output file, the metrics file still written
      removePendingTempFiles();
      if (current.metricsFile !== undefined)
        writeMetricsFileSync(current.metricsFile, runEnd(reason.exitCode));
      process.exit(reason.exitCode);
    }
    interrupt.abort(reason);
  });
}

let code: number;
try {
  code = await runCli({
    argv: process.argv.slice(2),
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    interrupt: interrupt.signal,
    version,
  });
} catch (error) {
  // a bug: said in one line, never with a stack trace
  process.stderr.write(
    `many-requests: internal error: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  code = EXIT.FAILED;
}
removePendingTempFiles();
// stdin may be a pipe that never ends (an interrupted run): do not wait for it
process.exit(code);
