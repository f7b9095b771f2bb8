// Never accept a truncated body: every shape of a cut body, over loopback from @bulwark/fault-server,
// through the HTTP client (served, fallback, cache) and fetchAll. The CLI side is in apps/*/test.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AllSourcesFailedError } from '@bulwark/core';
import { patternBody, startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { createHttpClient, type HttpClient } from './client/client.js';
import { MemoryCacheStore } from './cache/memory-store.js';
import { HttpNetworkError } from './errors.js';
import { fetchAll } from './fetch-all/run.js';
import type { FetchResult } from './fetch-all/types.js';
import type { HttpClientOptions } from './client/options.js';

interface Shape {
  readonly name: string;
  /** Path and query on the fault server (the body is 5000 bytes; 100 of them arrive). */
  readonly path: string;
  /** The client's error kind. */
  readonly kind: HttpNetworkError['kind'];
  /** fetchAll's code. */
  readonly code: string;
}

const SHAPES: readonly Shape[] = [
  {
    name: 'no length + reset',
    path: '/reset?afterBytes=100&size=5000&framing=close',
    kind: 'connection-reset',
    code: 'RESET',
  },
  {
    name: 'short Content-Length',
    path: '/truncate?bytes=100&size=5000',
    kind: 'connection-closed',
    code: 'CLOSED',
  },
  {
    name: 'broken chunking',
    path: '/truncate?bytes=100&size=5000&framing=chunked',
    kind: 'connection-closed',
    code: 'CLOSED',
  },
  {
    name: 'stall past the body timeout',
    path: '/stall?afterBytes=100&size=5000',
    kind: 'body-timeout',
    code: 'TIMEOUT',
  },
];

let origin: FaultServer;
let mirror: FaultServer;
const clients: HttpClient[] = [];
let wall = Date.parse('2026-01-01T00:00:00Z');

function client(options: HttpClientOptions = {}): HttpClient {
  const c = createHttpClient({
    now: () => wall,
    totalTimeoutMs: 60_000,
    // undici checks its body timeout on a ~1 s tick; 1.5 s is far below the stall (held until close)
    bodyTimeoutMs: 1500,
    circuitBreaker: false,
    ...options,
    retry: options.retry === false ? false : { initialDelayMs: 1, maxDelayMs: 5, ...options.retry },
  });
  clients.push(c);
  return c;
}

before(async () => {
  origin = await startFaultServer();
  mirror = await startFaultServer({ response: { body: 'mirror body', cacheControl: 'max-age=60' } });
});
beforeEach(() => {
  origin.reset();
  mirror.reset();
});
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all([origin.close(), mirror.close()]);
});

describe('a complete close-delimited body is still accepted (the control)', () => {
  it('no length, all 5000 bytes, then a clean close: served whole', async () => {
    const r = await client({ cache: false }).get(`${origin.origin}/ok?size=5000&framing=close`);
    assert.equal(r.tier, 'primary');
    assert.ok(r.body.equals(patternBody(5000)));
    const [result] = await collect(fetchAll([`${origin.origin}/ok?size=5000&framing=close`]));
    assert.equal(result!.ok, true);
    assert.equal(result!.bytes, 5000);
  });
});

