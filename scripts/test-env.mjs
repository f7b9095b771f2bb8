#!/usr/bin/env node
// What the test suite needs from the machine, made present before any test runs:
//   chromium (Debian `chromium`), promtool (Debian `prometheus`), openssl (Debian `openssl`) and a Redis.
// Missing tools are installed with apt-get when this process may (root, Debian or Ubuntu); a Redis of
// our own is started on a free loopback port when REDIS_URL is unset and nothing answers at the default
// address. Where that is impossible, one message names what to install, before anything is built.
//
// `node scripts/test-env.mjs` (the `pretest` step): check and install for the whole suite, exit 1 with
// that one message when something cannot be had. `scripts/run-tests.mjs` imports `prepareTestEnv` for
// the test files it is about to run, and starts (and stops) the Redis.
//
// Environment:
//   REDIS_URL                       a Redis to use (must answer; never started or stopped here)
//   CHROMIUM_PATH                   the browser to use (else `chromium` on PATH)
//   BULWARK_TEST_REDIS_DEFAULT_URL  where to look for a running Redis when REDIS_URL is unset
//                                   (default redis://127.0.0.1:6379)
//   BULWARK_TEST_ASSUME_MISSING     for testing this script: comma-separated tools to treat as not
//                                   installed when first looked for (chromium, promtool, openssl,
//                                   redis-server, apt-get; `root` makes root count as any user); after
//                                   an apt-get install they are looked for again for real
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireSupportedNode } from './node-version.mjs';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/**
 * What the tests may need. A test file needs a tool when its text mentions the marker (a test that
 * spawns `promtool` names it; one that drives the browser imports playwright-core; one that talks to
 * Redis reads REDIS_URL).
 */
export const TOOLS = Object.freeze({
  chromium: { command: 'chromium', debian: 'chromium', marker: /playwright-core|chromium/ },
  promtool: { command: 'promtool', debian: 'prometheus', marker: /\bpromtool\b/ },
  openssl: { command: 'openssl', debian: 'openssl', marker: /['"]openssl['"]/ },
  redis: { command: 'redis-server', debian: 'redis-server', marker: /\bREDIS_URL\b|from 'ioredis'/ },
});

/** The tools (keys of TOOLS) that these test files need, from their text. */
export function needsOf(files) {
  const needs = new Set();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const [name, tool] of Object.entries(TOOLS)) if (tool.marker.test(text)) needs.add(name);
  }
  return needs;
}

/** Every test source of the repository (before anything is built): `*.test.ts` and `tests/*.test.mjs`. */
export function testSources(root = ROOT) {
  const out = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (/\.test\.(ts|mjs|js)$/.test(name)) out.push(full);
    }
  };
  for (const top of ['packages', 'apps', 'tests']) if (existsSync(join(root, top))) walk(join(root, top));
  return out;
}

