// fetchAll's per-attempt policies beyond retry and the breaker: the `bulwark-timeout-ms` budget header,
// adaptive throttling per host and hedging. Over loopback against @bulwark/fault-server; time is the
// injected clock's, and the tests wait on events (requests seen by the server), never on sleeps.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { DEADLINE_HEADER, InvalidOptionError } from '@bulwark/core';
import { startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { TestClock } from './clock.test.support.js';
import { fetchAll, type FetchResult } from './index.js';

const servers: FaultServer[] = [];
async function server(): Promise<FaultServer> {
  const s = await startFaultServer();
  servers.push(s);
  return s;
}
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function collect(iterable: AsyncIterable<FetchResult>): Promise<FetchResult[]> {
  const out: FetchResult[] = [];
  for await (const r of iterable) out.push(r);
  return out;
}

test('every attempt sends its budget: bulwark-timeout-ms, at most the attempt timeout minus the allowance', async () => {
  const s = await server();
  s.setFault({ type: 'status', status: 503 }, { path: '/flaky', times: 1 });
  const clock = new TestClock();
  const collecting = collect(fetchAll([`${s.origin}/a`, `${s.origin}/flaky`], { timeoutMs: 1_500, clock }));
  // the retry's backoff (shorter than any timeout) is due when the test moves the clock
  clock.advance(await clock.waitForTimers((ms) => ms < 1_000));
  const results = await collecting;
  assert.deepEqual(
    results.map((r) => r.ok),
    [true, true],
  );
  assert.equal(s.requestCount, 3); // the retry of /flaky carries one too
  for (const r of s.requests) {
    const value = r.headers[DEADLINE_HEADER];
    assert.equal(typeof value, 'string', `${r.url} carries the header`);
    assert.ok(Number(value) > 0 && Number(value) <= 1_500 - 5, `${r.url}: ${String(value)}`);
  }
  // a clock that does not move: exactly the attempt timeout minus the default 5 ms allowance
  assert.equal(s.requests[0]!.headers[DEADLINE_HEADER], '1495');
});

test('deadlineHeader: { allowanceMs } changes the allowance; false sends none', async () => {
  const s = await server();
  const clock = new TestClock();
  await collect(
    fetchAll([`${s.origin}/a`], { timeoutMs: 1_000, deadlineHeader: { allowanceMs: 100 }, clock }),
  );
  await collect(fetchAll([`${s.origin}/b`], { timeoutMs: 1_000, deadlineHeader: false, clock }));
  assert.equal(s.requests[0]!.headers[DEADLINE_HEADER], '900');
  assert.equal(s.requests[1]!.headers[DEADLINE_HEADER], undefined);
});

test('an attempt whose budget is spent before it goes is not sent (TIMEOUT)', async () => {
  const s = await server();
  const [r] = await collect(
    fetchAll([`${s.origin}/a`], { timeoutMs: 4, deadlineHeader: { allowanceMs: 5 }, clock: new TestClock() }),
  );
  assert.equal(r!.errorCode, 'TIMEOUT');
  assert.equal(r!.attempts, 0);
  assert.equal(s.requestCount, 0);
});

test('deadlineHeader is validated, naming the option', () => {
  assert.throws(
    () => fetchAll([], { deadlineHeader: 'yes' as never }),
    (e: unknown) => e instanceof InvalidOptionError && e.option === 'fetchAll.deadlineHeader',
  );
  assert.throws(
    () => fetchAll([], { deadlineHeader: { allowanceMs: -1 } }),
    (e: unknown) => e instanceof InvalidOptionError && e.option === 'fetchAll.deadlineHeader.allowanceMs',
  );
  assert.throws(
    () => fetchAll([], { deadlineHeader: { allowance: 3 } as never }),
    (e: unknown) => e instanceof InvalidOptionError,
  );
});
