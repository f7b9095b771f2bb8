// fetchAll's per-attempt policies beyond retry and the breaker: the `bulwark-timeout-ms` budget header,
// adaptive throttling per host and hedging. Over loopback against @bulwark/fault-server; time is the
// injected clock's, and the tests wait on events (requests seen by the server), never on sleeps.
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import {
  DEADLINE_HEADER,
  InvalidOptionError,
  runWithDeadline,
  retryBudget,
  seededRandom,
  type AdaptiveThrottleOptions,
} from '@bulwark/core';
import { startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { FakeClock } from '@bulwark/core/testing';
import { TestClock } from '../clock.test.support.js';
import { fetchAll, type FetchAllOptions, type FetchResult } from '../index.js';

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
  const collecting = collect(
    fetchAll([`${s.origin}/a`, `${s.origin}/flaky`], { attemptTimeoutMs: 1_500, clock }),
  );
  // the retry's backoff (shorter than any timeout) is due when the test moves the clock
  clock.advance(await clock.waitForTimers((ms) => ms < 1_000));
  const results = await collecting;
  assert.deepEqual(
    results.map((r) => [r.url, r.ok, r.attempts]).sort(),
    [
      [`${s.origin}/a`, true, 1],
      [`${s.origin}/flaky`, true, 2],
    ],
    JSON.stringify(results),
  );
  assert.equal(s.requestCount, 3, JSON.stringify(s.requests)); // the retry of /flaky carries one too
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
    fetchAll([`${s.origin}/a`], { attemptTimeoutMs: 1_000, deadlineHeader: { allowanceMs: 100 }, clock }),
  );
  await collect(fetchAll([`${s.origin}/b`], { attemptTimeoutMs: 1_000, deadlineHeader: false, clock }));
  assert.equal(s.requests[0]!.headers[DEADLINE_HEADER], '900');
  assert.equal(s.requests[1]!.headers[DEADLINE_HEADER], undefined);
});

test('an attempt whose caller’s budget is spent before it goes is not sent (TIMEOUT)', async () => {
  const s = await server();
  const clock = new TestClock();
  const [r] = await runWithDeadline({ deadline: clock.now() + 4, clock }, () =>
    collect(fetchAll([`${s.origin}/a`], { deadlineHeader: { allowanceMs: 5 }, clock })),
  );
  assert.equal(r!.errorCode, 'TIMEOUT');
  assert.equal(r!.attempts, 0);
  assert.equal(s.requestCount, 0);
});