function assumedMissing(env) {
  return new Set(
    (env.BULWARK_TEST_ASSUME_MISSING ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

/** The absolute path of `command` on PATH (an executable file), or undefined. */
export function which(command, path = process.env.PATH ?? '') {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const full = join(dir, command);
    try {
      accessSync(full, constants.X_OK);
      if (statSync(full).isFile()) return full;
    } catch {
      // not here
    }
  }
  return undefined;
}

function canApt(env, hidden) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0 && !hidden.has('root');
  const apt = hidden.has('apt-get') ? undefined : which('apt-get', env.PATH);
  return { ok: isRoot && apt !== undefined && existsSync('/etc/debian_version'), isRoot, apt };
}

/**
 * One RESP `PING` to a Redis URL: resolves true when something answers like a Redis (a `+` or `-`
 * reply, so a password-protected Redis counts), false on refusal, silence or anything else within
 * `timeoutMs`.
 */
export function redisAnswers(url, timeoutMs = 2000) {
  const u = new URL(url);
  const port = Number(u.port || 6379);
  const host = u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const socket = createConnection({ host, port });
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
    socket.on('connect', () => {
      // a TLS Redis (rediss:) cannot be pinged in clear text: that it accepts connections will do
      if (u.protocol === 'rediss:') done(true);
      else socket.write('PING\r\n');
    });
    let seen = '';
    socket.on('data', (chunk) => {
      seen += chunk.toString('latin1');
      if (seen.includes('\r\n')) done(/^[+-]/.test(seen));
    });
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * A redis-server of our own on a free loopback port. It writes nothing (no snapshot, no append-only file,
 * its log on a pipe whose last lines are kept for an error message), so nothing is left behind even when
 * this process is killed.
 */
async function startRedis(binary, log) {
  const failures = [];
  for (let tries = 1; tries <= 3; tries++) {
    const port = await freePort();
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    args.push('--dir', tmpdir(), '--logfile', '', '--daemonize', 'no');
    // setpriv --pdeathsig: the kernel ends this Redis when we die, even by SIGKILL
    const setpriv = which('setpriv');
    const options = { stdio: ['ignore', 'pipe', 'pipe'] };
    const child = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'TERM', '--', binary, ...args], options)
      : spawn(binary, args, options);
    let output = '';
    const keep = (chunk) => (output = (output + chunk).slice(-2000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let exited = false;
    const exit = new Promise((resolve) => child.once('exit', () => resolve((exited = true))));
    child.once('error', (error) => keep(`${error.message}\n`));
    const url = `redis://127.0.0.1:${port}`;
    for (let i = 0; i < 100 && !exited; i++) {
      if (await redisAnswers(url, 500)) {
        log(`test-env: started redis-server for this run at ${url} (stopped when the run ends)`);
        const stop = async () => {
          if (exited) return;
          child.kill('SIGTERM');
          await Promise.race([exit, new Promise((r) => setTimeout(r, 5000).unref())]);
          if (!exited) child.kill('SIGKILL');
        };
        return { url, stop, pid: child.pid };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGKILL');
    await exit;
    failures.push(`port ${port}: ${output.trim().split('\n').slice(-2).join(' / ')}`);
  }
  throw new TestEnvError(`could not start ${binary} on a loopback port (3 tries):\n${failures.join('\n')}`);
}

export class TestEnvError extends Error {
  name = 'TestEnvError';
}

/**
 * Makes what `needs` names present. Returns the environment for the tests (REDIS_URL, CHROMIUM_PATH)
 * and `stop()` for what was started. Throws one TestEnvError naming everything that is missing.
 * `startRedis: false` only checks that a Redis can be had (the pretest step).
 */
export async function prepareTestEnv(
  needs,
  { env = process.env, log = console.error, startRedis: start = true } = {},
) {
  const hidden = assumedMissing(env);
  const look = (tool, path = env.PATH) => (hidden.has(tool.command) ? undefined : which(tool.command, path));
  const out = {};
  const stops = [];

  // Which tools are wanted, and which of them are missing
  const defaultUrl = env.BULWARK_TEST_REDIS_DEFAULT_URL || DEFAULT_REDIS_URL;
  let redisUrl;
  const wanted = [];
  if (needs.has('chromium')) {
    if (env.CHROMIUM_PATH !== undefined) {
      if (!existsSync(env.CHROMIUM_PATH))
        throw new TestEnvError(
          `CHROMIUM_PATH=${env.CHROMIUM_PATH} does not exist: point it at a Chromium, or unset it to use chromium from PATH.`,
        );
    } else wanted.push('chromium');
  }
  if (needs.has('promtool')) wanted.push('promtool');
  if (needs.has('openssl')) wanted.push('openssl');
  if (needs.has('redis')) {
    if (env.REDIS_URL !== undefined && env.REDIS_URL !== '') {
      let ok = false;
      try {
        ok = await redisAnswers(env.REDIS_URL);
      } catch {
        // an unparseable URL: said below
      }
      if (!ok)
        throw new TestEnvError(
          `REDIS_URL=${redact(env.REDIS_URL)} does not answer (no Redis reply within 2 s): start that Redis, ` +
            'or unset REDIS_URL to let the tests use 127.0.0.1:6379 or a Redis of their own.',
        );
      redisUrl = env.REDIS_URL;
    } else {
      if (await redisAnswers(defaultUrl)) redisUrl = defaultUrl;
      else wanted.push('redis');
    }
  }
  let missing = wanted.filter((name) => look(TOOLS[name]) === undefined);

  if (missing.length > 0) {
    const apt = canApt(env, hidden);
    if (!apt.ok) throw new TestEnvError(missingMessage(missing, apt, defaultUrl));
    const packages = [...new Set(missing.map((name) => TOOLS[name].debian))];
    log(`test-env: installing ${packages.join(' ')} (apt-get, as root) for the tests…`);
    const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
    const update = spawnSync(apt.apt, ['update', '-qq'], { stdio: 'inherit', env: aptEnv, timeout: 600_000 });
    const install =
      update.status === 0
        ? spawnSync(apt.apt, ['install', '-y', '-qq', '--no-install-recommends', ...packages], {
            stdio: 'inherit',
            env: aptEnv,
            timeout: 1_200_000,
          })
        : update;
    missing = missing.filter((name) => which(TOOLS[name].command, env.PATH) === undefined);
    if (install.status !== 0 || missing.length > 0)
      throw new TestEnvError(
        `apt-get install ${packages.join(' ')} failed (exit ${install.status ?? install.error?.message}).\n` +
          missingMessage(
            missing.length > 0 ? missing : wanted,
            { ok: false, isRoot: true, apt: apt.apt },
            defaultUrl,
          ),
      );
    hidden.clear(); // installed: from now on look for real
  }

  if (needs.has('chromium') && env.CHROMIUM_PATH === undefined) out.CHROMIUM_PATH = look(TOOLS.chromium);
  if (needs.has('redis')) {
    if (redisUrl === undefined && start) {
      const redis = await startRedis(look(TOOLS.redis), log);
      stops.push(redis.stop);
      redisUrl = redis.url;
      out.BULWARK_TEST_REDIS_PID = String(redis.pid);
    }
    if (redisUrl !== undefined) out.REDIS_URL = redisUrl;
  }
  return {
    env: out,
    async stop() {
      for (const stop of stops.splice(0)) await stop();
    },
  };
}

function redact(url) {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.href;
  } catch {
    return JSON.stringify(url);
  }
}

const ELSEWHERE = Object.freeze({
  chromium: 'chromium (or set CHROMIUM_PATH)',
  promtool: 'promtool (from Prometheus)',
  openssl: 'openssl',
  redis: 'redis-server (or set REDIS_URL to a running Redis)',
});

function missingMessage(missing, apt, redisDefaultUrl) {
  const packages = [...new Set(missing.map((name) => TOOLS[name].debian))];
  const names = missing.map((name) => (name === 'redis' ? 'a Redis' : TOOLS[name].command));
  const list = names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
  const why = !apt.isRoot
    ? 'this is not root, so npm test cannot install them'
    : apt.apt === undefined || !existsSync('/etc/debian_version')
      ? 'this is not Debian or Ubuntu (no apt-get), so npm test cannot install them'
      : 'apt-get could not install them';
  return [
    `npm test cannot start: ${list} ${names.length === 1 ? 'is' : 'are'} missing, and ${why}.`,
    `  Debian/Ubuntu:  sudo apt-get install --no-install-recommends ${packages.join(' ')}`,
    `  elsewhere:      ${missing.map((name) => ELSEWHERE[name]).join(', ')}`,
    'Then run npm test again.' +
      (missing.includes('redis')
        ? ` (A Redis is needed because REDIS_URL is unset and nothing answers at ${redisDefaultUrl}.)`
        : ''),
  ].join('\n');
}

// `node scripts/test-env.mjs`: the pretest check for the whole suite.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  requireSupportedNode('npm test');
  const sources = testSources();
  try {
    const prepared = await prepareTestEnv(needsOf(sources), { startRedis: false });
    const found = Object.entries(prepared.env).map(([k, v]) => `${k}=${v}`);
    console.error(
      `test-env: ready for ${sources.length} test files${found.length ? ` (${found.join(', ')})` : ''}`,
    );
  } catch (error) {
    if (!(error instanceof TestEnvError)) throw error;
    console.error(`\n${error.message}\n`);
    process.exit(1);
  }
}
