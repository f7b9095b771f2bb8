// Each tier driven by a real fault over loopback (@bulwark/fault-server).
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { Agent } from 'undici';
import { AllSourcesFailedError } from '@bulwark/core';
import { startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { createHttpClient, type HttpClient } from './client.js';
import type { HttpAttemptEvent } from './types.js';
import { MemoryCacheStore } from '../cache/memory-store.js';
import type { HttpClientOptions } from './options.js';
import { HttpBodyTooLargeError, HttpNetworkError, HttpRedirectError, HttpStatusError } from '../errors.js';
import { TestClock } from '../clock.test.support.js';

/** A loopback URL nothing listens on (connection refused). */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/doc`;
}

let primary: FaultServer;
let mirror: FaultServer;
let dead: string;
const clients: HttpClient[] = [];
/** A wall clock the test moves, so cache ages change without sleeping. */
let wall = Date.parse('2026-01-01T00:00:00Z');

const systemClockLike = { now: () => 0 };

function client(options: HttpClientOptions = {}): HttpClient {
  const c = createHttpClient({
    now: () => wall,
    totalTimeoutMs: 5000,
    ...options,
    retry: options.retry === false ? false : { initialDelayMs: 1, maxDelayMs: 5, ...options.retry },
  });
  clients.push(c);
  return c;
}

before(async () => {
  primary = await startFaultServer();
  mirror = await startFaultServer();
  dead = await deadUrl();
});

beforeEach(() => {
  primary.reset();
  mirror.reset();
  primary.setResponse({ body: 'primary body', cacheControl: 'max-age=60' });
  mirror.setResponse({ body: 'mirror body', cacheControl: 'max-age=60' });
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all([primary.close(), mirror.close()]);
});

describe('tiers', () => {
  it('primary serves and stores; the next call is a fresh-cache hit that does not call upstream', async () => {
    const c = client();
    const first = await c.get(`${primary.origin}/doc`);
    assert.equal(first.tier, 'primary');
    assert.equal(first.body.toString(), 'primary body');
    assert.equal(first.status, 200);
    assert.equal(first.attempts, 1);
    assert.deepEqual(
      first.tiers.map((t) => `${t.tier}:${t.status}`),
      ['fresh-cache:skipped', 'primary:served'],
    );
    wall += 10_000;
    const second = await c.get(`${primary.origin}/doc`);
    assert.equal(second.tier, 'fresh-cache');
    assert.equal(second.body.toString(), 'primary body');
    assert.equal(second.cacheAgeMs, 10_000);
    assert.equal(second.attempts, 0);
    assert.equal(primary.requestCount, 1, 'upstream not called for a fresh hit');
  });

  it('primary down (refused) → fallback serves, and says which', async () => {
    const c = client();
    const r = await c.get(dead, { fallbackUrls: [`${mirror.origin}/doc`] });
    assert.equal(r.tier, 'fallback');
    assert.equal(r.source, 'fallback-1');
    assert.equal(r.body.toString(), 'mirror body');
    assert.equal(r.url, `${mirror.origin}/doc`);
    const p = r.tiers.find((t) => t.tier === 'primary')!;
    assert.equal(p.status, 'failed');
    assert.ok(p.error instanceof HttpNetworkError);
    assert.equal(p.error.kind, 'connection-refused');
    assert.equal(r.attempts, 3 + 1, 'three attempts on the primary, one on the mirror');
  });

  it('primary 503 → second fallback serves after the first mirror resets', async () => {
    primary.setFault({ type: 'status', status: 503 });
    mirror.setFault({ type: 'reset' });
    const other = await startFaultServer({ response: { body: 'mirror 2' } });
    try {
      const c = client({ retry: { maxAttempts: 1 } });
      const r = await c.get(`${primary.origin}/doc`, {
        fallbackUrls: [`${mirror.origin}/doc`, `${other.origin}/doc`],
      });
      assert.equal(r.source, 'fallback-2');
      assert.equal(r.body.toString(), 'mirror 2');
      assert.deepEqual(
        r.tiers.map((t) => `${t.tier}:${t.status}`),
        ['fresh-cache:skipped', 'primary:failed', 'fallback-1:failed', 'fallback-2:served'],
      );
    } finally {
      await other.close();
    }
  });

  it('both down → stale copy within max-stale; beyond it → AllSourcesFailedError', async () => {
    const c = client({ maxStaleMs: 60_000, retry: { maxAttempts: 1 } });
    const url = `${primary.origin}/doc`;
    await c.get(url); // stored, max-age 60 s
    primary.setFault({ type: 'status', status: 502 });
    mirror.setFault({ type: 'reset' });
    wall += 90_000; // 30 s past freshness
    const stale = await c.get(url, { fallbackUrls: [`${mirror.origin}/doc`] });
    assert.equal(stale.tier, 'stale-cache');
    assert.equal(stale.body.toString(), 'primary body');
    assert.equal(stale.stalenessMs, 30_000);
    assert.equal(stale.cacheAgeMs, 90_000);
    assert.deepEqual(
      stale.tiers.map((t) => `${t.tier}:${t.status}`),
      ['fresh-cache:skipped', 'primary:failed', 'fallback-1:failed', 'stale-cache:served'],
    );

    wall += 60_000; // 90 s past freshness > max-stale 60 s
    const error = await c.get(url, { fallbackUrls: [`${mirror.origin}/doc`] }).then(
      () => assert.fail('expected failure'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof AllSourcesFailedError);
    const last = error.tiers.at(-1)!;
    assert.equal(last.tier, 'stale-cache');
    assert.equal(last.status, 'skipped');
    assert.match(last.reason, /90000 ms past freshness; max-stale 60000 ms/);
    assert.equal(last.code, 'TOO_STALE');
    assert.ok(error.tiers[1]!.error instanceof HttpStatusError);
  });

  it('everything down, nothing cached → AllSourcesFailedError listing every tier', async () => {
    const c = client({ retry: { maxAttempts: 2 } });
    const error = await c.get(dead, { fallbackUrls: [dead.replace('/doc', '/other')] }).then(
      () => assert.fail('expected failure'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof AllSourcesFailedError);
    assert.equal(error.code, 'BULWARK_ERR_ALL_SOURCES_FAILED');
    assert.deepEqual(
      error.tiers.map(
        (t) => `${t.tier}:${t.status}:${t.code ?? ''}:${t.status === 'skipped' ? t.reason : ''}`,
      ),
      [
        'fresh-cache:skipped:NOT_CACHED:not cached',
        'primary:failed:BULWARK_ERR_HTTP_NETWORK:',
        'fallback-1:failed:BULWARK_ERR_HTTP_NETWORK:',
        'stale-cache:skipped:NOT_CACHED:no cached copy',
      ],
    );
  });

  it('the stale tier honours the response stale-if-error window when max-stale is not set', async () => {
    primary.setResponse({ body: 'sie', cacheControl: 'max-age=10, stale-if-error=20' });
    const c = client({ retry: { maxAttempts: 1 } });
    const url = `${primary.origin}/doc`;
    await c.get(url);
    primary.setFault({ type: 'status', status: 500 });
    wall += 25_000; // 15 s stale, within 20
    assert.equal((await c.get(url)).tier, 'stale-cache');
    wall += 10_000; // 25 s stale
    await assert.rejects(c.get(url), AllSourcesFailedError);
  });

  it('must-revalidate forbids the stale tier', async () => {
    primary.setResponse({ body: 'strict', cacheControl: 'max-age=1, must-revalidate' });
    const c = client({ retry: { maxAttempts: 1 } });
    const url = `${primary.origin}/doc`;
    await c.get(url);
    primary.setFault({ type: 'status', status: 503 });
    wall += 5000;
    const error = await c.get(url).then(
      () => assert.fail('expected failure'),
      (e: unknown) => e as AllSourcesFailedError,
    );
    assert.match(error.tiers.at(-1)!.reason, /must-revalidate/);
  });
});

describe('single-flight', () => {
  it('100 concurrent misses for one key → 1 upstream call', async () => {
    primary.setFault({ type: 'latency', ms: 150 });
    const c = client();
    const url = `${primary.origin}/doc`;
    const results = await Promise.all(Array.from({ length: 100 }, () => c.get(url)));
    assert.equal(primary.requestCount, 1);
    assert.ok(results.every((r) => r.body.toString() === 'primary body' && r.tier === 'primary'));
    assert.equal(results.filter((r) => r.shared).length, 99);
  });

  it('a caller aborting leaves the shared request running for the others', async () => {
    primary.setFault({ type: 'latency', ms: 200 });
    const c = client({ cache: false });
    const url = `${primary.origin}/doc`;
    const leaver = new AbortController();
    const p1 = c.get(url, { signal: leaver.signal });
    const p2 = c.get(url);
    await primary.waitForRequests(1);
    leaver.abort(new Error('gave up'));
    await assert.rejects(p1, /gave up/);
    assert.equal((await p2).body.toString(), 'primary body');
    assert.equal(primary.requestCount, 1);
  });
  it('when every caller has left, the shared upstream request is aborted (the server sees it closed)', async () => {
    primary.setFault({ type: 'blackhole' });
    // an injected clock that never moves: no deadline of the client's own can end the request
    const c = client({ cache: false, headersTimeoutMs: 60_000, clock: new TestClock() });
    const url = `${primary.origin}/doc`;
    const a = new AbortController();
    const b = new AbortController();
    const pa = c.get(url, { signal: a.signal });
    const pb = c.get(url, { signal: b.signal });
    await primary.waitForRequests(1);
    a.abort(new Error('a left'));
    await assert.rejects(pa, /a left/);
    // (that one leaving does not end the shared request: 'a caller aborting leaves the shared request
    // running for the others' shows b getting its body)
    b.abort(new Error('b left'));
    await assert.rejects(pb, /b left/);
    await primary.waitForIdle(); // the connection closed: the upstream request was aborted
    assert.notEqual(primary.requests[0]!.endedAt, undefined);
    assert.equal(primary.requestCount, 1);
  });
});

describe('HTTP caching', () => {
  it('ETag revalidation: a 304 refreshes the stored copy and serves it', async () => {
    primary.setResponse({ body: 'etagged', etag: '"v1"', cacheControl: 'max-age=5' });
    const c = client();
    const url = `${primary.origin}/doc`;
    await c.get(url);
    wall += 6000;
    const r = await c.get(url);
    assert.equal(r.tier, 'primary');
    assert.equal(r.revalidated, true);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'etagged');
    const sent = primary.requests.at(-1)!;
    assert.equal(sent.headers['if-none-match'], '"v1"');
    // refreshed: fresh again without another request
    wall += 1000;
    assert.equal((await c.get(url)).tier, 'fresh-cache');
    assert.equal(primary.requestCount, 2);
  });

  it('Last-Modified revalidation sends If-Modified-Since', async () => {
    const lastModified = new Date(wall - 3_600_000);
    primary.setResponse({ body: 'dated', lastModified, cacheControl: 'no-cache' });
    const c = client();
    const url = `${primary.origin}/doc`;
    await c.get(url);
    const r = await c.get(url);
    assert.equal(r.revalidated, true);
    assert.equal(primary.requests.at(-1)!.headers['if-modified-since'], lastModified.toUTCString());
  });

  it('no-store is never stored', async () => {
    primary.setResponse({ body: 'secret', cacheControl: 'no-store' });
    const store = new MemoryCacheStore();
    const c = client({ cache: store });
    await c.get(`${primary.origin}/doc`);
    await c.get(`${primary.origin}/doc`);
    assert.equal(store.size, 0);
    assert.equal(primary.requestCount, 2);
  });

  it('stale-while-revalidate serves the stored copy and refreshes it in the background', async () => {
    primary.setResponse({ body: 'v1', cacheControl: 'max-age=1, stale-while-revalidate=60' });
    const c = client();
    const url = `${primary.origin}/doc`;
    await c.get(url);
    primary.setResponse({ body: 'v2', cacheControl: 'max-age=60' });
    wall += 5000;
    const r = await c.get(url);
    assert.equal(r.tier, 'fresh-cache');
    assert.equal(r.body.toString(), 'v1');
    assert.equal(r.stalenessMs, 4000);
    await c.close(); // waits for the background refresh
    assert.equal(primary.requestCount, 2);
    assert.equal((await c.get(url)).body.toString(), 'v2');
  });

  it('the memory store keeps to its byte bound (LRU)', async () => {
    const store = new MemoryCacheStore({ maxBytes: 4000 });
    primary.setResponse({ size: 1500, cacheControl: 'max-age=60' });
    const c = client({ cache: store });
    for (const p of ['/a', '/b', '/c']) await c.get(`${primary.origin}${p}`);
    assert.ok(store.bytes <= 4000, `${store.bytes} bytes`);
    assert.equal(store.size, 2);
    assert.equal(await store.get(`${primary.origin}/a`), undefined, 'the least recently used went first');
  });
});

describe('limits and retries', () => {
  it('Retry-After on 503 is honoured before the next attempt (injected clock)', async () => {
    primary.setFault({ type: 'status', status: 503, retryAfter: 1 }, { times: 1 });
    const clock = new TestClock();
    const c = client({ retry: { maxAttempts: 2 }, clock, attemptTimeoutMs: 60_000 });
    const sleep = clock.waitForTimers((ms) => ms >= 1000 && ms < 2000);
    const p = c.get(`${primary.origin}/doc`);
    const waitMs = await sleep; // the retry sleeps at least what Retry-After asked for
    await primary.waitForRequests(1);
    clock.advance(waitMs - 1);
    assert.equal(primary.requestCount, 1, 'no retry before the wait is over');
    clock.advance(1);
    const r = await p;
    assert.equal(r.tier, 'primary');
    assert.equal(r.attempts, 2);
    assert.ok(waitMs >= 1000);
  });

  it("takes core's breaker and retry options; refuses the keys it sets and the old flat names", () => {
    assert.throws(
      () => createHttpClient({ circuitBreaker: { openDurationMs: 0 } }),
      /httpClient\.circuitBreaker\.openDurationMs/,
    );
    assert.throws(
      () => createHttpClient({ circuitBreaker: { classify: () => 'failure' } as never }),
      /httpClient\.circuitBreaker\.classify.*no value/,
    );
    assert.throws(() => createHttpClient({ retry: { maxAttempts: 0 } }), /httpClient\.retry\.maxAttempts/);
    assert.throws(
      () => createHttpClient({ retry: { clock: systemClockLike } } as never),
      /httpClient\.retry\.clock.*no value/,
    );
    for (const old of ['maxAttempts', 'backoff', 'maxRetryAfterMs'])
      assert.throws(() => createHttpClient({ [old]: 1 } as never), new RegExp(`httpClient\\.${old}`));
    assert.throws(
      () => createHttpClient({ circuitBreaker: { consecutiveFailures: 2 } as never }),
      /httpClient\.circuitBreaker\.consecutiveFailures/,
    );
  });

  it('a Retry-After longer than maxRetryAfterMs ends that source at once (429)', async () => {
    primary.setFault({ type: 'status', status: 429, retryAfter: 120 });
    const c = client({ retry: { maxAttempts: 3, maxRetryAfterMs: 1000 } });
    const error = (await c.get(`${primary.origin}/doc`).catch((e: unknown) => e)) as AllSourcesFailedError;
    assert.ok(error instanceof AllSourcesFailedError);
    const failure = error.tiers[1]!.error as HttpStatusError;
    assert.equal(failure.status, 429);
    assert.equal(failure.retryAfterMs, 120_000);
    assert.equal(primary.requestCount, 1);
  });

  it('a 404 from the primary is final: no fallback, no stale copy', async () => {
    primary.setFault({ type: 'status', status: 404 });
    const c = client();
    await assert.rejects(
      c.get(`${primary.origin}/doc`, { fallbackUrls: [`${mirror.origin}/doc`] }),
      (e: unknown) => e instanceof HttpStatusError && e.status === 404,
    );
    assert.equal(primary.requestCount, 1, 'a 404 is not retried');
    assert.equal(mirror.requestCount, 0);
  });

  it('body larger than maxBodyBytes → HttpBodyTooLargeError (declared or streamed)', async () => {
    primary.setResponse({ size: 10_000 });
    const c = client({ maxBodyBytes: 1000 });
    await assert.rejects(c.get(`${primary.origin}/doc`), HttpBodyTooLargeError);
    primary.setFault({ type: 'drip', bytes: 600, intervalMs: 5 }); // chunked, no content-length
    await assert.rejects(c.get(`${primary.origin}/doc2`), HttpBodyTooLargeError);
  });

  it('redirects are followed up to maxRedirects, never to another scheme', async () => {
    const c = client({ maxRedirects: 2 });
    const ok = await c.get(`${primary.origin}/redirect?location=/doc`);
    assert.equal(ok.body.toString(), 'primary body');
    assert.equal(ok.redirects, 1);
    assert.equal(ok.url, `${primary.origin}/doc`);
    primary.setFault({ type: 'redirect', location: '/loop' }, { path: '/loop' });
    await assert.rejects(
      c.get(`${primary.origin}/loop`),
      (e: unknown) => e instanceof HttpRedirectError && e.reason === 'too-many',
    );
    await assert.rejects(
      c.get(`${primary.origin}/redirect?location=${encodeURIComponent('file:///etc/passwd')}`),
      (e: unknown) => e instanceof HttpRedirectError && e.reason === 'scheme',
    );
  });

  it('credentials (Authorization, Cookie, Proxy-Authorization, user info) never follow a redirect to another origin', async () => {
    const c = client({
      cache: false,
      headers: { Authorization: 'Bearer s3cret', cookie: 'sid=42', 'proxy-authorization': 'Basic eDp5' },
    });
    const cross = await c.get(
      `${primary.origin}/redirect?location=${encodeURIComponent(`${mirror.origin}/landing`)}`,
    );
    assert.equal(cross.body.toString(), 'mirror body');
    const landed = mirror.requests.find((r) => r.path === '/landing')!.headers;
    assert.deepEqual(
      [landed['authorization'], landed['cookie'], landed['proxy-authorization']],
      [undefined, undefined, undefined],
    );
    await c.get(`${primary.origin}/redirect?location=/same`);
    const same = primary.requests.find((r) => r.path === '/same')!.headers;
    assert.deepEqual(
      [same['authorization'], same['cookie'], same['proxy-authorization']],
      ['Bearer s3cret', 'sid=42', 'Basic eDp5'],
    );
    const plain = client({ cache: false });
    const res = await plain.get(
      `http://u%3Ax:p%C3%A9@127.0.0.1:${primary.port}/redirect?location=${encodeURIComponent(`${mirror.origin}/ui`)}`,
    );
    assert.equal(res.url, `${mirror.origin}/ui`);
    const sent = primary.requests.filter((r) => r.path === '/redirect').at(-1)!.headers;
    assert.equal(sent['authorization'], `Basic ${Buffer.from('u:x:pé').toString('base64')}`);
    assert.equal(mirror.requests.find((r) => r.path === '/ui')!.headers['authorization'], undefined);
  });

  it('credentials go to a fallback on the primary origin only, never to a mirror on another origin', async () => {
    const headers = { Authorization: 'Bearer s3cret', cookie: 'sid=42', 'proxy-authorization': 'Basic eDp5' };
    const c = client({ cache: new MemoryCacheStore(), retry: { maxAttempts: 1 }, headers });
    primary.setFault({ type: 'status', status: 503 }, { path: '/down' });
    const res = await c.get(`${primary.origin}/down`, { fallbackUrls: [`${mirror.origin}/fb`] });
    assert.equal(res.source, 'fallback-1');
    const landed = mirror.requests.find((r) => r.path === '/fb')!.headers;
    assert.deepEqual(
      [landed['authorization'], landed['cookie'], landed['proxy-authorization']],
      [undefined, undefined, undefined],
    );
    // nor is the mirror's answer stored under the primary URL (the call had credentials: `Authorization`
    // in any case)
    const next = await c.get(`${primary.origin}/down`, { fallbackUrls: [`${mirror.origin}/fb`] });
    assert.notEqual(next.tier, 'fresh-cache');
    // the control: a fallback on the same origin gets them
    await c.get(`${primary.origin}/down`, { fallbackUrls: [`${primary.origin}/same-fb`] });
    const same = primary.requests.find((r) => r.path === '/same-fb')!.headers;
    assert.deepEqual(
      [same['authorization'], same['cookie'], same['proxy-authorization']],
      ['Bearer s3cret', 'sid=42', 'Basic eDp5'],
    );
  });

  it("undici's headers timeout follows the attempt deadline (no fixed 10 s cap on a longer one)", async () => {
    // what each request hands undici, seen by an interceptor on the caller's dispatcher
    const seen: (number | undefined)[] = [];
    const agent = new Agent();
    const dispatcher = agent.compose((dispatch) => (opts, handler) => {
      seen.push((opts as { headersTimeout?: number }).headersTimeout);
      return dispatch(opts, handler);
    });
    try {
      const explicit = client({ cache: false, dispatcher, attemptTimeoutMs: 25_000 });
      await explicit.get(`${primary.origin}/doc`);
      assert.deepEqual(seen, [25_000], 'a 25 s attempt timeout is a 25 s headers timeout');
      seen.length = 0;
      // derived: the last attempt of the last source has only the total (here 60 s), undici no timer of its own
      const derived = client({ cache: false, dispatcher, totalTimeoutMs: 60_000, retry: { maxAttempts: 1 } });
      await derived.get(`${primary.origin}/doc`);
      assert.deepEqual(seen, [0]);
      seen.length = 0;
      const set = client({ cache: false, dispatcher, attemptTimeoutMs: 25_000, headersTimeoutMs: 3000 });
      await set.get(`${primary.origin}/doc`);
      assert.deepEqual(seen, [3000], 'a headersTimeoutMs that is set applies as given');
    } finally {
      await agent.close();
    }
  });

  it('the total deadline is shared among sources: a black-holed primary cannot starve the mirror (injected clock)', async () => {
    primary.setFault({ type: 'blackhole' });
    const clock = new TestClock();
    // an attempt deadline beyond the total: only the shares end the attempts
    const opts = {
      headersTimeoutMs: 60_000,
      totalTimeoutMs: 800,
      attemptTimeoutMs: 5000,
      retry: { maxAttempts: 10 },
    };
    const c = client({ ...opts, cache: false, clock });
    let share = clock.waitForTimers((ms) => ms === 400);
    const served = c.get(`${primary.origin}/doc`, { fallbackUrls: [`${mirror.origin}/doc`] });
    await primary.waitForRequests(1);
    await share; // the primary may use half of the 800 ms: the other half is the mirror's
    clock.advance(400);
    const r = await served;
    assert.equal(r.tier, 'fallback');
    assert.equal(r.tiers[1]!.elapsedMs, 400);

    mirror.setFault({ type: 'blackhole' });
    share = clock.waitForTimers((ms) => ms === 400, 2);
    const failed = c
      .get(`${primary.origin}/doc`, { fallbackUrls: [`${mirror.origin}/doc`] })
      .catch((e: unknown) => e);
    await primary.waitForRequests(2);
    await share;
    const last = clock.waitForTimers((ms) => ms === 400, 3); // the mirror gets all that is left
    clock.advance(400);
    await mirror.waitForRequests(2);
    await last;
    clock.advance(400);
    const error = (await failed) as AllSourcesFailedError;
    assert.ok(error instanceof AllSourcesFailedError);
    assert.equal(error.tiers.at(-2)!.elapsedMs, 400);
  });

  it('onAttempt reports every attempt before the call settles, also those a timeout ended', async () => {
    primary.setFault({ type: 'latency', ms: 5000 });
    const c = client({ attemptTimeoutMs: 150, retry: { maxAttempts: 2 }, cache: false });
    const events: HttpAttemptEvent[] = [];
    c.onAttempt((e) => events.push(e));
    const error = await c.get(`${primary.origin}/doc`).catch((e: unknown) => e);
    assert.ok(error instanceof AllSourcesFailedError);
    // counted at the moment the call rejected (the transfers are still being torn down)
    assert.deepEqual(
      events.map((e) => [e.tier, e.attempt, e.status, e.error?.name]),
      [
        ['primary', 1, undefined, 'TimeoutError'],
        ['primary', 2, undefined, 'TimeoutError'],
      ],
    );
    const ok = client({ cache: false });
    const seen: HttpAttemptEvent[] = [];
    ok.onAttempt((e) => seen.push(e));
    primary.reset();
    primary.setResponse({ body: 'primary body' });
    await ok.get(`${primary.origin}/doc`);
    assert.deepEqual(
      seen.map((e) => [e.attempt, e.status, e.error]),
      [[1, 200, undefined]],
    );
  });

  it('a get after close() fails at once: a closed dispatcher is not retried as a network failure', async () => {
    // the clock never moves: a retry would sleep on it for ever (and the test time out)
    const clock = new TestClock();
    const c = createHttpClient({ cache: false, retry: { initialDelayMs: 1000 }, clock });
    await c.close();
    const events: HttpAttemptEvent[] = [];
    c.onAttempt((e) => events.push(e));
    await assert.rejects(c.get(`${primary.origin}/doc`), AllSourcesFailedError);
    assert.equal(events.length, 1);
    assert.equal(primary.requestCount, 0);
  });

  it('headers timeout per attempt is a retryable network error', async () => {
    primary.setFault({ type: 'latency', ms: 2000 }, { times: 1 });
    const c = client({ headersTimeoutMs: 200, cache: false });
    const r = await c.get(`${primary.origin}/doc`);
    assert.equal(r.attempts, 2);
    assert.equal(r.body.toString(), 'primary body');
  });

  it('truncated body and mid-body reset are network failures that degrade to the next tier', async () => {
    primary.setResponse({ size: 5000 });
    const c = client({ retry: { maxAttempts: 1 }, cache: false });
    for (const fault of [
      { type: 'truncate', bytes: 100 },
      { type: 'reset', afterBytes: 100 },
    ] as const) {
      primary.setFault(fault);
      const r = await c.get(`${primary.origin}/doc`, { fallbackUrls: [`${mirror.origin}/doc`] });
      assert.equal(r.tier, 'fallback');
      const e = r.tiers[1]!.error as HttpNetworkError;
      assert.ok(e instanceof HttpNetworkError, String(e));
      assert.ok(['connection-closed', 'connection-reset'].includes(e.kind), e.kind);
    }
  });

  it('a per-origin circuit breaker stops calling a failing origin', async () => {
    primary.setFault({ type: 'status', status: 500 });
    const c = client({
      retry: { maxAttempts: 1 },
      cache: false,
      circuitBreaker: { strategy: { type: 'consecutive', threshold: 2 }, openDurationMs: 60_000 },
    });
    const url = `${primary.origin}/doc`;
    for (let i = 0; i < 4; i++) await c.get(url, { fallbackUrls: [`${mirror.origin}/doc`] });
    assert.equal(primary.requestCount, 2, 'the breaker opened after 2 failures');
    const r = await c.get(`${primary.origin}/other`, { fallbackUrls: [`${mirror.origin}/doc`] });
    assert.match(r.tiers[1]!.reason, /Circuit .* is open/);
  });
});