for (const shape of SHAPES) {
  describe(`${shape.name}: never served, cached or counted as complete`, () => {
    it('client, one source: a retryable network failure, retried, then the call fails', async () => {
      const error = await client({ cache: false, retry: { maxAttempts: 2 } })
        .get(`${origin.origin}${shape.path}`)
        .then(
          () => assert.fail('a cut body was served'),
          (e: unknown) => e,
        );
      assert.ok(error instanceof AllSourcesFailedError, String(error));
      const failure = error.tiers.find((t) => t.tier === 'primary')!.error as HttpNetworkError;
      assert.ok(failure instanceof HttpNetworkError, String(failure));
      assert.equal(failure.kind, shape.kind);
      assert.equal(failure.retryable, true);
      assert.equal(origin.requestCount, 2, 'retried');
    });

    it('client with a mirror: the mirror serves, the primary is reported failed', async () => {
      const r = await client({ cache: false, retry: { maxAttempts: 1 } }).get(
        `${origin.origin}${shape.path}`,
        {
          fallbackUrls: [`${mirror.origin}/doc`],
        },
      );
      assert.equal(r.source, 'fallback-1');
      assert.equal(r.body.toString(), 'mirror body');
      assert.equal((r.tiers[1]!.error as HttpNetworkError).kind, shape.kind);
    });

    it('client cache: the cut body is not stored; a stale intact copy is served instead', async () => {
      const store = new MemoryCacheStore();
      const c = client({ cache: store, retry: { maxAttempts: 1 }, maxStaleMs: 3_600_000 });
      const url = `${origin.origin}/doc`;
      origin.setResponse({ size: 5000, cacheControl: 'max-age=10' });
      await c.get(url);
      wall += 60_000; // stale now
      origin.setFault(faultOf(shape.path));
      const r = await c.get(url);
      assert.equal(r.tier, 'stale-cache');
      assert.ok(r.body.equals(patternBody(5000)), 'the intact stored copy, not the cut one');
      const stored = await store.get(url);
      assert.ok(stored!.body.equals(patternBody(5000)), 'the store still holds the intact copy');

      // nothing stored when there was nothing before
      const fresh = new MemoryCacheStore();
      await client({ cache: fresh, retry: { maxAttempts: 1 } })
        .get(`${origin.origin}/other`)
        .catch(() => undefined);
      assert.equal(fresh.size, 0);
    });

    it("client: counts against the origin's breaker", async () => {
      const c = client({
        cache: false,
        retry: { maxAttempts: 1 },
        circuitBreaker: { strategy: { type: 'consecutive', threshold: 2 }, openDurationMs: 60_000 },
      });
      for (let i = 0; i < 3; i++) await c.get(`${origin.origin}${shape.path}`).catch(() => undefined);
      assert.equal(origin.requestCount, 2, 'the breaker opened after two cut bodies');
    });

    it('fetchAll: an error code, not ok, and retried', async () => {
      const run = fetchAll([`${origin.origin}${shape.path}`], {
        retry: { maxAttempts: 2, initialDelayMs: 1 },
        // the stall's bound: far below its silence, which lasts until close()
        attemptTimeoutMs: 1500,
      });
      const [result] = await collect(run);
      assert.equal(result!.ok, false);
      assert.equal(result!.errorCode, shape.code, result!.error);
      assert.equal(result!.attempts, 2, 'retried');
      assert.equal(origin.requestCount, 2);
      assert.equal(run.stats.ok, 0);
    });

    it("fetchAll: counts against the host's breaker", async () => {
      const urls = Array.from({ length: 6 }, (_, i) => `${origin.origin}${shape.path}&i=${i}`);
      const results = await collect(
        fetchAll(urls, {
          retry: { maxAttempts: 1 },
          attemptTimeoutMs: 1500,
          circuitBreaker: { strategy: { type: 'consecutive', threshold: 2 } },
          perHostConcurrency: 1,
        }),
      );
      assert.equal(origin.requestCount, 2, 'two cut bodies opened the breaker');
      assert.equal(results.filter((r) => r.errorCode === 'CIRCUIT_OPEN').length, 4);
    });
  });
}

function faultOf(path: string): Parameters<FaultServer['setFault']>[0] {
  const url = new URL(path, 'http://x');
  const q = url.searchParams;
  const framing = q.get('framing') ?? undefined;
  if (framing !== undefined)
    origin.setResponse({ size: 5000, cacheControl: 'max-age=10', framing: framing as 'close' });
  if (url.pathname === '/reset') return { type: 'reset', afterBytes: Number(q.get('afterBytes')) };
  if (url.pathname === '/truncate') return { type: 'truncate', bytes: Number(q.get('bytes')) };
  return { type: 'stall', afterBytes: Number(q.get('afterBytes')) };
}

async function collect(iterable: AsyncIterable<FetchResult>): Promise<FetchResult[]> {
  const out: FetchResult[] = [];
  for await (const r of iterable) out.push(r);
  return out;
}
