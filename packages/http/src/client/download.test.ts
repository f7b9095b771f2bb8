// The client's streaming side, over loopback from @bulwark/fault-server: bodies into sinks as they
// arrive, sinks aborted when a body is cut or not served, compressed bodies, the attempt deadline on an
// injected clock, HEAD, accepted error statuses, unfollowed redirects, and the background refresh bound.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AllSourcesFailedError, TimeoutError } from '@bulwark/core';
import { patternBody, startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { createHttpClient, type HttpClient } from './client.js';
import type { BodyInfo } from './types.js';
import { TestClock } from '../clock.test.support.js';
import { DiskCacheStore } from '../cache/disk-store.js';
import { MemoryCacheStore } from '../cache/memory-store.js';
import type { HttpNetworkError } from '../errors.js';
import { HttpStatusError } from '../errors.js';
import type { HttpClientOptions } from './options.js';
import type { BodySink } from './transport.js';

/** A sink that records what happened to it. */
class RecordingSink implements BodySink {
  readonly chunks: Buffer[] = [];
  state: 'open' | 'closed' | 'aborted' = 'open';
  constructor(readonly info: BodyInfo) {}
  write(chunk: Buffer): void {
    this.chunks.push(chunk);
  }
  async close(): Promise<void> {
    this.state = 'closed';
  }
  abort(): void {
    this.state = 'aborted';
  }
  get body(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

let primary: FaultServer;
let mirror: FaultServer;
let work: string;
const clients: HttpClient[] = [];
let wall = Date.parse('2026-01-01T00:00:00Z');

function client(options: HttpClientOptions = {}): HttpClient {
  const c = createHttpClient({
    now: () => wall,
    totalTimeoutMs: 30_000,
    ...options,
    retry: options.retry === false ? false : { initialDelayMs: 1, maxDelayMs: 5, ...options.retry },
  });
  clients.push(c);
  return c;
}

before(async () => {
  primary = await startFaultServer();
  mirror = await startFaultServer();
  work = await mkdtemp(join(tmpdir(), 'bulwark-download-'));
});
beforeEach(() => {
  primary.reset();
  mirror.reset();
  mirror.setResponse({ body: 'mirror body', cacheControl: 'max-age=60' });
});
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all([primary.close(), mirror.close()]);
  await rm(work, { recursive: true, force: true });
});

describe('download(): bodies into sinks', () => {
  it('the body arrives in chunks into the sink, which is closed and returned', async () => {
    const sinks: RecordingSink[] = [];
    const r = await client({ cache: false }).download(`${primary.origin}/big?size=2000000`, {
      sink: (info) => {
        const s = new RecordingSink(info);
        sinks.push(s);
        return s;
      },
    });
    assert.equal(sinks.length, 1);
    assert.equal(r.sink, sinks[0]);
    assert.equal(sinks[0]!.state, 'closed');
    assert.ok(sinks[0]!.chunks.length > 1, 'streamed in chunks');
    assert.ok(sinks[0]!.body.equals(patternBody(2_000_000)));
    assert.equal(r.bytes, 2_000_000);
    assert.equal(sinks[0]!.info.status, 200);
    assert.equal(sinks[0]!.info.source, 'primary');
  });

  it('a cut body aborts its sink; the mirror gets a new one, which is served', async () => {
    const sinks: RecordingSink[] = [];
    const r = await client({ cache: false, retry: { maxAttempts: 2 } }).download(
      `${primary.origin}/reset?afterBytes=1000&size=100000&framing=close`,
      {
        fallbackUrls: [`${mirror.origin}/doc`],
        sink: (info) => {
          const s = new RecordingSink(info);
          sinks.push(s);
          return s;
        },
      },
    );
    assert.deepEqual(
      sinks.map((s) => `${s.info.source}:${s.state}`),
      ['primary:aborted', 'primary:aborted', 'fallback-1:closed'],
    );
    assert.equal(r.sink, sinks[2]);
    assert.equal(sinks[2]!.body.toString(), 'mirror body');
  });

  it("a sink that cannot write fails the call with its own error: not retried, no mirror, the origin's breaker untouched", async () => {
    const full = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    let opened = 0;
    const c = client({
      cache: false,
      retry: { maxAttempts: 3 },
      circuitBreaker: { strategy: { type: 'consecutive', threshold: 1 }, openDurationMs: 60_000 },
    });
    const error = await c
      .download(`${primary.origin}/big?size=200000`, {
        fallbackUrls: [`${mirror.origin}/doc`],
        sink: () => {
          opened++;
          return { write: () => Promise.reject(full), close: async () => {}, abort: () => {} };
        },
      })
      .catch((e: unknown) => e);
    assert.equal(error, full);
    assert.equal(opened, 1);
    assert.equal(primary.requestCount, 1);
    assert.equal(mirror.requestCount, 0);
    // the breaker (opens after one failure) did not count it: the next call goes out
    await c.get(`${primary.origin}/doc`);
    assert.equal(primary.requestCount, 2);
  });

  it('a cache that cannot write is reported; the body is served all the same', async () => {
    const c = client({
      cache: {
        get: async () => undefined,
        set: async () => {},
        delete: async () => {},
        writer: () => ({
          write: () => Promise.reject(new Error('cache disk full')),
          close: async () => {},
          commit: async () => {},
          abort: async () => {},
        }),
      },
    });
    const errors: unknown[] = [];
    c.onCacheError((e) => errors.push(e.error));
    const r = await c.get(`${primary.origin}/ok?size=70000&cacheControl=max-age%3D60`);
    assert.ok(r.body.equals(patternBody(70000)));
    assert.match(String(errors[0]), /cache disk full/);
  });

  it('the disk cache receives the body as it arrives and commits it only when complete', async () => {
    const dir = join(work, 'cache-1');
    const store = new DiskCacheStore({ dir });
    const c = client({ cache: store, retry: { maxAttempts: 1 } });
    const url = `${primary.origin}/doc`;
    primary.setResponse({ size: 3_000_000, cacheControl: 'max-age=60' });
    const first = await c.get(url);
    assert.equal(first.bytes, 3_000_000);
    const handle = (await store.open(url))!;
    assert.equal(handle.size, 3_000_000);
    // a cut refetch leaves the stored entry as it was, and no temp file
    primary.setFault({ type: 'truncate', bytes: 1000 });
    await c.get(url, { cacheMode: 'no-cache' }).catch(() => undefined);
    const files = await readdir(store.entryDir(url));
    assert.deepEqual(
      files.filter((f) => f.endsWith('.tmp')),
      [],
    );
    assert.equal((await store.open(url))!.size, 3_000_000);
  });
});

describe('compressed bodies', () => {
  it('asks for gzip, deflate, br and decodes a gzip body; the served headers drop the coding', async () => {
    const r = await client({ cache: false }).get(`${primary.origin}/ok?size=50000&gzip=1`);
    assert.ok(r.body.equals(patternBody(50000)));
    assert.equal(r.headers['content-encoding'], undefined);
    assert.equal(primary.requests[0]!.headers['accept-encoding'], 'gzip, deflate, br');
  });

  it('decompress: false sends no Accept-Encoding and serves the bytes as sent', async () => {
    const r = await client({ cache: false, decompress: false }).get(`${primary.origin}/ok?size=50000&gzip=1`);
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.ok(r.body.length < 50000);
    assert.equal(primary.requests[0]!.headers['accept-encoding'], undefined);
  });

  it('a gzip body cut short (clean close, no length) is a retryable failure, not a short body', async () => {
    // close-delimited and ended by a FIN: only gzip's own end marker tells that bytes are missing
    primary.setResponse({ size: 200_000, gzip: true, framing: 'close' });
    primary.setFault({ type: 'truncate', bytes: 300 });
    const r = await client({ cache: false, retry: { maxAttempts: 1 } }).get(`${primary.origin}/doc`, {
      fallbackUrls: [`${mirror.origin}/doc`],
    });
    assert.equal(r.source, 'fallback-1');
    const e = r.tiers[1]!.error as HttpNetworkError;
    assert.equal(e.kind, 'connection-closed');
    assert.equal(e.retryable, true);
  });

  it('a body that is not gzip at all is a protocol error', async () => {
    primary.setResponse({ body: 'not gzip at all', headers: { 'content-encoding': 'gzip' } });
    const error = await client({ cache: false, retry: { maxAttempts: 1 } })
      .get(`${primary.origin}/doc`)
      .catch((e: unknown) => e as AllSourcesFailedError);
    const e = error.tiers[1]!.error as HttpNetworkError;
    assert.equal(e.kind, 'protocol');
    assert.match(e.message, /not valid gzip/);
  });

  it('an encoding it cannot decode is a protocol error', async () => {
    primary.setResponse({ body: 'x', headers: { 'content-encoding': 'compress' } });
    const error = await client({ cache: false, retry: { maxAttempts: 1 } })
      .get(`${primary.origin}/doc`)
      .catch((e: unknown) => e as AllSourcesFailedError);
    assert.match((error.tiers[1]!.error as Error).message, /unsupported Content-Encoding "compress"/);
  });
});

describe('the attempt deadline (injected clock)', () => {
  it('by default a black-holed primary gives way to the mirror after 2 s of a 30 s total, without retrying', async () => {
    primary.setFault({ type: 'blackhole' });
    const clock = new TestClock();
    const c = client({ clock, cache: false });
    const deadline = clock.waitForTimers((ms) => ms === 2000);
    const p = c.get(`${primary.origin}/doc`, { fallbackUrls: [`${mirror.origin}/doc`] });
    await primary.waitForRequests(1);
    assert.equal(await deadline, 2000);
    clock.advance(1999);
    assert.equal(mirror.requestCount, 0);
    clock.advance(1);
    const r = await p;
    assert.equal(r.source, 'fallback-1');
    assert.ok(r.tiers[1]!.error instanceof TimeoutError);
    assert.equal(r.tiers[1]!.elapsedMs, 2000);
    assert.equal(primary.requestCount, 1, 'a timed-out source is not retried while a mirror remains');
  });

  it('the last source is retried after a timeout, each retry waiting twice as long; its last attempt has only the total', async () => {
    primary.setFault({ type: 'blackhole' });
    const clock = new TestClock();
    const c = client({ clock, cache: false, totalTimeoutMs: 30_000, retry: { maxAttempts: 3 } });
    const p = c.get(`${primary.origin}/doc`).catch((e: unknown) => e);
    for (const [n, wait] of [
      [1, 2000],
      [2, 4000],
    ] as const) {
      const t = clock.waitForTimers((ms) => ms === wait);
      await primary.waitForRequests(n);
      await t;
      clock.advance(wait);
      // the backoff before the retry (1–5 ms)
      const backoff = await clock.waitForTimers((ms) => ms <= 5, n);
      clock.advance(backoff);
    }
    await primary.waitForRequests(3);
    const spent = clock.now();
    // the third attempt waits for the total: nothing fires until it is spent
    clock.advance(30_000 - spent - 1);
    assert.equal(primary.requestCount, 3);
    clock.advance(1);
    const error = (await p) as AllSourcesFailedError;
    assert.ok(error instanceof AllSourcesFailedError);
    assert.equal(error.tiers[1]!.elapsedMs, 30_000);
  });

  it('an explicit attemptTimeoutMs applies to every attempt, and only until the headers: a long body is not cut', async () => {
    const clock = new TestClock();
    const c = client({ clock, cache: false, attemptTimeoutMs: 500 });
    // headers at once, then the body over real time; the injected clock does not move at all
    const r = await c.get(`${primary.origin}/bandwidth?size=300000&bytesPerSecond=1000000`);
    assert.ok(r.body.equals(patternBody(300_000)));
    assert.ok(clock.scheduled.includes(500));
  });
});

describe('what is served', () => {
  it('an unsolicited 304 (no conditional request) is a protocol failure: the mirror serves', async () => {
    primary.setFault({ type: 'status', status: 304 });
    const r = await client({ cache: false, retry: { maxAttempts: 1 } }).get(`${primary.origin}/doc`, {
      fallbackUrls: [`${mirror.origin}/doc`],
    });
    assert.equal(r.source, 'fallback-1');
    const e = r.tiers[1]!.error as HttpNetworkError;
    assert.equal(e.kind, 'protocol');
    assert.match(e.message, /unsolicited 304/);
  });

  it('acceptStatus serves an error status with its body (not retried, not stored, no mirror)', async () => {
    primary.setFault({ type: 'status', status: 404, body: 'no such page\n' });
    const store = new MemoryCacheStore();
    const r = await client({ cache: store }).get(`${primary.origin}/doc`, {
      fallbackUrls: [`${mirror.origin}/doc`],
      acceptStatus: (s) => s === 404,
    });
    assert.equal(r.status, 404);
    assert.equal(r.body.toString(), 'no such page\n');
    assert.equal(store.size, 0);
    assert.equal(mirror.requestCount, 0);
  });

  it('followRedirects: false serves the 3xx as it is', async () => {
    const r = await client({ cache: false, followRedirects: false }).get(
      `${primary.origin}/redirect?location=/elsewhere&status=301`,
    );
    assert.equal(r.status, 301);
    assert.equal(r.headers['location'], '/elsewhere');
    assert.equal(r.redirects, 0);
    assert.equal(primary.requestCount, 1);
  });

  it('HEAD: headers only; a fresh stored response answers it without a request', async () => {
    const c = client();
    const head = await c.get(`${primary.origin}/ok?size=5000&cacheControl=max-age%3D60`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '5000');
    assert.equal(head.body.length, 0);
    assert.equal(primary.requests[0]!.method, 'HEAD');
    const url = `${primary.origin}/ok?size=5000&cacheControl=max-age%3D60`;
    await c.get(url); // stored by a GET
    const cached = await c.get(url, { method: 'HEAD' });
    assert.equal(cached.tier, 'fresh-cache');
    assert.equal(cached.body.length, 0);
    assert.equal(primary.requestCount, 2);
  });

  it('a 404 stays final without acceptStatus', async () => {
    primary.setFault({ type: 'status', status: 404 });
    await assert.rejects(
      client({ cache: false }).get(`${primary.origin}/doc`, { fallbackUrls: [`${mirror.origin}/doc`] }),
      (e: unknown) => e instanceof HttpStatusError && e.status === 404,
    );
  });
});

describe('stale-while-revalidate and close()', () => {
  it('close({ signal }) stops waiting for a hanging background refresh when the signal aborts', async () => {
    const c = client();
    const url = `${primary.origin}/doc`;
    primary.setResponse({ body: 'v1', cacheControl: 'max-age=1, stale-while-revalidate=60' });
    await c.get(url);
    wall += 5000;
    primary.setFault({ type: 'blackhole' });
    const r = await c.get(url);
    assert.equal(r.tier, 'fresh-cache');
    assert.equal(r.body.toString(), 'v1');
    await primary.waitForRequests(2); // the refresh is on the wire, and hangs
    const controller = new AbortController();
    const closing = c.close({ signal: controller.signal });
    controller.abort();
    await closing;
    await primary.waitForIdle();
    // the entry is as it was
    primary.setFault(undefined);
  });
});
