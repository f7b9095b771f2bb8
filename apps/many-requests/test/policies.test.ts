// many-requests' adaptive throttling, hedging and budget header flags: parsed onto fetchAll's options
// (core's names), validated, and seen at a real loopback server by the spawned CLI.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ADAPTIVE_THROTTLE_DEFAULTS, DEADLINE_HEADER, HEDGE_DEFAULTS } from '@bulwark/core';
import { startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { EXIT, parseArgs, type CliConfig } from '../src/config.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
let s: FaultServer;
before(async () => {
  s = await startFaultServer();
});
after(async () => {
  await s.close();
});

function config(args: string[]): CliConfig {
  const r = parseArgs([...args, 'http://x/'], '0.0.0');
  assert.equal(r.kind, 'run', r.kind === 'exit' ? r.stderr : '');
  return (r as { config: CliConfig }).config;
}

function usage(args: string[]): string {
  const r = parseArgs([...args, 'http://x/'], '0.0.0');
  assert.equal(r.kind, 'exit');
  assert.equal((r as { code: number }).code, EXIT.USAGE);
  return (r as { stderr: string }).stderr;
}

test('adaptive throttling is on with core’s k; --throttle-k and --no-adaptive-throttle map onto it', () => {
  assert.deepEqual(config([]).fetchAll.adaptiveThrottle, { k: ADAPTIVE_THROTTLE_DEFAULTS.k });
  assert.deepEqual(config(['--throttle-k', '1.5']).fetchAll.adaptiveThrottle, { k: 1.5 });
  assert.equal(config(['--no-adaptive-throttle']).fetchAll.adaptiveThrottle, false);
  assert.match(usage(['--throttle-k', '0.9']), /--throttle-k.*expected a decimal number from 1 to 1000/);
  assert.match(usage(['--throttle-k', 'two']), /--throttle-k/);
  assert.match(
    usage(['--no-adaptive-throttle', '--throttle-k', '3']),
    /choose one of --no-adaptive-throttle and --throttle-k/,
  );
});

test('hedging is off; --hedge-after-ms turns it on with core’s budget ratio, --hedge-budget-ratio sets it', () => {
  assert.equal(config([]).fetchAll.hedge, false);
  // core's hedge options: delayMs, and a budget (a retry budget of the ratio, no floor)
  const hedge = (args: string[]): { delayMs: unknown; ratio: unknown; floor: unknown } => {
    const h = config(args).fetchAll.hedge;
    assert.ok(h !== false && h !== undefined && h.budget !== undefined);
    return { delayMs: h.delayMs, ratio: h.budget.ratio, floor: h.budget.minRetriesPerSecond };
  };
  assert.deepEqual(hedge(['--hedge-after-ms', '40']), {
    delayMs: 40,
    ratio: HEDGE_DEFAULTS.budgetRatio,
    floor: 0,
  });
  assert.deepEqual(hedge(['--hedge-after-ms', '0', '--hedge-budget-ratio', '0.05']), {
    delayMs: 0,
    ratio: 0.05,
    floor: 0,
  });
  assert.match(usage(['--hedge-after-ms', '-1']), /--hedge-after-ms/);
  assert.match(usage(['--hedge-after-ms', '1.5']), /expected an integer number of milliseconds/);
  assert.match(usage(['--hedge-after-ms', '5', '--hedge-budget-ratio', '2']), /--hedge-budget-ratio/);
  assert.match(usage(['--hedge-budget-ratio', '0.2']), /--hedge-budget-ratio needs --hedge-after-ms/);
});

async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, '-q', '--allow-failures', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

test('every request carries its budget: bulwark-timeout-ms at most the attempt timeout', async () => {
  s.reset();
  const r = await cli(['--attempt-timeout-ms', '2000', `${s.origin}/a`, `${s.origin}/b`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(s.requestCount, 2);
  for (const req of s.requests) {
    const v = Number(req.headers[DEADLINE_HEADER]);
    assert.ok(v > 0 && v <= 2000 - 5, `${req.url}: ${String(req.headers[DEADLINE_HEADER])}`);
  }
});

test('a host refusing everything: after 20 requests the rest are THROTTLED locally (k = 1, a mostly refused window)', async () => {
  s.reset();
  s.setFault({ type: 'status', status: 503 });
  const urls = Array.from({ length: 60 }, (_, i) => `${s.origin}/x${i}`);
  // one at a time, no retries, a breaker that does not open: what is not sent was throttled
  const r = await cli([
    '-c',
    '1',
    '--retries',
    '0',
    '--breaker-failures',
    '1000000',
    '--throttle-k',
    '1',
    ...urls,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { errorCode: string; attempts: number });
  const throttled = lines.filter((l) => l.errorCode === 'THROTTLED');
  assert.equal(lines.length, 60);
  assert.ok(throttled.length > 0, 'some were throttled');
  assert.ok(throttled.every((l) => l.attempts === 0));
  assert.equal(s.requestCount, 60 - throttled.length);
  assert.ok(s.requestCount >= 20, 'the first 20 always go');
  // and off: every URL reaches the host
  s.reset();
  s.setFault({ type: 'status', status: 503 });
  const off = await cli([
    '-c',
    '1',
    '--retries',
    '0',
    '--breaker-failures',
    '1000000',
    '--no-adaptive-throttle',
    ...urls,
  ]);
  assert.equal(off.code, 0, off.stderr);
  assert.equal(s.requestCount, 60);
});

test('--hedge-after-ms: a request that stalls is overtaken by a hedge; the stalled one is aborted', async () => {
  s.reset();
  s.setFault({ type: 'blackhole' }, { path: '/slow', times: 1 });
  const r = await cli(['--hedge-after-ms', '30', '--hedge-budget-ratio', '1', `${s.origin}/slow`]);
  assert.equal(r.code, 0, r.stderr);
  const [line] = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { ok: boolean; attempts: number });
  assert.equal(line!.ok, true);
  assert.equal(line!.attempts, 2);
  assert.equal(s.requestCount, 2);
  await s.waitForIdle(); // the stalled request's connection closed
});
