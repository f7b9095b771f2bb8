// fetchAll over loopback, against @bulwark/fault-server. Time is the injected clock's (TestClock): timeouts,
// backoffs, breakers, paces and waits fire when the test advances it, so no assertion depends on how busy
// the machine is; the tests wait on events (requests seen by a server, timers scheduled), never on sleeps.
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import { getEventListeners } from 'node:events';
import { after, test } from 'node:test';
import { InvalidOptionError } from '@bulwark/core';
import {
  patternBody,
  startFaultProxy,
  startFaultServer,
  type FaultServer,
  type RequestRecord,
} from '@bulwark/fault-server';
import { TestClock } from '../clock.test.support.js';
import { FETCH_ERROR_CODES, fetchAll, type FetchResult } from '../index.js';

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

/** Collects every result; `reached` resolves once `count` of them satisfy `pred` (an event to wait on). */
function collectUntil(
  iterable: AsyncIterable<FetchResult>,
  pred: (r: FetchResult) => boolean,
  count: number,
): { all: Promise<FetchResult[]>; reached: Promise<void> } {
  let hit!: () => void;
  const reached = new Promise<void>((resolve) => (hit = resolve));
  const all = (async () => {
    const out: FetchResult[] = [];
    let n = 0;
    for await (const r of iterable) {
      out.push(r);
      if (pred(r) && ++n === count) hit();
    }
    return out;
  })();
  return { all, reached };
}

