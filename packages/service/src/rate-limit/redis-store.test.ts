// Against the real Redis at REDIS_URL (default redis://127.0.0.1:6379); every key under a prefix unique to
// this run, deleted at the end.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { InvalidOptionError, memoryRateLimitStore, rateLimiter, RateLimitedError } from '@bulwark/core';
import { RedisRateLimitStore, redactUrl } from './redis-store.js';
import {
  cleanUp,
  closeRedisForTests,
  nextEvent,
  REDIS_URL,
  redisForTests,
  redisReady,
  sleep,
} from '../test-support.js';

const prefix = `bulwark:test:${process.pid}:${randomUUID().slice(0, 8)}:`;

describe('RedisRateLimitStore (real Redis)', () => {
  let store: RedisRateLimitStore;
  let admin: Redis;

  before(async () => {
    admin = await redisForTests(); // fails within seconds, saying so, when Redis is not there
    store = new RedisRateLimitStore({ url: REDIS_URL, keyPrefix: prefix });
    await redisReady(store.client);
  });

  after(() =>
    cleanUp(
      async () => {
        if (store !== undefined) await store.clear();
      },
      () => store?.close(),
      async () => {
        if (admin !== undefined)
          assert.equal((await admin.keys(`${prefix}*`)).length, 0, 'every test key deleted');
      },
      () => closeRedisForTests(admin),
    ),
  );

  it('takes tokens until the bucket is empty, then says how long to wait (the in-memory store decides alike)', async () => {
    const rule = { ratePerSecond: 1, burst: 3 };
    const memory = memoryRateLimitStore();
    const started = performance.now();
    for (let i = 0; i < 3; i++) {
      const r = await store.take('a', 1, 0, rule);
      const m = memory.take('a', 1, 0, rule);
      assert.deepEqual(r, { allowed: true, remaining: 2 - i, retryAfterMs: 0 });
      assert.deepEqual(r, m);
    }
    const denied = await store.take('a', 1, 0, rule);
    // Redis refilled for whatever time passed since the first take, which is at most what we saw pass.
    const elapsedMs = performance.now() - started;
    assert.equal(denied.allowed, false);
    assert.equal(denied.remaining, 0);
    assert.ok(
      denied.retryAfterMs >= Math.floor(1000 - elapsedMs) && denied.retryAfterMs <= 1000,
      `retryAfterMs ${denied.retryAfterMs} after ${elapsedMs} ms`,
    );
    assert.deepEqual(memory.take('a', 1, 0, rule), { allowed: false, remaining: 0, retryAfterMs: 1000 });
  });

  it('ignores the caller clock (Redis TIME decides)', async () => {
    // one token per 1000 s: no test run is long enough for a refill
    const rule = { ratePerSecond: 0.001, burst: 2 };
    assert.equal((await store.take('clock', 2, 0, rule)).allowed, true);
    assert.equal(
      (await store.take('clock', 1, 999_999_999, rule)).allowed,
      false,
      'a caller clock far ahead',
    );
  });

  it('refills at ratePerSecond and caps at burst', async () => {
    const rule = { ratePerSecond: 5, burst: 2 };
    assert.equal((await store.take('r', 2, 0, rule)).allowed, true);
    // At least 3 tokens' worth of time (it may be longer on a busy machine: the bucket holds 2 anyway).
    await sleep(600);
    const r = await store.take('r', 1, 0, rule);
    assert.equal(r.allowed, true);
    assert.equal(r.remaining, 1);
  });

  it('keeps each key as a hash that expires once it would be full again', async () => {
    const started = performance.now();
    await store.take('ttl', 1, 0, { ratePerSecond: 0.002, burst: 10 });
    const key = `${prefix}ttl`;
    assert.equal(await admin.type(key), 'hash');
    const pttl = await admin.pttl(key);
    const elapsedMs = performance.now() - started;
    // one token missing at 0.002/s = 500 s, plus a 1 s margin; less whatever time passed since the take
    assert.ok(
      pttl <= 501_000 && pttl >= Math.floor(501_000 - elapsedMs),
      `pttl ${pttl} after ${elapsedMs} ms`,
    );
  });

  it('plugs into core rateLimiter() as its store', async () => {
    const limiter = rateLimiter({ ratePerSecond: 0.1, burst: 1, store, keyOf: () => 'core' });
    assert.equal(await limiter.execute(() => 'ran'), 'ran');
    await assert.rejects(
      limiter.execute(() => 'ran'),
      RateLimitedError,
    );
  });

  it('two stores (two processes) share one bucket', async () => {
    const other = new RedisRateLimitStore({ url: REDIS_URL, keyPrefix: prefix });
    try {
      await redisReady(other.client); // inside the try: a store that never gets ready is closed too
      const rule = { ratePerSecond: 0.01, burst: 4 };
      const results = [];
      for (let i = 0; i < 6; i++)
        results.push(await (i % 2 === 0 ? store : other).take('shared', 1, 0, rule));
      assert.deepEqual(
        results.map((r) => r.allowed),
        [true, true, true, true, false, false],
      );
    } finally {
      await other.close();
    }
  });

  it('fails fast and reports degraded when Redis is unreachable (nothing queued for a dead server)', async () => {
    const dead = new RedisRateLimitStore({
      url: 'redis://127.0.0.1:1',
      retryAfterFailureMs: 5000,
      connectTimeoutMs: 200,
    });
    const events: boolean[] = [];
    dead.onHealthChange((e) => events.push(e.degraded));
    try {
      assert.notEqual(dead.client.status, 'ready');
      // Rejected at once with the store's own error: no command was queued for a connection to come.
      await assert.rejects(dead.take('x', 1, 0, { ratePerSecond: 1, burst: 1 }), /failing fast/);
      assert.equal(dead.degraded, true);
      assert.deepEqual(events, [true]);
    } finally {
      await dead.close();
    }
  });

  it('notices that Redis is back without waiting for a request (restarted, or hung and resumed)', async () => {
    const { startFaultProxy } = await import('@bulwark/fault-server');
    const proxy = await startFaultProxy({ target: REDIS_URL });
    const probed = new RedisRateLimitStore({
      url: `redis://${proxy.address}`,
      keyPrefix: prefix,
      retryAfterFailureMs: 200,
      commandTimeoutMs: 200,
    });
    const rule = { ratePerSecond: 1, burst: 1 };
    try {
      await redisReady(probed.client);
      // Redis goes away (connection refused and closed) and comes back.
      let degraded = nextEvent(probed.onHealthChange, (e) => e.degraded);
      await proxy.setFault({ type: 'down' });
      await degraded;
      let recovered = nextEvent(probed.onHealthChange, (e) => !e.degraded);
      await proxy.reset();
      await recovered; // no take was made: the store found out by itself
      assert.equal(probed.degraded, false);

      // Redis hangs (every reply late, the connection up): a take times out; then it answers again.
      await proxy.setFault({ type: 'latency', ms: 1000 });
      degraded = nextEvent(probed.onHealthChange, (e) => e.degraded);
      await assert.rejects(probed.take('probe', 1, 0, rule));
      await degraded;
      recovered = nextEvent(probed.onHealthChange, (e) => !e.degraded);
      await proxy.setFault({ type: 'none' });
      await recovered;
      assert.equal((await probed.take('probe2', 1, 0, rule)).allowed, true);
    } finally {
      await probed.close();
      await proxy.close();
    }
  });

  it('validates options and never echoes a password', () => {
    assert.throws(() => new RedisRateLimitStore({} as never), /redisStore\.url/);
    assert.throws(
      () => new RedisRateLimitStore({ url: 'http://user:hunter2@host' }),
      (e: unknown) => e instanceof InvalidOptionError && !e.message.includes('hunter2'),
    );
    assert.throws(() => new RedisRateLimitStore({ url: REDIS_URL, commandTimeoutMs: 0 }), /commandTimeoutMs/);
    assert.equal(redactUrl('redis://default:s3cret@h:6379/0'), 'redis://default:***@h:6379/0');
  });
});
