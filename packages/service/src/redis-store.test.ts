// Against the real Redis at REDIS_URL (default redis://127.0.0.1:6379); every key under a prefix unique to
// this run, deleted at the end.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { InvalidOptionError, memoryRateLimitStore, rateLimiter, RateLimitedError } from '@bulwark/core';
import { RedisRateLimitStore, redactUrl } from './redis-store.js';
import { sleep } from './test-support.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `bulwark:test:${process.pid}:${randomUUID().slice(0, 8)}:`;

describe('RedisRateLimitStore (real Redis)', () => {
  let store: RedisRateLimitStore;
  let admin: Redis;

  before(async () => {
    store = new RedisRateLimitStore({ url: REDIS_URL, keyPrefix: prefix });
    admin = new Redis(REDIS_URL);
    await waitReady(store);
  });

  after(async () => {
    await store.clear();
    assert.equal((await admin.keys(`${prefix}*`)).length, 0, 'every test key deleted');
    await store.close();
    await admin.quit();
  });

  it('takes tokens until the bucket is empty, then says how long to wait (the in-memory store decides alike)', async () => {
    const rule = { ratePerSecond: 1, burst: 3 };
    const memory = memoryRateLimitStore();
    for (let i = 0; i < 3; i++) {
      const r = await store.take('a', 1, 0, rule);
      const m = memory.take('a', 1, 0, rule);
      assert.deepEqual(r, { allowed: true, remaining: 2 - i, retryAfterMs: 0 });
      assert.deepEqual(r, m);
    }
    const denied = await store.take('a', 1, 0, rule);
    assert.equal(denied.allowed, false);
    assert.equal(denied.remaining, 0);
    assert.ok(
      denied.retryAfterMs > 900 && denied.retryAfterMs <= 1000,
      `retryAfterMs ${denied.retryAfterMs}`,
    );
    assert.deepEqual(memory.take('a', 1, 0, rule), { allowed: false, remaining: 0, retryAfterMs: 1000 });
  });

  it('refills at ratePerSecond (Redis TIME, not the caller clock) and caps at burst', async () => {
    // one token per 200 ms: the two takes below are far closer together than that, even on a busy machine
    const rule = { ratePerSecond: 5, burst: 2 };
    assert.equal((await store.take('r', 2, 0, rule)).allowed, true);
    assert.equal((await store.take('r', 1, 999_999, rule)).allowed, false, 'the caller clock is ignored');
    await sleep(600); // 3 tokens' worth of time, but the bucket holds 2
    const r = await store.take('r', 1, 0, rule);
    assert.equal(r.allowed, true);
    assert.equal(r.remaining, 1);
  });

  it('keeps each key as a hash that expires once it would be full again', async () => {
    await store.take('ttl', 1, 0, { ratePerSecond: 2, burst: 10 });
    const key = `${prefix}ttl`;
    assert.equal(await admin.type(key), 'hash');
    const pttl = await admin.pttl(key);
    // one token missing at 2/s = 500 ms, plus a 1 s margin
    assert.ok(pttl > 1000 && pttl <= 1500, `pttl ${pttl}`);
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
    await waitReady(other);
    try {
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

  it('fails fast and reports degraded when Redis is unreachable, then skips it for retryAfterFailureMs', async () => {
    const dead = new RedisRateLimitStore({
      url: 'redis://127.0.0.1:1',
      retryAfterFailureMs: 5000,
      connectTimeoutMs: 200,
    });
    const events: boolean[] = [];
    dead.onHealthChange((e) => events.push(e.degraded));
    try {
      const t0 = performance.now();
      await assert.rejects(dead.take('x', 1, 0, { ratePerSecond: 1, burst: 1 }));
      assert.ok(performance.now() - t0 < 50, 'no waiting for a dead server');
      assert.equal(dead.degraded, true);
      assert.deepEqual(events, [true]);
    } finally {
      await dead.close();
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

async function waitReady(store: RedisRateLimitStore): Promise<void> {
  for (let i = 0; i < 200 && store.client.status !== 'ready'; i++) await sleep(10);
  assert.equal(store.client.status, 'ready', `Redis at ${REDIS_URL} must be running`);
}
