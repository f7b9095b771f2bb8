// A SIGTERM or SIGINT sent to `npm test` (to npm itself, as a CI runner's cancel or a supervisor does)
// stops the whole test run: scripts/run-tests.mjs, node's test runner, the test files it runs and what
// they started, and the Redis the run started for itself. Through the real command: `npm test` (its
// `pretest` skipped with --ignore-scripts, which still runs the test script) on one test file that runs
// test files of its own (tests/redis-stall.test.mjs), with REDIS_URL unset and nothing at the default
// address, so the run starts its own redis-server. Once everything runs, the innermost test files are
// frozen (SIGSTOP: a test that hangs, the usual reason to cancel a run), so the run cannot end by itself.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { ROOT, cleanEnv } from './support.mjs';

/** A loopback port where nothing listens (it was free a moment ago). */
async function closedPort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Every process below `root` (pid → command line), read from /proc. */
function descendants(root) {
  const children = new Map();
  const commands = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      commands.set(Number(name), readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ').trim());
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  const out = new Map();
  const walk = (pid) => {
    for (const child of children.get(pid) ?? []) {
      out.set(child, commands.get(child));
      walk(child);
    }
  };
  walk(root);
  return out;
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    // a zombie is dead: it only waits for its parent to read its status
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const pause = () => new Promise((resolve) => setTimeout(resolve, 100));

/**
 * Starts `npm <args>`, waits (bounded by count) until one of its descendants' command lines matches
 * `busy`, freezes those (SIGSTOP: a hung step, the usual reason to cancel), sends `signal` to npm, and
 * asserts that npm exits and every process it had below it is gone.
 */
async function cancel(t, args, { busy, also = [], signal, env = {} }) {
  const npm = spawn('npm', args, {
    cwd: ROOT,
    env: cleanEnv({
      REDIS_URL: undefined,
      BULWARK_TEST_REDIS_DEFAULT_URL: `redis://127.0.0.1:${await closedPort()}`,
      NODE_TEST_CONTEXT: undefined,
      ...env,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  npm.stdout.on('data', (c) => (output += c));
  npm.stderr.on('data', (c) => (output += c));
  const exited = new Promise((resolve) => npm.once('exit', (code, sig) => resolve({ code, sig })));
  let seen = new Map();
  t.after(() => {
    // never leave one behind, even when the test fails
    for (const pid of [npm.pid, ...seen.keys()]) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  });

  const ready = () => {
    const commands = [...seen.values()];
    return [busy, ...also].every((re) => commands.some((c) => re.test(c)));
  };
  for (let i = 0; i < 1200 && !ready(); i++) {
    await pause();
    seen = descendants(npm.pid);
  }
  assert.ok(ready(), `the run never got going:\n${[...seen.values()].join('\n')}\n--- output\n${output}`);

  for (const [pid, command] of seen) if (busy.test(command)) process.kill(pid, 'SIGSTOP');
  process.kill(npm.pid, signal);
  const npmGone = await Promise.race([
    exited,
    new Promise((r) => setTimeout(r, 60_000, 'still running').unref()),
  ]);
  // the steps, test files and Redis are stopped, not left running without a parent
  let left = [];
  for (let i = 0; i < 300; i++) {
    left = [...seen.keys()].filter(isAlive);
    if (left.length === 0) break;
    await pause();
  }
  assert.notEqual(npmGone, 'still running', `npm ${args.join(' ')} did not exit after ${signal}\n${output}`);
  assert.deepEqual(
    left.map((pid) => `${pid} ${seen.get(pid)}`),
    [],
    `still running after ${signal} to npm ${args.join(' ')}`,
  );
}

describe('npm test, sent a signal', () => {
  for (const signal of ['SIGTERM', 'SIGINT']) {
    it(`${signal} to npm stops the runner, node --test, the test files and the run's own Redis`, (t) =>
      cancel(t, ['test', '--ignore-scripts', '--', 'tests/redis-stall'], {
        busy: /dist\/rate-limit\/limiter\.test\.js/,
        also: [/redis-server/],
        signal,
      }));
  }

  it('SIGTERM to npm during the pretest step (lint) stops the step and all it started', (t) =>
    cancel(t, ['test', '--', 'tests/redis-stall'], { busy: /eslint/, signal: 'SIGTERM' }));
});