test('an attempt timeout shorter than the allowance is still sent, with the smallest budget (red-team RT-2 F1)', async () => {
  const s = await server();
  await collect(
    fetchAll([`${s.origin}/a`], {
      attemptTimeoutMs: 4,
      deadlineHeader: { allowanceMs: 5 },
      clock: new TestClock(),
    }),
  );
  assert.equal(s.requestCount, 1);
  assert.equal(s.requests[0]!.headers[DEADLINE_HEADER], '1');
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

/**
 * A backend whose capacity is a tenth of the load offered to it, counted in URLs, not time: each URL the
 * client reads adds 0.1 of a token (at most one banked); a request that finds a whole token is accepted
 * (200), any other is refused (503). Without throttling every URL reaches it and 1 in 10 is accepted.
 */
async function overloaded(
  urls: number,
  adaptiveThrottle: FetchAllOptions['adaptiveThrottle'],
): Promise<{ reached: number; accepted: number; results: FetchResult[]; throttled: number }> {
  let tokens = 0;
  let reached = 0;
  let accepted = 0;
  const srv = createServer((_req, res) => {
    reached++;
    if (tokens >= 1) {
      tokens--;
      accepted++;
      res.end('ok');
    } else {
      res.statusCode = 503;
      res.end('overloaded');
    }
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const origin = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  function* input(): Generator<string> {
    for (let i = 0; i < urls; i++) {
      tokens = Math.min(1, tokens + 0.1);
      yield `${origin}/${i}`;
    }
  }
  try {
    // one URL at a time, no retries, a breaker that never opens: only the throttle decides; a clock that
    // does not move keeps every request in the throttle's window (the count is all that matters)
    const run = fetchAll(input(), {
      concurrency: 1,
      readAhead: 0,
      retry: { maxAttempts: 1 },
      circuitBreaker: { strategy: { type: 'consecutive', threshold: 1_000_000 } },
      clock: new TestClock(),
      adaptiveThrottle,
    });
    const results = await collect(run);
    return { reached, accepted, results, throttled: run.stats.throttled };
  } finally {
    srv.closeAllConnections();
    srv.close();
  }
}

test('adaptive throttling is on by default: against a backend refusing 90 %, what reaches it drops to about k × accepts', async () => {
  const n = 600;
  const random = (): Partial<AdaptiveThrottleOptions> => ({ random: seededRandom(7) });
  const off = await overloaded(n, false);
  const k2 = await overloaded(n, random());
  const k4 = await overloaded(n, { ...random(), k: 4 });
  // without it: every URL reaches the backend, 1 in 10 is accepted
  assert.equal(off.reached, n);
  assert.ok(off.reached / off.accepted >= 9, `off: ${off.reached} / ${off.accepted}`);
  assert.equal(off.throttled, 0);
  // with k = 2 (the default) and k = 4: about k requests per accept (the first 20 are never throttled)
  const r2 = k2.reached / k2.accepted;
  const r4 = k4.reached / k4.accepted;
  assert.ok(r2 >= 1.5 && r2 <= 3, `k = 2: ${k2.reached} / ${k2.accepted} = ${r2}`);
  assert.ok(r4 >= 3 && r4 <= 5.5, `k = 4: ${k4.reached} / ${k4.accepted} = ${r4}`);
  assert.ok(k2.reached < n / 3, `k = 2: ${k2.reached} of ${n} reached it`);
  // every URL not sent is THROTTLED: none sent, counted in stats.throttled
  for (const run of [k2, k4]) {
    const throttled = run.results.filter((r) => r.errorCode === 'THROTTLED');
    assert.equal(throttled.length, n - run.reached);
    assert.equal(run.throttled, throttled.length);
    assert.ok(throttled.every((r) => r.attempts === 0 && !r.ok));
  }
});

test('a throttled attempt is not retried and never counts against the breaker', async () => {
  const s = await server();
  s.setFault({ type: 'status', status: 503 });
  // every attempt is refused; the throttle starts after 3 requests; the breaker would open after 10
  // failures it sees, so if throttled attempts counted it would open within the 40 URLs
  const run = fetchAll(
    Array.from({ length: 40 }, (_, i) => `${s.origin}/${i}`),
    {
      concurrency: 1,
      readAhead: 0,
      retry: { maxAttempts: 1 },
      circuitBreaker: { strategy: { type: 'consecutive', threshold: 10 } },
      adaptiveThrottle: { minimumRequests: 3, k: 1, random: () => 0 },
      clock: new TestClock(),
    },
  );
  const results = await collect(run);
  // random() = 0 rejects whenever p > 0: after the 3 requests (none accepted), every attempt is throttled
  assert.equal(s.requestCount, 3);
  assert.equal(results.filter((r) => r.errorCode === 'THROTTLED').length, 37);
  assert.equal(run.stats.throttled, 37);
  assert.equal(run.stats.breakerTrips.size, 0);
  assert.equal(run.stats.retries, 0);
});

test('adaptiveThrottle and hedge are validated, naming the option', () => {
  const bad: [FetchAllOptions, string][] = [
    [{ adaptiveThrottle: { k: 0.5 } }, 'fetchAll.adaptiveThrottle.k'],
    [{ adaptiveThrottle: { windowMs: -1 } }, 'fetchAll.adaptiveThrottle.windowMs'],
    [{ adaptiveThrottle: { keyOf: () => 'x' } }, 'fetchAll.adaptiveThrottle.keyOf'],
    [{ adaptiveThrottle: true as never }, 'fetchAll.adaptiveThrottle'],
    [{ adaptiveThrottle: { kk: 2 } as never }, 'fetchAll.adaptiveThrottle.kk'],
    [{ hedge: { delayMs: -1 } }, 'fetchAll.hedge.delayMs'],
    [{ hedge: { delayMs: 10, percentile: 0.9 } }, 'fetchAll.hedge.percentile'],
    [{ hedge: { idempotent: () => true } }, 'fetchAll.hedge.idempotent'],
    [{ hedge: { maxHedges: 99 } }, 'fetchAll.hedge.maxHedges'],
    [{ hedge: 'on' as never }, 'fetchAll.hedge'],
  ];
  for (const [options, option] of bad) {
    assert.throws(
      () => fetchAll([], options),
      (e: unknown) => e instanceof InvalidOptionError && e.option === option,
      JSON.stringify(options),
    );
  }
  fetchAll([], { hedge: { delayMs: 10, idempotent: true } }); // says what GET already is: accepted
});

test('hedging: a request that stalls is overtaken by a hedge; the stalled one is aborted on the wire', async () => {
  const s = await server();
  s.setFault({ type: 'blackhole' }, { path: '/x', times: 1 });
  const clock = new TestClock();
  const run = fetchAll([`${s.origin}/x`], {
    hedge: { delayMs: 50, budget: retryBudget({ ratio: 1, minRetriesPerSecond: 0, clock }) },
    clock,
  });
  const collecting = collect(run);
  await s.waitForRequests(1);
  clock.advance(50);
  const [r] = await collecting;
  assert.equal(r!.ok, true);
  assert.equal(r!.status, 200);
  assert.equal(r!.attempts, 2);
  assert.equal(run.stats.hedges, 1);
  assert.equal(run.stats.retries, 0);
  assert.equal(s.requestCount, 2);
  assert.equal(s.requests[0]!.fault, 'blackhole');
  await s.waitForIdle(); // the stalled request's connection was closed: the server saw it end
  assert.notEqual(s.requests[0]!.endedAt, undefined);
});

test('hedges get connections of their own: with every per-host connection busy, each hedge reaches the server (red-team RT-2 F2)', async () => {
  // a host slow on every request: each one is held until the test lets them all answer
  const seen = new EventEmitter();
  const held: Array<() => void> = [];
  const paths: string[] = [];
  /** Held requests whose connection closed before the test let them answer (undici's backstop timer). */
  let cutBeforeAnswer = 0;
  let answering = false;
  const slow = createServer((req, res) => {
    paths.push(req.url!);
    res.on('close', () => {
      if (!answering) cutBeforeAnswer++;
    });
    held.push(() => res.end('x'));
    seen.emit('request');
  });
  slow.listen(0, '127.0.0.1');
  await once(slow, 'listening');
  const origin = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
  const arrived = async (n: number) => {
    while (paths.length < n) await once(seen, 'request');
  };
  try {
    const clock = new FakeClock();
    const run = fetchAll([`${origin}/a`, `${origin}/b`], {
      perHostConcurrency: 2,
      concurrency: 2,
      hedge: { delayMs: 50, budget: retryBudget({ ratio: 1, minRetriesPerSecond: 0, clock }) },
      clock,
    });
    const collecting = collect(run);
    await arrived(2); // both per-host connections are busy
    clock.advance(50); // both hedges are due: they must not wait behind the held requests
    await arrived(4);
    // the hedges went out while the first requests still held both connections (without room of their
    // own they wait until undici's backstop timer cuts one of those)
    assert.equal(cutBeforeAnswer, 0);
    answering = true;
    for (const answer of held.splice(0)) answer();
    const results = await collecting;
    assert.deepEqual(
      results.map((r) => [r.ok, r.attempts]),
      [
        [true, 2],
        [true, 2],
      ],
    );
    assert.equal(run.stats.hedges, 2);
    assert.deepEqual(
      paths.sort(),
      ['/a', '/a', '/b', '/b'],
      'every request counted in attempts reached the server',
    );
  } finally {
    slow.closeAllConnections();
    slow.close();
  }
});

test('hedging is off by default: a stalled request waits for its timeout', async () => {
  const s = await server();
  s.setFault({ type: 'blackhole' }, { path: '/x', times: 1 });
  const clock = new TestClock();
  const run = fetchAll([`${s.origin}/x`], { attemptTimeoutMs: 1_000, retry: { maxAttempts: 1 }, clock });
  const collecting = collect(run);
  await s.waitForRequests(1);
  clock.advance(50);
  clock.advance(950);
  const [r] = await collecting;
  assert.equal(r!.errorCode, 'TIMEOUT');
  assert.equal(s.requestCount, 1);
  assert.equal(run.stats.hedges, 0);
});
