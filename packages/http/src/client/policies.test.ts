// The client's per-origin adaptive throttle (on by default) and hedging (opt-in), over a real loopback
// server. Time is a FakeClock's; the tests wait on events (requests and closes seen by the server).
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, test } from 'node:test';
import {
  ADAPTIVE_THROTTLE_DEFAULTS,
  AllSourcesFailedError,
  InvalidOptionError,
  ThrottledError,
  retryBudget,
  seededRandom,
} from '@bulwark/core';
import { FakeClock } from '@bulwark/core/testing';
import { createHttpClient, type HttpClient } from './client.js';
import type { HttpClientOptions } from './options.js';
import type { BodySink } from './transport.js';

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;
let server: Server;
let origin = '';
let handler: Handler = (_req, res) => res.end('ok');
let count = 0;
const seen = new EventEmitter();
const clients: HttpClient[] = [];

function client(options: HttpClientOptions = {}): HttpClient {
  const c = createHttpClient({ cache: false, ...options });
  clients.push(c);
  return c;
}

/** Resolves once the server has seen `n` requests since the test began. */
function requests(n: number): Promise<void> {
  if (count >= n) return Promise.resolve();
  return new Promise((resolve) => {
    const check = (): void => {
      if (count < n) return;
      seen.off('request', check);
      resolve();
    };
    seen.on('request', check);
  });
}

