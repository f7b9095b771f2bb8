#!/usr/bin/env node
// Runs every compiled test file (`dist/**/*.test.js` in each workspace) with node's own test runner.
// Usage: node scripts/run-tests.mjs [path-prefix ...]   e.g. `npm test -- packages/core`
// `npm test` builds, lints and checks formatting first (the `pretest` script).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const workspaces = ['packages', 'apps'].flatMap((top) =>
  existsSync(join(root, top)) ? readdirSync(join(root, top)).map((d) => join(top, d)) : [],
);

function collect(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'fixtures') continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) collect(full, out);
    else if (name.endsWith('.test.js')) out.push(full);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = workspaces
  .flatMap((ws) => collect(join(root, ws, 'dist'), []))
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((p) => f.startsWith(p)))
  .sort();

if (files.length === 0) {
  console.error('run-tests: no compiled test files found; run `npm run build` first.');
  process.exit(1);
}

const result = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=2', '--enable-source-maps', ...files],
  { cwd: root, stdio: 'inherit', env: { ...process.env, BULWARK_REPO_ROOT: root } },
);
process.exit(result.status ?? 1);
