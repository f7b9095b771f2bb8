/**
 * The process as `npm start` runs it: scripts/start.mjs → dist/src/main.js on embedded defaults (no
 * Redis, no collector), JSON logs on stdout, a clean exit on SIGTERM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ask as askOnce, askPolitely as ask, HeldValidator, spawnService } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const START = `${ROOT}scripts/start.mjs`;
const MAIN = `${ROOT}apps/gcd-service/dist/src/main.js`;
const launch = (script: string, env: Record<string, string>) => spawnService(env, { args: [script] });

/** The pids of the direct children of `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('npm start (scripts/start.mjs) serves the form and the API on embedded defaults', async () => {
  const started = await launch(START, {});
  try {
    assert.match(started.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'loopback by default');
    const form = await ask(`${started.url}/`);
    assert.equal(form.status, 200);
    assert.match(form.text, /<form action="\/gcd"/);
    const api = await ask(`${started.url}/api/gcd?n=18446744073709551615&m=4294967295`);
    assert.deepEqual(api.json(), { n: '18446744073709551615', m: '4294967295', gcd: '4294967295' });
    const big = await ask(`${started.url}/api/gcd?n=${'9'.repeat(1000)}&m=${'3'.repeat(999)}`);
    assert.equal(big.status, 200, 'the worker file resolves from dist');
    assert.equal(big.headers['x-gcd-compute'], 'pool');
  } finally {
    started.child.kill('SIGTERM');
  }
  const { code, signal } = await started.exit;
  assert.equal(
    started.lines.filter((l) => /listening/.test(l)).length,
    1,
    '"listening" is logged once (finding 10)',
  );
  assert.ok(code === 0 || code === 143 || signal === 'SIGTERM', `exit ${code} ${signal}`);
});

test('main.js logs JSON, never the Redis password, and exits 0 on SIGTERM', async () => {
  const started = await launch(MAIN, {
    REDIS_URL: 'redis://:canary-s3cret@127.0.0.1:1/0',
    LOG_LEVEL: 'info',
  });
  await ask(`${started.url}/api/gcd?n=12&m=18`);
  started.child.kill('SIGTERM');
  const { code } = await started.exit;
  assert.equal(code, 0);
  assert.ok(started.lines.length > 0);
  for (const line of started.lines) {
    assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
    assert.doesNotMatch(line, /canary-s3cret/);
  }
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} to npm's pid drains the service: the request in flight completes and no process is left (finding 6)`, async () => {
    const validator = new HeldValidator();
    const validatorUrl = await validator.listen();
    const npm = await spawnService(
      {
        VALIDATOR_URL: validatorUrl,
        VALIDATOR_TIMEOUT_MS: '60000',
        VALIDATOR_DEADLINE_MS: '60000',
        SHUTDOWN_TIMEOUT_MS: '60000',
        npm_config_update_notifier: 'false',
      },
      { command: 'npm', args: ['start', '--silent'], cwd: ROOT },
    );
    const service = childrenOf(npm.child.pid!);
    try {
      assert.equal(service.length, 1, `npm runs one process: ${service.join(', ')}`);
      const inFlight = askOnce(`${npm.url}/api/gcd?n=12&m=18`);
      await validator.reached(1);
      npm.child.kill(signal); // as a supervisor would: to npm's pid only
      await npm.logged('shutdown started: readiness failing, draining');
      validator.release();
      const res = await inFlight;
      assert.equal(res.status, 200, 'the request in flight completed');
      await npm.logged('shutdown complete');
      await npm.exit; // npm waits for the service, then exits
      assert.equal(alive(service[0]!), false, 'the service did not outlive npm');
    } finally {
      for (const pid of service) if (alive(pid)) process.kill(pid, 'SIGKILL');
      npm.child.kill('SIGKILL');
      await validator.close();
    }
  });
}