before(async () => {
  server = createServer((req, res) => {
    const n = ++count;
    seen.emit('request');
    handler(req, res, n);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

beforeEach(() => {
  count = 0;
  handler = (_req, res) => res.end('ok');
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  server.closeAllConnections();
  server.close();
});

test('adaptive throttling is on by default, with core’s defaults (k = 2)', () => {
  const t = client().options.adaptiveThrottle;
  assert.ok(t !== false);
  assert.equal(t.k, ADAPTIVE_THROTTLE_DEFAULTS.k);
  assert.equal(t.windowMs, ADAPTIVE_THROTTLE_DEFAULTS.windowMs);
  assert.equal(t.minimumRequests, ADAPTIVE_THROTTLE_DEFAULTS.minimumRequests);
  assert.equal(client({ adaptiveThrottle: false }).options.adaptiveThrottle, false);
  assert.equal(client().options.hedge, false);
});

test('a throttled attempt is not sent, not retried, not counted by the breaker; the call says ThrottledError', async () => {
  handler = (_req, res) => {
    res.statusCode = 503;
    res.end('no');
  };
  const c = client({
    clock: new FakeClock(),
    retry: { maxAttempts: 1 },
    circuitBreaker: { strategy: { type: 'consecutive', threshold: 5 } },
    adaptiveThrottle: { minimumRequests: 3, k: 1, random: () => 0 },
  });
  for (let i = 0; i < 3; i++) await assert.rejects(c.get(`${origin}/${i}`), AllSourcesFailedError);
  assert.equal(count, 3);
  // from now on every attempt is rejected locally (random() = 0 < p): 10 calls, none sent; the breaker
  // (5 failures) never sees them, so it stays closed and the rejection stays the throttle's
  for (let i = 0; i < 10; i++) {
    await assert.rejects(c.get(`${origin}/t${i}`), (e: unknown) => {
      assert.ok(e instanceof AllSourcesFailedError);
      const primary = e.tiers.find((t) => t.tier === 'primary')!;
      assert.ok(primary.error instanceof ThrottledError, String(primary.error));
      assert.equal((primary.error as ThrottledError).key, origin);
      return true;
    });
  }
  assert.equal(count, 3);
});

test('a throttled primary moves on to the mirror at once', async () => {
  handler = (req, res) => {
    if (req.url!.startsWith('/mirror')) return res.end('from the mirror');
    res.statusCode = 503;
    res.end('no');
  };
  const c = client({
    clock: new FakeClock(),
    retry: { maxAttempts: 1 },
    adaptiveThrottle: { minimumRequests: 1, k: 1, random: () => 0 },
  });
  // the mirror is another origin only by its host name (localhost), so it has a throttle of its own
  const mirror = origin.replace('127.0.0.1', 'localhost');
  const first = await c.get(`${origin}/a`, { fallbackUrls: [`${mirror}/mirror`] });
  assert.equal(first.tier, 'fallback');
  const before = count;
  const r = await c.get(`${origin}/a`, { fallbackUrls: [`${mirror}/mirror`] });
  assert.equal(r.tier, 'fallback');
  assert.equal(r.body.toString(), 'from the mirror');
  assert.equal(count, before + 1, 'only the mirror was asked');
  const primary = r.tiers.find((t) => t.tier === 'primary')!;
  assert.ok(primary.error instanceof ThrottledError);
});

test('against a backend refusing 90 % (capacity counted in calls), what reaches it drops to about k × accepts', async () => {
  let tokens = 0;
  let accepted = 0;
  handler = (_req, res) => {
    if (tokens >= 1) {
      tokens--;
      accepted++;
      return res.end('ok');
    }
    res.statusCode = 503;
    res.end('overloaded');
  };
  const run = async (options: HttpClientOptions): Promise<{ reached: number; accepted: number }> => {
    count = 0;
    accepted = 0;
    tokens = 0;
    // no retries, no breaker: the throttle alone; a clock that does not move keeps every call in its window
    const c = client({
      clock: new FakeClock(),
      retry: { maxAttempts: 1 },
      circuitBreaker: false,
      ...options,
    });
    for (let i = 0; i < 400; i++) {
      tokens = Math.min(1, tokens + 0.1);
      await c.get(`${origin}/${i}`).catch(() => undefined);
    }
    return { reached: count, accepted };
  };
  const off = await run({ adaptiveThrottle: false });
  const on = await run({ adaptiveThrottle: { random: seededRandom(3) } });
  assert.ok(off.reached / off.accepted >= 9, `off: ${off.reached} / ${off.accepted}`);
  const ratio = on.reached / on.accepted;
  assert.ok(ratio >= 1.5 && ratio <= 3, `k = 2: ${on.reached} / ${on.accepted} = ${ratio}`);
});

test('hedging: the stalled first request is overtaken; the loser is aborted (server sees the close), its sink aborted, nothing of it cached', async () => {
  const closed = new EventEmitter();
  let loserClosed = false;
  handler = (req, res, n) => {
    res.setHeader('cache-control', 'max-age=600');
    if (n === 1) {
      // headers and part of a body, then nothing: the attempt that loses
      res.setHeader('content-length', '100');
      res.write('LOSER');
      res.on('close', () => {
        loserClosed = true;
        closed.emit('close');
      });
      return;
    }
    res.end('winner');
  };
  const clock = new FakeClock();
  const c = createHttpClient({
    clock,
    retry: { maxAttempts: 1 },
    hedge: { delayMs: 50, budget: retryBudget({ ratio: 1, minRetriesPerSecond: 0, clock }) },
  });
  clients.push(c);
  const sinks: { source: string; chunks: string[]; closed: boolean; aborted: boolean }[] = [];
  const opened = new EventEmitter();
  const sinkFactory = (): BodySink => {
    const s = { source: '', chunks: [] as string[], closed: false, aborted: false };
    sinks.push(s);
    opened.emit('open');
    return {
      write: (chunk) => {
        s.chunks.push(chunk.toString());
      },
      close: async () => {
        s.closed = true;
      },
      abort: () => {
        s.aborted = true;
      },
    };
  };
  const loserClose = once(closed, 'close');
  const firstSink = once(opened, 'open');
  const download = c.download(`${origin}/doc`, { sink: sinkFactory });
  await requests(1);
  await firstSink; // the first attempt has its headers and a sink
  clock.advance(50); // the hedge is due
  const r = await download;
  assert.equal(r.status, 200);
  assert.equal(r.attempts, 2);
  assert.equal(count, 2);
  assert.equal(sinks.length, 2);
  assert.deepEqual(sinks[1]!.chunks, ['winner']);
  assert.equal(sinks[1]!.closed, true);
  assert.equal(sinks[0]!.closed, false, 'the loser’s sink is never closed');
  await loserClose; // the server saw the losing request's connection close
  assert.equal(loserClosed, true);
  // its sink is aborted once it has unwound
  while (!sinks[0]!.aborted) await new Promise((resolve) => setImmediate(resolve));
  // what was cached is the winner's body
  const cached = await c.get(`${origin}/doc`);
  assert.equal(cached.tier, 'fresh-cache');
  assert.equal(cached.body.toString(), 'winner');
  assert.equal(count, 2);
});

test('hedging a request that stalls before its headers: the hedge wins, the stalled one is aborted', async () => {
  const closed = new EventEmitter();
  handler = (_req, res, n) => {
    if (n === 1) {
      res.on('close', () => closed.emit('close'));
      return; // never answered
    }
    res.end('fast');
  };
  const clock = new FakeClock();
  const c = client({
    clock,
    retry: { maxAttempts: 1 },
    hedge: { delayMs: 20, budget: retryBudget({ ratio: 1, minRetriesPerSecond: 0, clock }) },
  });
  const closing = once(closed, 'close');
  const events: Array<[number, number, number | undefined]> = [];
  c.onAttempt((e) => events.push([e.attempt, e.hedge, e.status]));
  const got = c.get(`${origin}/x`);
  await requests(1);
  clock.advance(20);
  const r = await got;
  assert.equal(r.body.toString(), 'fast');
  assert.equal(r.attempts, 2);
  await closing;
  // one attempt, two requests: the hedge is told from the first (red-team RT-2 F7)
  assert.deepEqual(events.map(([attempt, hedge]) => [attempt, hedge]).sort(), [
    [1, 0],
    [1, 1],
  ]);
  assert.deepEqual(
    events.find(([, hedge]) => hedge === 1),
    [1, 1, 200],
  );
});

test('an own __proto__ key is refused as an unknown option, with a readable message (red-team RT-2 F10)', () => {
  assert.throws(
    () => client({ adaptiveThrottle: JSON.parse('{"__proto__":{"k":0}}') as never }),
    (e: unknown) => e instanceof Error && !/\[object Object\]/.test(e.message) && /__proto__/.test(e.message),
  );
});

test('hedge and adaptiveThrottle are validated, naming the option', () => {
  const bad: [HttpClientOptions, string][] = [
    [{ hedge: { delayMs: -5 } }, 'httpClient.hedge.delayMs'],
    [{ hedge: { idempotent: () => true } }, 'httpClient.hedge.idempotent'],
    [{ hedge: { clock: new FakeClock() } }, 'httpClient.hedge.clock'],
    [{ hedge: 1 as never }, 'httpClient.hedge'],
    [{ adaptiveThrottle: { k: 0 } }, 'httpClient.adaptiveThrottle.k'],
    [{ adaptiveThrottle: { minimumRequests: 1.5 } }, 'httpClient.adaptiveThrottle.minimumRequests'],
    [{ adaptiveThrottle: { maxKeys: 3 } }, 'httpClient.adaptiveThrottle.maxKeys'],
  ];
  for (const [options, option] of bad) {
    assert.throws(
      () => createHttpClient(options),
      (e: unknown) => e instanceof InvalidOptionError && e.option === option,
      JSON.stringify(options),
    );
  }
});

test('hedging is only for GET and HEAD: another method is refused before anything is sent', async () => {
  const c = client({ hedge: { delayMs: 10 } });
  await assert.rejects(
    c.get(`${origin}/x`, { method: 'POST' as never }),
    (e: unknown) => e instanceof TypeError && /GET or HEAD/.test(e.message),
  );
  assert.equal(count, 0);
});
