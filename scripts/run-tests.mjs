#!/usr/bin/env node
// Runs every compiled test file (`dist/**/*.test.js` in each workspace) and the repository-level tests
// (`tests/*.test.mjs`) with node's own test runner.
// Usage: node scripts/run-tests.mjs [path-prefix ...]   e.g. `node scripts/run-tests.mjs packages/core`
// `npm test` checks the machine, builds, lints and checks formatting first (the `pretest` script).
// Before the tests start, what they need is made present (scripts/test-env.mjs): tools installed when
// possible, and a Redis of our own when REDIS_URL is unset and none answers at 127.0.0.1:6379 — stopped
// when the run ends, however it ends.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { delimiter, dirname, join, relative } from 'node:path';
import { requireSupportedNode } from './node-version.mjs';
import { ROOT, TestEnvError, needsOf, prepareTestEnv } from './test-env.mjs';

requireSupportedNode('run-tests', ['scripts/run-tests.mjs', ...process.argv.slice(2)].join(' '));

// BULWARK_EXPECT_NODE (set by .ci/run's floor leg): the exact Node version this run must be on.
const expected = process.env.BULWARK_EXPECT_NODE;
if (expected !== undefined && expected !== '' && expected.replace(/^v/, '') !== process.versions.node) {
  console.error(
    `run-tests: BULWARK_EXPECT_NODE=${expected}, but this is Node ${process.version} (${process.execPath}).`,
  );
  process.exit(1);
}

const workspaces = ['packages', 'apps'].flatMap((top) =>
  existsSync(join(ROOT, top)) ? readdirSync(join(ROOT, top)).map((d) => join(top, d)) : [],
);

function collect(dir, out, suffix) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'fixtures') continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) collect(full, out, suffix);
    else if (name.endsWith(suffix)) out.push(full);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = [
  ...workspaces.flatMap((ws) => collect(join(ROOT, ws, 'dist'), [], '.test.js')),
  ...collect(join(ROOT, 'tests'), [], '.test.mjs'),
]
  .map((f) => relative(ROOT, f))
  .filter((f) => filters.length === 0 || filters.some((p) => f.startsWith(p)))
  .sort();

if (files.length === 0) {
  console.error(
    filters.length === 0
      ? 'run-tests: no compiled test files found; run `npm run build` first.'
      : `run-tests: no test file starts with ${filters.join(' or ')} (after \`npm run build\`).`,
  );
  process.exit(1);
}

let prepared;
try {
  prepared = await prepareTestEnv(needsOf(files.map((f) => join(ROOT, f))));
} catch (error) {
  if (!(error instanceof TestEnvError)) throw error;
  console.error(`\n${error.message}\n`);
  process.exit(1);
}

console.error(`run-tests: Node ${process.version} (${process.execPath}), ${files.length} test files`);

// A hang guard only (ten minutes for one test): tests wait on events, never on the clock.
// The test runner gets a process group of its own (detached), so that it, every test file it runs and
// whatever they started can be stopped together: on SIGINT/SIGTERM/SIGHUP to this process (npm passes
// its signals on to it: the npm script is `exec node scripts/run-tests.mjs`, with no shell in between),
// and at the end of the run, for anything a test left behind.
const child = spawn(
  process.execPath,
  ['--test', '--test-concurrency=2', '--test-timeout=600000', '--enable-source-maps', ...files],
  {
    cwd: ROOT,
    stdio: 'inherit',
    detached: true,
    env: {
      ...process.env,
      ...prepared.env,
      BULWARK_REPO_ROOT: ROOT,
      // a test that starts `node` by name gets this Node, not whatever else is on PATH
      PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
    },
  },
);
const closed = new Promise((resolve) => {
  child.on('close', (status) => resolve(status ?? 1));
  child.on('error', (error) => {
    console.error(`run-tests: could not start the test runner: ${error.message}`);
    resolve(1);
  });
});

/** Sends `signal` to the test runner's process group; false when nobody is left in it. */
function signalGroup(signal) {
  if (child.pid === undefined) return false;
  try {
    process.kill(-child.pid, signal);
    return true;
  } catch {
    return false;
  }
}

const GRACE_MS = 5000; // for the test processes to end on the signal before they are killed
const SIGNAL_CODE = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
let stopping = false;
for (const signal of Object.keys(SIGNAL_CODE)) {
  process.on(signal, () => {
    if (stopping) {
      signalGroup('SIGKILL'); // a second signal: no more waiting
      return;
    }
    stopping = true;
    console.error(`\nrun-tests: ${signal}: stopping the test run`);
    signalGroup(signal);
    const grace = new Promise((resolve) => setTimeout(resolve, GRACE_MS).unref());
    void Promise.race([closed, grace])
      .then(() => {
        signalGroup('SIGKILL'); // a test that did not end on the signal (hung, stopped, ignoring it)
        return prepared.stop();
      })
      .finally(() => process.exit(SIGNAL_CODE[signal]));
  });
}

const code = await closed;
if (!stopping) {
  if (signalGroup('SIGKILL'))
    console.error('run-tests: processes the tests started were still running at the end: stopped them.');
  await prepared.stop();
  process.exit(code);
}
