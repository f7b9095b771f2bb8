// TRACEPARENT (OpenTelemetry's environment carrier): every request of the run carries the caller's
// trace, with the run as one child span; an invalid one is ignored with a warning. Through the built CLI.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startFaultServer, type FaultServer } from '@bulwark/fault-server';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const CALLER = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
let s: FaultServer;

before(async () => {
  s = await startFaultServer();
});
after(() => s.close());

async function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stderr };
}

test('every request carries the caller’s trace id, all with the run’s one span id', async () => {
  s.reset();
  const r = await cli([`${s.origin}/a`, `${s.origin}/b`, `${s.origin}/c`], { TRACEPARENT: CALLER });
  assert.equal(r.code, 0, r.stderr);
  const sent = s.requests.map((q) => String(q.headers['traceparent']));
  assert.equal(sent.length, 3);
  assert.equal(new Set(sent).size, 1, sent.join('\n'));
  assert.match(sent[0]!, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
  assert.notEqual(sent[0], CALLER);
});

test('an invalid TRACEPARENT is ignored with a warning', async () => {
  s.reset();
  const r = await cli([`${s.origin}/a`], { TRACEPARENT: '00-zz' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: TRACEPARENT is not a W3C traceparent/);
  assert.equal(s.requests[0]!.headers['traceparent'], undefined);
});
