// Helpers for the repository-level tests (tests/*.test.mjs): the repository root, and child processes
// that are bounded in time and whose output is kept.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** The workspaces of the root package.json, each with its manifest. */
export function workspaces() {
  return readJson(`${ROOT}package.json`).workspaces.map((dir) => ({
    dir,
    manifest: readJson(`${ROOT}${dir}/package.json`),
  }));
}

/** The workspaces published to the registry (not private). */
export function publishable() {
  return workspaces().filter((w) => w.manifest.private !== true);
}

// npm passes its own state to scripts (npm_config_local_prefix names this repository, npm_package_* and
// npm_lifecycle_* describe the running script): a nested npm must not inherit it. Only the settings a
// user or a machine may give npm through the environment go through.
const NPM_PASSED = new Set([
  'npm_config_registry',
  'npm_config_cache',
  'npm_config_userconfig',
  'npm_config_globalconfig',
  'npm_config_cafile',
  'npm_config_strict_ssl',
  'npm_config_proxy',
  'npm_config_https_proxy',
  'npm_config_noproxy',
]);

/** process.env without npm's per-script variables, plus `extra` (an undefined value removes a variable). */
export function cleanEnv(extra = {}) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) && !NPM_PASSED.has(key.toLowerCase())) continue;
    env[key] = value;
  }
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/**
 * Runs a command to its end, or kills it after `timeoutMs` (a hang guard: the result says so, and the
 * test fails on the exit code). Resolves { code, signal, stdout, stderr, timedOut }.
 */
export function run(command, args, { cwd = ROOT, env = cleanEnv(), timeoutMs = 120_000, input } = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => err.push(c));
    child.on('error', (error) => err.push(Buffer.from(`spawn ${command}: ${error.message}\n`)));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        timedOut,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

/** A one-line description of a finished command, for assertion messages. */
export function describeRun(what, r) {
  return `${what}: exit ${r.code}${r.signal ? ` (${r.signal})` : ''}${r.timedOut ? ' — killed after its time limit' : ''}\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`;
}
