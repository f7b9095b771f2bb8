#!/usr/bin/env node
// `npm test`'s `pretest` step: the machine check (scripts/test-env.mjs), then the build, lint and format
// check (the `build`, `lint` and `format:check` scripts of package.json, run as npm would run them), in
// that order, stopping at the first that fails.
// package.json runs this as `exec node scripts/pretest.mjs`, so no shell sits between npm and this
// process: a SIGINT/SIGTERM/SIGHUP to `npm test` reaches it, and it stops the running step with all it
// started (each step runs in a process group of its own), then exits.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireSupportedNode } from './node-version.mjs';

requireSupportedNode('npm test');

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const steps = [
  ['test-env', 'node scripts/test-env.mjs'],
  ...['build', 'lint', 'format:check'].map((name) => [name, scripts[name]]),
];

const SIGNAL_CODE = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
let current;
let stopSignal;
const killGroup = (signal) => {
  try {
    process.kill(-current.pid, signal);
  } catch {
    // already gone
  }
};
for (const signal of Object.keys(SIGNAL_CODE)) {
  process.on(signal, () => {
    if (stopSignal !== undefined || current === undefined) process.exit(SIGNAL_CODE[signal]);
    stopSignal = signal;
    killGroup(signal);
    setTimeout(() => killGroup('SIGKILL'), 5000); // a step that does not end on the signal
  });
}

for (const [name, command] of steps) {
  console.error(`\n> ${name}: ${command}`);
  current = spawn('/bin/sh', ['-c', command], { cwd: ROOT, stdio: 'inherit', detached: true });
  const code = await new Promise((resolve) => {
    current.on('error', (error) => {
      console.error(`pretest: could not run ${name}: ${error.message}`);
      resolve(1);
    });
    current.on('close', (status) => resolve(status ?? 1));
  });
  if (stopSignal !== undefined) {
    killGroup('SIGKILL'); // whatever the step started and left
    process.exit(SIGNAL_CODE[stopSignal]);
  }
  if (code !== 0) process.exit(code);
}
