#!/usr/bin/env node
// many-requests: process wiring only (signals, streams, exit). Everything else is in run.ts.
import { createRequire } from 'node:module';
import { runCli } from './run.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const interrupt = new AbortController();
let interrupts = 0;
process.on('SIGINT', () => {
  // first Ctrl-C: abort in-flight requests, print the partial summary, exit 130; second: exit at once
  if (++interrupts > 1) process.exit(130);
  interrupt.abort(new Error('interrupted (SIGINT)'));
});

const code = await runCli({
  argv: process.argv.slice(2),
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  interrupt: interrupt.signal,
  version,
});
// stdin may be a pipe that never ends (an interrupted run): do not wait for it
process.exit(code);
