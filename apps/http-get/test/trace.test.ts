// TRACEPARENT (OpenTelemetry's environment carrier): a traced caller's context reaches the server on
// every request, the run as a child span of the caller's; an invalid one is ignored with a warning; a
// traceparent given with -H wins. Over a real loopback server, through the built CLI.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { runCli } from './harness.js';

const CALLER = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
let s: FaultServer;

before(async () => {
  s = await startFaultServer();
});
after(() => s.close());

it('continues the caller’s trace: same trace id and flags, a span id of the run’s own', async () => {
  s.reset();
  const run = await runCli([`${s.origin}/a`, '--no-cache', '-v'], {
    env: { TRACEPARENT: CALLER, TRACESTATE: 'vendor=x' },
  });
  assert.equal(run.code, 0, run.stderr);
  const sent = s.requests[0]!.headers;
  assert.match(String(sent['traceparent']), /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
  assert.notEqual(sent['traceparent'], CALLER);
  assert.equal(sent['tracestate'], 'vendor=x');
  assert.match(run.stderr, /trace 4bf92f3577b34da6a3ce929d0e0e4736/);
});

it('without TRACEPARENT nothing is sent; an invalid one is ignored with a warning; -H traceparent wins', async () => {
  s.reset();
  assert.equal((await runCli([`${s.origin}/a`, '--no-cache'], { env: { TRACEPARENT: '' } })).code, 0);
  assert.equal(s.requests[0]!.headers['traceparent'], undefined);
  s.reset();
  const bad = await runCli([`${s.origin}/a`, '--no-cache'], { env: { TRACEPARENT: 'not-a-trace' } });
  assert.equal(bad.code, 0, bad.stderr);
  assert.match(bad.stderr, /warning: TRACEPARENT is not a W3C traceparent/);
  assert.equal(s.requests[0]!.headers['traceparent'], undefined);
  s.reset();
  const own = '00-11111111111111111111111111111111-2222222222222222-00';
  await runCli([`${s.origin}/a`, '--no-cache', '-H', `traceparent: ${own}`], {
    env: { TRACEPARENT: CALLER },
  });
  assert.equal(s.requests[0]!.headers['traceparent'], own);
});