/** A loopback port nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** The most requests that overlapped in time across the given request logs (a sweep over start/end). */
function maxOverlap(records: readonly RequestRecord[]): number {
  const events: [number, number][] = [];
  for (const r of records) {
    events.push([r.startedAt, 1]);
    events.push([r.endedAt ?? Infinity, -1]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let max = 0;
  for (const [, d] of events) max = Math.max(max, (now += d));
  return max;
}

test('every input URL yields exactly one record: valid, invalid, duplicate, error statuses', async () => {
  const s = await server();
  const urls = [
    `${s.origin}/ok`,
    'not a url',
    `${s.origin}/ok`,
    `${s.origin}/status/404`,
    'ftp://example.com/file',
    '',
    `${s.origin}/ok`,
    `${s.origin}/status/500`,
    `${s.origin}/status/429`,
  ];
  const results = await collect(fetchAll(urls, { retry: { maxAttempts: 1 } }));
  assert.equal(results.length, urls.length);
  const byIndex = new Map(results.map((r) => [r.index, r]));
  assert.deepEqual(
    [...byIndex.keys()].sort((a, b) => a - b),
    urls.map((_, i) => i),
  );
  for (const r of results) assert.equal(r.url, urls[r.index]);
  assert.deepEqual(
    urls.map((_, i) => byIndex.get(i)!.errorCode ?? 'ok'),
    ['ok', 'INVALID_URL', 'ok', 'HTTP_4XX', 'INVALID_URL', 'INVALID_URL', 'ok', 'HTTP_5XX', 'HTTP_429'],
  );
  const ok = byIndex.get(0)!;
  assert.equal(ok.ok, true);
  assert.equal(ok.status, 200);
  assert.equal(ok.bytes, 2);
  assert.equal(ok.attempts, 1);
  assert.equal(ok.host, `127.0.0.1:${s.port}`);
  assert.equal(ok.body, undefined, 'bodies are counted, not kept, by default');
  assert.equal(byIndex.get(3)!.status, 404);
  assert.equal(byIndex.get(3)!.ok, false);
  assert.equal(byIndex.get(1)!.attempts, 0);
  assert.equal(s.requestCount, 6, 'invalid URLs send nothing');
});

test('global and per-host concurrency are never exceeded, as the servers see it', async () => {
  const hosts = await Promise.all([server(), server(), server()]);
  for (const h of hosts) h.setFault({ type: 'latency', ms: 20 });
  const urls = Array.from({ length: 60 }, (_, i) => `${hosts[i % 3]!.origin}/x?i=${i}`);
  const results = await collect(fetchAll(urls, { concurrency: 5, perHostConcurrency: 2 }));
  assert.equal(results.filter((r) => r.ok).length, 60);
  for (const h of hosts) {
    assert.ok(h.maxConcurrentRequests <= 2, `per host: ${h.maxConcurrentRequests}`);
    assert.equal(h.maxConcurrentRequests, 2, 'the per-host limit is used');
  }
  const overall = maxOverlap(hosts.flatMap((h) => h.requests));
  assert.ok(overall <= 5, `global: ${overall}`);
  assert.ok(overall >= 4, `the global limit is used: ${overall}`);

  // one host, a per-host limit above the global one: the global one binds
  const one = await server();
  one.setFault({ type: 'latency', ms: 20 });
  await collect(
    fetchAll(
      Array.from({ length: 30 }, (_, i) => `${one.origin}/y?${i}`),
      { concurrency: 3, perHostConcurrency: 10 },
    ),
  );
  assert.equal(one.maxConcurrentRequests, 3);
});

test('a black-holed host trips its breaker: the rest finish, its remaining URLs fail fast, in one timeout', async () => {
  const good = await server();
  const dead = await server();
  dead.setFault({ type: 'blackhole' });
  const urls = Array.from({ length: 200 }, (_, i) =>
    i % 2 === 0 ? `${good.origin}/ok?${i}` : `${dead.origin}/x?${i}`,
  );
  const clock = new TestClock();
  const run = fetchAll(urls, {
    attemptTimeoutMs: 1000,
    retry: { maxAttempts: 2, initialDelayMs: 5 },
    circuitBreaker: { strategy: { type: 'consecutive', threshold: 3 } },
    perHostConcurrency: 3,
    clock,
  });
  const events: string[] = [];
  run.onBreakerStateChange((e) => events.push(`${e.host}:${e.from}->${e.to}`));
  const { all, reached } = collectUntil(run, (r) => r.ok, 100);
  await dead.waitForRequests(3);
  await reached; // every URL of the live host is done, its time standing still
  clock.advance(1000); // the dead host's first three time out together
  const results = await all;
  assert.equal(clock.now(), 1000, 'the dead host cost one timeout');
  assert.equal(results.length, 200);
  const goodResults = results.filter((r) => r.host === `127.0.0.1:${good.port}`);
  const deadResults = results.filter((r) => r.host === `127.0.0.1:${dead.port}`);
  assert.equal(goodResults.filter((r) => r.ok).length, 100);
  const codes = new Map<string, number>();
  for (const r of deadResults) codes.set(r.errorCode!, (codes.get(r.errorCode!) ?? 0) + 1);
  assert.ok((codes.get('CIRCUIT_OPEN') ?? 0) >= 95, JSON.stringify([...codes]));
  assert.equal((codes.get('TIMEOUT') ?? 0) + (codes.get('CIRCUIT_OPEN') ?? 0), 100);
  for (const r of deadResults.filter((x) => x.errorCode === 'CIRCUIT_OPEN')) assert.equal(r.ok, false);
  // only the first three (the per-host limit): after a timeout no new request goes to a host until its
  // requests in flight have settled, and by then its breaker is open
  assert.equal(dead.requestCount, 3, `the dead host saw ${dead.requestCount} requests`);
  assert.equal(run.stats.breakerTrips.get(`127.0.0.1:${dead.port}`), 1);
  assert.deepEqual(events, [`127.0.0.1:${dead.port}:closed->open`]);
});

test('a host that has not answered yet holds at most breakerFailures requests; its first answer lifts that', async () => {
  const s = await server();
  s.setFault({ type: 'latency', ms: 50 });
  const urls = Array.from({ length: 40 }, (_, i) => `${s.origin}/slow?${i}`);
  const results = await collect(
    fetchAll(urls, {
      perHostConcurrency: 8,
      circuitBreaker: { strategy: { type: 'consecutive', threshold: 3 } },
    }),
  );
  assert.equal(results.filter((r) => r.ok).length, 40);
  const starts = s.requests.map((r) => r.startedAt).sort((a, b) => a - b);
  const firstAnswer = Math.min(...s.requests.map((r) => r.endedAt ?? Infinity));
  assert.equal(starts.filter((t) => t < firstAnswer).length, 3, 'three requests before the first answer');
  assert.equal(s.maxConcurrentRequests, 8, 'then all eight slots');
});

test('a black-holed host ties up only breakerFailures global slots while its first requests time out', async () => {
  const good = await server();
  good.setFault({ type: 'latency', ms: 30 });
  const dead = await server();
  dead.setFault({ type: 'blackhole' });
  const urls = Array.from({ length: 120 }, (_, i) =>
    i % 2 === 0 ? `${dead.origin}/x?${i}` : `${good.origin}/ok?${i}`,
  );
  const clock = new TestClock();
  const { all, reached } = collectUntil(
    fetchAll(urls, {
      concurrency: 10,
      perHostConcurrency: 10,
      circuitBreaker: { strategy: { type: 'consecutive', threshold: 4 } },
      attemptTimeoutMs: 3000,
      clock,
    }),
    (r) => r.ok,
    60,
  );
  // the live host's 60 URLs all finish while the dead host still holds its 4 slots (its time stands still)
  await reached;
  await dead.waitForRequests(4);
  clock.advance(3000);
  const results = await all;
  assert.equal(results.length, 120);
  assert.equal(results.filter((r) => r.ok).length, 60);
  assert.equal(dead.requestCount, 4, `the dead host saw ${dead.requestCount} requests`);
  assert.equal(dead.maxConcurrentRequests, 4);
  // the other six global slots went to the live host, once it had answered
  assert.equal(good.maxConcurrentRequests, 6);
});

test("when a host's breaker opens, its queued URLs fail at once, without taking slots", async () => {
  const dead = await server();
  dead.setFault({ type: 'blackhole' });
  const urls = Array.from({ length: 100 }, (_, i) => `${dead.origin}/x?${i}`);
  const clock = new TestClock();
  const run = fetchAll(urls, {
    retry: { maxAttempts: 1 },
    circuitBreaker: { strategy: { type: 'consecutive', threshold: 3 } },
    perHostConcurrency: 3,
    attemptTimeoutMs: 200,
    clock,
  });
  let settledRightAfter = -1;
  run.onBreakerStateChange((e) => {
    if (e.to === 'open') queueMicrotask(() => (settledRightAfter = run.stats.completed));
  });
  const collecting = collect(run);
  await dead.waitForRequests(3);
  clock.advance(200);
  const results = await collecting;
  assert.equal(results.length, 100);
  // the 97 queued URLs were settled in the same turn as the trip (not one by one as slots free up)
  assert.ok(settledRightAfter >= 97, `settled in the microtask after the trip: ${settledRightAfter}`);
  const open = results.filter((r) => r.errorCode === 'CIRCUIT_OPEN');
  assert.equal(open.length, 97);
  assert.ok(open.every((r) => r.attempts === 0 && r.durationMs === 0));
  assert.match(open[0]!.error!, /^Circuit "127\.0\.0\.1:\d+" is open; retry after \d+ ms$/);
  assert.equal(dead.requestCount, 3);
});

test('URLs read while their host is open wait for it, not for a slot; with nothing else left they fail (maxWaitMs 0)', async () => {
  const refused = `http://127.0.0.1:${await deadPort()}`;
  const slow = await server();
  slow.setFault({ type: 'latency', ms: 300 });
  let opened!: () => void;
  const isOpen = new Promise<void>((resolve) => (opened = resolve));
  async function* input(): AsyncGenerator<string> {
    yield `${refused}/first`;
    await isOpen;
    yield `${slow.origin}/takes-the-only-slot`;
    for (let i = 0; i < 20; i++) yield `${refused}/later?${i}`;
  }
  const clock = new TestClock();
  const run = fetchAll(input(), {
    concurrency: 1,
    retry: { maxAttempts: 1 },
    circuitBreaker: { strategy: { type: 'consecutive', threshold: 1 } },
    clock,
  });
  run.onBreakerStateChange((e) => {
    if (e.to === 'open') opened();
  });
  const results = await collect(run);
  assert.deepEqual(
    results.map((r) => r.errorCode ?? 'ok'),
    ['CONNECT_REFUSED', 'ok', ...Array<string>(20).fill('CIRCUIT_OPEN')],
    'the 20 refused URLs waited (not for the one slot) while other work was in progress, then failed',
  );
  assert.ok(results.slice(2).every((r) => r.attempts === 0 && r.durationMs === 0));
  assert.equal(clock.now(), 0, 'no time of the run was spent waiting for them');
});

test("a host's breaker opening ends its retries sleeping in a backoff; they report their last failure", async () => {
  const dead = await server();
  dead.setFault({ type: 'blackhole' });
  const urls = Array.from({ length: 10 }, (_, i) => `${dead.origin}/x?${i}`);
  const clock = new TestClock();
  const run = fetchAll(urls, {
    // a backoff of seconds: waiting it out would show on the clock
    retry: { maxAttempts: 3, initialDelayMs: 20_000 },
    circuitBreaker: { strategy: { type: 'consecutive', threshold: 3 } },
    attemptTimeoutMs: 300,
    clock,
  });
  const collecting = collect(run);
  await dead.waitForRequests(3);
  await clock.advanceAsync(300);
  const results = await collecting;
  const timeouts = results.filter((r) => r.errorCode === 'TIMEOUT');
  assert.equal(timeouts.length, 3);
  assert.ok(timeouts.every((r) => r.attempts === 1));
  assert.equal(results.filter((r) => r.errorCode === 'CIRCUIT_OPEN').length, 7);
  assert.equal(dead.requestCount, 3, 'no retry was sent');
  assert.equal(run.stats.retries, 0, 'stats.retries counts retries sent');
  assert.equal(clock.now(), 300, 'one timeout, not a backoff of seconds');
  for (const r of timeouts) assert.equal(r.durationMs, 300);
});

test('a refused host trips its breaker: CONNECT_REFUSED, then CIRCUIT_OPEN', async () => {
  const port = await deadPort();
  const urls = Array.from({ length: 50 }, (_, i) => `http://127.0.0.1:${port}/${i}`);
  const results = await collect(
    fetchAll(urls, {
      retry: { maxAttempts: 1 },
      circuitBreaker: { strategy: { type: 'consecutive', threshold: 4 } },
      perHostConcurrency: 2,
    }),
  );
  const codes = results.map((r) => r.errorCode);
  // the 4th failure opens it; a request already on the wire then (2 per host) still reports its own error
  const refused = codes.filter((c) => c === 'CONNECT_REFUSED').length;
  assert.ok(refused >= 4 && refused <= 5, `${refused} refused`);
  assert.equal(codes.filter((c) => c === 'CIRCUIT_OPEN').length, 50 - refused);
  for (const r of results.filter((x) => x.errorCode === 'CIRCUIT_OPEN')) assert.equal(r.attempts, 0);
});

test('retries stay within the shared budget when everything fails (counted at the server)', async () => {
  const s = await server();
  s.setFault({ type: 'status', status: 503 });
  const urls = Array.from({ length: 300 }, (_, i) => `${s.origin}/fail?${i}`);
  const run = fetchAll(urls, {
    retry: { maxAttempts: 4, initialDelayMs: 1 },
    retryBudget: { ratio: 0.1, minRetriesPerSecond: 1 }, // floor: 1/s × 10 s window = 10 retries
    circuitBreaker: { strategy: { type: 'consecutive', threshold: 1_000_000 } }, // keep the breaker out of it: this is about the budget
    adaptiveThrottle: false, // and the adaptive throttle (it would turn most of these away)
    concurrency: 20,
    perHostConcurrency: 20,
  });
  const results = await collect(run);
  assert.equal(results.length, 300);
  assert.ok(results.every((r) => r.errorCode === 'HTTP_5XX' && r.status === 503));
  const floor = 10;
  assert.ok(s.requestCount <= 1.1 * 300 + floor, `server saw ${s.requestCount} requests`);
  assert.ok(s.requestCount > 300, 'some retries were made');
  assert.equal(
    results.reduce((n, r) => n + r.attempts, 0),
    s.requestCount,
  );
  assert.equal(run.stats.retries, s.requestCount - 300);
  assert.ok(run.stats.retriesDenied > 0);
});

test('a timeout aborts the request on the wire (the connection is dropped)', async () => {
  const s = await server();
  s.setFault({ type: 'blackhole' });
  const clock = new TestClock();
  const collecting = collect(
    fetchAll([`${s.origin}/slow`], { attemptTimeoutMs: 150, retry: { maxAttempts: 1 }, clock }),
  );
  await s.waitForRequests(1);
  clock.advance(150);
  const [r] = await collecting;
  assert.equal(r!.errorCode, 'TIMEOUT');
  assert.equal(r!.durationMs, 150);
  await s.waitForIdle(); // the server saw the connection close
});

test('network faults map to stable codes', async () => {
  const s = await server();
  const urls = [
    `${s.origin}/reset`,
    `${s.origin}/malformed/status-line`,
    `${s.origin}/truncate?bytes=1&size=100`,
    `${s.origin}/close`,
  ];
  const results = await collect(
    fetchAll(urls, {
      retry: { maxAttempts: 1 },
      circuitBreaker: { strategy: { type: 'consecutive', threshold: 100 } },
    }),
  );
  const code = (i: number): string | undefined => results.find((r) => r.index === i)!.errorCode;
  assert.equal(code(0), 'RESET');
  assert.equal(code(1), 'PROTOCOL');
  assert.equal(code(2), 'CLOSED');
  assert.ok(['CLOSED', 'RESET'].includes(code(3)!), code(3));
  for (const r of results) assert.ok(FETCH_ERROR_CODES.includes(r.errorCode!));
});

test('keepBody keeps the bytes; maxBodyBytes stops a large body', async () => {
  const s = await server();
  const [kept] = await collect(fetchAll([`${s.origin}/ok?size=5000`], { keepBody: true }));
  assert.equal(kept!.bytes, 5000);
  assert.deepEqual(kept!.body, patternBody(5000));
  const [big] = await collect(fetchAll([`${s.origin}/ok?size=100000`], { maxBodyBytes: 1000 }));
  assert.equal(big!.errorCode, 'BODY_TOO_LARGE');
  assert.equal(big!.attempts, 1, 'not retried');
});

test('ratePerHost paces the starts of one origin, and only that origin', async () => {
  const s = await server();
  const urls = Array.from({ length: 6 }, (_, i) => `${s.origin}/p?${i}`);
  const clock = new TestClock();
  const collecting = collect(fetchAll(urls, { ratePerHost: 20, clock }));
  // 20/s with a burst of 1: one start every 50 ms of the clock
  for (let n = 1; n < 6; n++) {
    await s.waitForRequests(n);
    await clock.waitForTimers((ms) => ms === 50, n); // the pace: the next start is 50 ms away
    assert.equal(s.requestCount, n, 'not before the pace allows');
    clock.advance(50);
  }
  const results = await collecting;
  assert.equal(results.filter((r) => r.ok).length, 6);
  assert.equal(clock.now(), 250);
  // a second origin is not held back by the first one's pace
  const other = await server();
  const clock2 = new TestClock();
  const run = collect(
    fetchAll([`${s.origin}/a`, `${s.origin}/b`, `${other.origin}/c`], { ratePerHost: 1, clock: clock2 }),
  );
  await other.waitForRequests(1);
  assert.equal(clock2.now(), 0, 'the other origin did not wait');
  const pace = await clock2.waitForTimers((ms) => ms === 1000);
  clock2.advance(pace);
  assert.equal((await run).filter((r) => r.ok).length, 3);
});

test('input is pulled lazily: bounded read-ahead, and leaving the loop closes the input', async () => {
  const s = await server();
  let produced = 0;
  let closed = false;
  async function* endless(): AsyncGenerator<string> {
    try {
      for (;;) {
        produced++;
        yield `${s.origin}/n?${produced}`;
      }
    } finally {
      closed = true;
    }
  }
  let seen = 0;
  for await (const r of fetchAll(endless(), { concurrency: 4, readAhead: 10 })) {
    assert.equal(r.ok, true);
    if (++seen === 100) break;
  }
  assert.ok(produced <= 100 + 4 + 10 + 1, `read ${produced} URLs`);
  assert.equal(closed, true);
});

test("the caller's signal aborts everything in flight: ABORTED records, then the reason", async () => {
  const s = await server();
  s.setFault({ type: 'blackhole' });
  const controller = new AbortController();
  const urls = Array.from({ length: 100 }, (_, i) => `${s.origin}/h?${i}`);
  const run = fetchAll(urls, { signal: controller.signal, concurrency: 10, clock: new TestClock() });
  const seen: FetchResult[] = [];
  const iterating = assert.rejects(async () => {
    for await (const r of run) seen.push(r);
  }, /stop/);
  // a host that has not answered holds breakerFailures (5) requests in flight
  await s.waitForRequests(5);
  controller.abort(new Error('stop'));
  await iterating;
  assert.ok(seen.length > 0 && seen.length <= 100);
  assert.ok(seen.every((r) => r.errorCode === 'ABORTED'));
  assert.equal(new Set(seen.map((r) => r.index)).size, seen.length);
  await s.waitForIdle(); // in-flight requests were aborted on the wire
});

test('an input that throws: the URLs read are yielded, then its error', async () => {
  const s = await server();
  async function* broken(): AsyncGenerator<string> {
    yield `${s.origin}/a`;
    yield `${s.origin}/b`;
    throw new Error('disk on fire');
  }
  const seen: FetchResult[] = [];
  await assert.rejects(async () => {
    for await (const r of fetchAll(broken())) seen.push(r);
  }, /disk on fire/);
  assert.equal(seen.length, 2);
});

test('options are validated at once, naming the option', () => {
  assert.throws(
    () => fetchAll([], { concurrency: 0 }),
    (e: unknown) => {
      assert.ok(e instanceof InvalidOptionError);
      assert.equal(e.option, 'fetchAll.concurrency');
      return true;
    },
  );
  assert.throws(() => fetchAll([], { timeout: 5 } as never), /fetchAll\.timeout/);
  assert.throws(() => fetchAll([], { retryBudget: { ratio: -1 } }), /fetchAll\.retryBudget\.ratio/);
  // core retry's backoff caps a delay at 30 s: a larger first delay is refused here, under fetchAll's name
  assert.throws(() => fetchAll([], { retry: { initialDelayMs: 30_001 } }), /fetchAll\.retry\.initialDelayMs/);
  // core's option objects, checked by core under fetchAll's path; the keys fetchAll sets itself are refused
  assert.throws(
    () => fetchAll([], { circuitBreaker: { strategy: { type: 'consecutive', threshold: 0 } } }),
    /fetchAll\.circuitBreaker\.strategy\.threshold/,
  );
  for (const key of ['classify', 'clock', 'name', 'initialState'])
    assert.throws(
      () => fetchAll([], { circuitBreaker: { [key]: undefined } as never }),
      new RegExp(`fetchAll\\.circuitBreaker\\.${key}.*no value`),
    );
  assert.throws(() => fetchAll([], { retry: { budget: {} } as never }), /fetchAll\.retry/);
  assert.throws(
    () => fetchAll([], { retry: { classify: () => 'failure' } } as never),
    /fetchAll\.retry\.classify/,
  );
  // the old flat names are gone (a clean break)
  for (const old of ['timeoutMs', 'retries', 'breakerFailures', 'breakerOpenMs', 'retryInitialDelayMs'])
    assert.throws(() => fetchAll([], { [old]: 1 } as never), new RegExp(`fetchAll\\.${old}`));
  assert.doesNotThrow(() => fetchAll([], { retry: { initialDelayMs: 30_000 } }));
  assert.throws(() => fetchAll(42 as never), /fetchAll\.urls/);
  assert.throws(() => fetchAll([], { maxWaitMs: -1 }), /fetchAll\.maxWaitMs/);
  assert.throws(() => fetchAll([], { clock: {} as never }), /fetchAll\.clock/);
});

test('408 and 425 are retried like 429 and 5xx; other 4xx are answers, sent once', async () => {
  const s = await server();
  const urls = ['/status/408', '/status/425', '/status/404', '/status/403'].map((p) => `${s.origin}${p}`);
  const results = await collect(
    fetchAll(urls, {
      retry: { maxAttempts: 3, initialDelayMs: 1 },
      circuitBreaker: { strategy: { type: 'consecutive', threshold: 100 } },
      concurrency: 1,
    }),
  );
  const attempts = new Map(results.map((r) => [r.url.slice(s.origin.length), r.attempts]));
  assert.deepEqual(Object.fromEntries(attempts), {
    '/status/408': 3,
    '/status/425': 3,
    '/status/404': 1,
    '/status/403': 1,
  });
  assert.ok(results.every((r) => r.errorCode === 'HTTP_4XX' && !r.ok));
  assert.equal(s.requestCount, 8);
});

test('an already aborted signal: every URL read is ABORTED, nothing is sent, the iteration rejects', async () => {
  const s = await server();
  const controller = new AbortController();
  controller.abort(new Error('too late'));
  const seen: FetchResult[] = [];
  await assert.rejects(async () => {
    for await (const r of fetchAll([`${s.origin}/a`, `${s.origin}/b`], { signal: controller.signal }))
      seen.push(r);
  }, /too late/);
  assert.ok(seen.every((r) => r.errorCode === 'ABORTED'));
  assert.equal(s.requestCount, 0);
});

test('runs sharing a long-lived signal leave no listener on it (finished, or left early)', async () => {
  const s = await server();
  const shutdown = new AbortController();
  for (let i = 0; i < 20; i++) await collect(fetchAll([`${s.origin}/a?${i}`], { signal: shutdown.signal }));
  for (let i = 0; i < 5; i++) {
    for await (const r of fetchAll([`${s.origin}/b?${i}`, `${s.origin}/c?${i}`], {
      signal: shutdown.signal,
    })) {
      assert.equal(r.ok, true);
      break;
    }
  }
  assert.equal(getEventListeners(shutdown.signal, 'abort').length, 0);
});

/** A server whose answers wait until the test releases them. */
async function heldServer(): Promise<{
  origin: string;
  release(): void;
  seen(): number;
  waitForRequests(n: number): Promise<void>;
  close(): Promise<void>;
}> {
  const held: ServerResponse[] = [];
  let released = false;
  let seen = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  const srv = createHttpServer((_req, res) => {
    seen++;
    for (const w of waiters.filter((w) => seen >= w.n)) w.resolve();
    if (released) res.end('held');
    else held.push(res);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(srv.address() as { port: number }).port}`,
    release() {
      released = true;
      for (const res of held.splice(0)) res.end('held');
    },
    seen: () => seen,
    waitForRequests: (n) =>
      seen >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
    close: () =>
      new Promise<void>((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  };
}

test('a host down at the start, then up: its URLs wait for it and every URL ends ok (maxWaitMs)', async () => {
  const s = await server();
  const proxy = await startFaultProxy({ target: s.origin });
  try {
    await proxy.setFault({ type: 'down' });
    const urls = Array.from({ length: 200 }, (_, i) => `${proxy.url}u?${i}`);
    const clock = new TestClock();
    const run = fetchAll(urls, {
      circuitBreaker: { openDurationMs: 5000 },
      maxWaitMs: 30_000,
      retry: { initialDelayMs: 10 },
      clock,
    });
    const events: string[] = [];
    run.onBreakerStateChange((e) => events.push(`${e.from}->${e.to}`));
    const collecting = collect(run);
    // refused at once: five failures open the breaker, and everything else waits (nothing else to do)
    await clock.waitForTimers((ms) => ms === 30_000); // nothing else to do: the run waits for the host
    assert.equal(s.requestCount, 0, 'nothing reached it while it was down');
    clock.advance(2000); // the host is down for two seconds
    await proxy.setFault(undefined);
    clock.advance(3000); // the breaker's open time is over: three probes, then everything else
    const results = await collecting;
    assert.equal(results.length, 200);
    assert.deepEqual(
      results.filter((r) => !r.ok).map((r) => r.errorCode),
      [],
    );
    assert.deepEqual(events, ['closed->open', 'open->half-open', 'half-open->closed']);
    assert.equal(s.requestCount, 200);
  } finally {
    await proxy.close();
  }
});

test('while other URLs are in progress the waiting costs nothing: no maxWaitMs needed', async () => {
  const s = await server();
  const proxy = await startFaultProxy({ target: s.origin });
  const other = await heldServer();
  try {
    await proxy.setFault({ type: 'down' });
    const urls = [
      ...Array.from({ length: 5 }, (_, i) => `${other.origin}/slow?${i}`),
      ...Array.from({ length: 50 }, (_, i) => `${proxy.url}u?${i}`),
    ];
    const clock = new TestClock();
    const run = fetchAll(urls, { circuitBreaker: { openDurationMs: 5000 }, attemptTimeoutMs: 60_000, clock });
    const collecting = collect(run);
    await other.waitForRequests(5); // the other host's URLs are in flight, held
    await clock.waitForTimers((ms) => ms === 5000); // the breaker opened: its URLs wait for it
    await proxy.setFault(undefined);
    clock.advance(5000);
    await s.waitForRequests(50);
    other.release();
    const results = await collecting;
    assert.deepEqual(
      results.filter((r) => !r.ok).map((r) => r.url),
      [],
    );
  } finally {
    await Promise.all([proxy.close(), other.close()]);
  }
});

test('a host that stays down: once nothing else is left, its URLs wait maxWaitMs more, then fail', async () => {
  const refused = `http://127.0.0.1:${await deadPort()}`;
  const urls = Array.from({ length: 30 }, (_, i) => `${refused}/x?${i}`);
  const clock = new TestClock();
  const run = fetchAll(urls, {
    circuitBreaker: { openDurationMs: 1000 },
    maxWaitMs: 10_000,
    retry: { maxAttempts: 1 },
    clock,
  });
  const collecting = collect(run);
  await clock.waitForTimers((ms) => ms === 10_000);
  // probe rounds fail meanwhile (refused: at once), the breaker's open time doubling
  for (let i = 0; i < 10_000; i += 500) await clock.advanceAsync(500);
  const results = await collecting;
  const codes = new Map<string, number>();
  for (const r of results) codes.set(r.errorCode!, (codes.get(r.errorCode!) ?? 0) + 1);
  assert.equal(results.length, 30);
  assert.ok(results.every((r) => !r.ok));
  assert.ok((codes.get('CIRCUIT_OPEN') ?? 0) > 0);
  assert.equal((codes.get('CIRCUIT_OPEN') ?? 0) + (codes.get('CONNECT_REFUSED') ?? 0), 30);
  for (const r of results.filter((x) => x.errorCode === 'CIRCUIT_OPEN')) assert.equal(r.attempts, 0);
  assert.ok(run.stats.breakerTrips.get(new URL(refused).host)! >= 2, 'probe rounds failed and reopened it');
  assert.equal(clock.now(), 10_000);
});

test('at most readAhead URLs wait at once; more fail at once with CIRCUIT_OPEN', async () => {
  const refused = `http://127.0.0.1:${await deadPort()}`;
  const other = await heldServer();
  try {
    const urls = [`${other.origin}/busy`, ...Array.from({ length: 40 }, (_, i) => `${refused}/x?${i}`)];
    const run = fetchAll(urls, {
      readAhead: 10,
      retry: { maxAttempts: 1 },
      circuitBreaker: { strategy: { type: 'consecutive', threshold: 1 } },
      clock: new TestClock(),
    });
    const seen: FetchResult[] = [];
    const iterating = (async () => {
      for await (const r of run) {
        seen.push(r);
        if (seen.length === 30) other.release();
      }
    })();
    await iterating;
    assert.equal(seen.length, 41);
    const open = seen.filter((r) => r.errorCode === 'CIRCUIT_OPEN');
    // one refused (it opened the breaker), ten waited until the end, the other 29 failed at once
    assert.equal(open.length, 39);
    assert.equal(seen.filter((r) => r.errorCode === 'CONNECT_REFUSED').length, 1);
  } finally {
    await other.close();
  }
});

test('with maxWaitMs, more URLs than readAhead wait for their host: the input pauses, every URL ends ok', async () => {
  const s = await server();
  const proxy = await startFaultProxy({ target: s.origin });
  try {
    await proxy.setFault({ type: 'down' });
    const urls = Array.from({ length: 300 }, (_, i) => `${proxy.url}u?${i}`);
    const clock = new TestClock();
    const run = fetchAll(urls, {
      readAhead: 20,
      concurrency: 10,
      circuitBreaker: { openDurationMs: 5000 },
      maxWaitMs: 30_000,
      retry: { initialDelayMs: 10 },
      clock,
    });
    const collecting = collect(run);
    // the window is full of URLs waiting for the host: nothing else is left, so the bounded wait begins
    await clock.waitForTimers((ms) => ms === 30_000);
    assert.equal(run.stats.read, 50, 'the input paused: 20 wait outside the window, 30 fill it');
    assert.equal(run.stats.completed, 0, 'none failed at once');
    await proxy.setFault(undefined);
    clock.advance(5000); // the breaker's open time is over: probes, then everything else
    const results = await collecting;
    assert.equal(results.length, 300);
    assert.deepEqual(
      results.filter((r) => !r.ok).map((r) => r.errorCode),
      [],
    );
    assert.equal(s.requestCount, 300);
    assert.ok(clock.now() < 30_000, 'the wait ended when the host came back');
  } finally {
    await proxy.close();
  }
});

test('with maxWaitMs, more URLs than readAhead to a host that stays down: they fail once maxWaitMs is over', async () => {
  const refused = `http://127.0.0.1:${await deadPort()}`;
  const urls = Array.from({ length: 100 }, (_, i) => `${refused}/x?${i}`);
  const clock = new TestClock();
  const run = fetchAll(urls, {
    readAhead: 10,
    concurrency: 5,
    circuitBreaker: { openDurationMs: 1000 },
    maxWaitMs: 10_000,
    retry: { maxAttempts: 1 },
    clock,
  });
  const collecting = collect(run);
  await clock.waitForTimers((ms) => ms === 10_000);
  for (let i = 0; i < 10_000; i += 500) await clock.advanceAsync(500);
  const results = await collecting;
  assert.equal(results.length, 100);
  assert.ok(results.every((r) => !r.ok));
  assert.equal(clock.now(), 10_000, 'the wait was bounded by maxWaitMs');
});

test('an abort ends the waiting URLs too: ABORTED', async () => {
  const refused = `http://127.0.0.1:${await deadPort()}`;
  const controller = new AbortController();
  const urls = Array.from({ length: 20 }, (_, i) => `${refused}/x?${i}`);
  const clock = new TestClock();
  const run = fetchAll(urls, {
    maxWaitMs: 60_000,
    retry: { maxAttempts: 1 },
    signal: controller.signal,
    clock,
  });
  const seen: FetchResult[] = [];
  const iterating = assert.rejects(async () => {
    for await (const r of run) seen.push(r);
  }, /stop/);
  await clock.waitForTimers((ms) => ms === 60_000);
  assert.equal(run.stats.waiting, 15);
  controller.abort(new Error('stop'));
  await iterating;
  assert.equal(seen.filter((r) => r.errorCode === 'ABORTED').length, 15);
  // (core's timeout policy lets its own timer run out: fire it, then nothing must be left)
  clock.advance(10_000);
  assert.equal(clock.pendingTimers, 0, 'no wake or wait timer left behind');
});
