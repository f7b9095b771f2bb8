// --retries N makes N + 1 attempts whatever N (red-team RT-3 F1): the origin's breaker (5 failures in a
// row by default) must not open on one source's own retries and end the run as "circuit open" (exit 7)
// instead of the server's status (exit 22). Through the built CLI, against a loopback server.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { parseJson, runCli } from './harness.js';

let s: FaultServer;

before(async () => {
  s = await startFaultServer();
});
after(() => s.close());

it('--retries 6 against a server answering 503: 7 requests, then exit 22 with the status', async () => {
  s.reset();
  s.setFault({ type: 'status', status: 503 });
  const run = await runCli([`${s.origin}/x`, '--no-cache', '--retries', '6', '--json'], {
    killAfterMs: 120_000,
  });
  assert.equal(run.code, 22, run.stderr);
  assert.equal(s.requestCount, 7);
  const doc = parseJson(run);
  assert.equal(doc['status'], 503);
});

it('--timeout-ms shorter than the deadline header allowance (2–6 ms) is a timeout, exit 7 — never "internal error" (red-team RT-3 F2)', async () => {
  s.reset();
  for (const ms of ['2', '3', '5', '6']) {
    const run = await runCli([`${s.origin}/ok`, '--no-cache', '--timeout-ms', ms, '--json']);
    // a loopback answer may beat a few ms; what must never happen is exit 1 (a bug)
    assert.ok(run.code === 7 || run.code === 0, `--timeout-ms ${ms}: exit ${run.code}: ${run.stderr}`);
    if (run.code === 7) assert.notEqual((parseJson(run)['error'] as { code?: string }).code, 'INTERNAL');
  }
});
