// Rate limiting through the HTTP server: memory store, a Redis store shared by two real servers, and
// Redis outages (a closed port, a connection that drops through a proxy, a killed client connection).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { request } from 'undici';
import type { FastifyInstance } from 'fastify';
import { startFaultProxy } from '@bulwark/fault-server';
import { createService } from '../service.js';
import { HttpRateLimiter, type RateLimitOptions } from './limiter.js';
import { InvalidOptionError } from '@bulwark/core';
import type { StoreHealthEvent } from './redis-store.js';
import {
  cleanUp,
  closeRedisForTests,
  listen,
  LogSink,
  nextEvent,
  parsePrometheus,
  REDIS_URL,
  redisForTests,
  sampleValue,
} from '../test-support.js';

const prefix = `bulwark:test:${process.pid}:${randomUUID().slice(0, 8)}:`;

interface Started {
  app: FastifyInstance;
  base: string;
  logs: LogSink;
}

async function start(rateLimit: RateLimitOptions): Promise<Started> {
  const logs = new LogSink();
  const app = createService({ logStream: logs, shedding: false, rateLimit, health: { details: true } });
  app.get('/api', async () => ({ ok: true }));
  app.get('/free', { config: { bulwark: { rateLimit: false } } }, async () => ({ ok: true }));
  return { app, base: await listen(app), logs };
}

async function get(base: string, path = '/api', headers: Record<string, string> = {}) {
  const res = await request(`${base}${path}`, { headers });
  await res.body.dump();
  return res;
}

async function health(base: string) {
  const res = await request(`${base}/healthz`);
  return (await res.body.json()) as {
    status: string;
    rateLimit: { store: string; degraded: boolean; mode: string; lastError?: string };
  };
}

async function metrics(base: string) {
  return parsePrometheus(await (await request(`${base}/metrics`)).body.text());
}

/** The next time the server's Redis store degrades (true) or recovers (false). */
function storeHealth(app: FastifyInstance, degraded: boolean): Promise<StoreHealthEvent> {
  return nextEvent(app.bulwark.rateLimiter!.redis!.onHealthChange, (e) => e.degraded === degraded);
}

describe('rate limiting (memory store)', () => {
  it('lets a client make `burst` requests, then answers 429 with Retry-After and RateLimit fields', async () => {
    const { app, base } = await start({ ratePerSecond: 0.5, burst: 3 });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await get(base);
        assert.equal(res.statusCode, 200);
        assert.equal(res.headers['ratelimit-policy'], '"http";q=3;w=6'); // 3 tokens, refilled in 6 s
        assert.equal(res.headers['ratelimit'], `"http";r=${2 - i};t=${Math.ceil((3 - (2 - i)) / 0.5)}`);
      }
      const res = await request(`${base}/api`);
      assert.equal(res.statusCode, 429);
      assert.equal(res.headers['retry-after'], '2'); // one token at 0.5/s
      assert.equal(res.headers['ratelimit'], '"http";r=0;t=6'); // 3 tokens at 0.5/s
      assert.equal(res.headers['ratelimit-limit'], undefined, "not the expired drafts' fields");
      assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
      const body = (await res.body.json()) as { statusCode: number; code: string };
      assert.equal(body.statusCode, 429);
      assert.equal(body.code, 'BULWARK_ERR_RATE_LIMITED');
      // exempt: the kit's routes and a route configured out
      for (let i = 0; i < 5; i++) {
        assert.equal((await get(base, '/livez')).statusCode, 200);
        assert.equal((await get(base, '/free')).statusCode, 200);
      }
      const m = await metrics(base);
      assert.equal(sampleValue(m, 'bulwark_ratelimit_rejections_total', { name: 'http' }), 1);
      assert.equal(
        sampleValue(m, 'http_server_request_duration_seconds_count', { route: '/api', status_code: '429' }),
        1,
      );
      const h = await health(base);
      assert.equal(h.rateLimit.store, 'memory');
      assert.equal(h.rateLimit.mode, 'memory');
      assert.equal(h.status, 'ok');
    } finally {
      await app.close();
    }
  });

  it('keys by a header when asked (hashed), falling back to the IP', async () => {
    const { app, base } = await start({ ratePerSecond: 0.1, burst: 1, keyHeader: 'x-api-key' });
    try {
      assert.equal((await get(base, '/api', { 'x-api-key': 'alice' })).statusCode, 200);
      assert.equal((await get(base, '/api', { 'x-api-key': 'alice' })).statusCode, 429);
      assert.equal((await get(base, '/api', { 'x-api-key': 'bob' })).statusCode, 200);
      assert.equal((await get(base)).statusCode, 200, 'no key: the IP bucket');
      assert.equal((await get(base)).statusCode, 429);
    } finally {
      await app.close();
    }
  });
});

describe('RateLimit fields', () => {
  it('quote the limiter name as a Structured Fields string, and refuse a name that cannot be sent', () => {
    const limiter = new HttpRateLimiter({ name: 'api "v2" \\ eu', ratePerSecond: 4, burst: 10 });
    assert.equal(limiter.policyField, '"api \\"v2\\" \\\\ eu";q=10;w=3');
    assert.equal(limiter.field(7), '"api \\"v2\\" \\\\ eu";r=7;t=1');
    assert.throws(
      () => new HttpRateLimiter({ name: 'é' }),
      (e: unknown) =>
        e instanceof InvalidOptionError &&
        /rateLimit\.name/.test(e.message) &&
        /printable ASCII/.test(e.message),
    );
  });
});

describe('rate limiting (Redis store, real Redis)', () => {
  let admin: Redis;
  before(async () => {
    admin = await redisForTests(); // fails within seconds, saying so, when Redis is not there
  });
  after(() =>
    cleanUp(
      async () => {
        if (admin === undefined) return;
        const keys = await admin.keys(`${prefix}*`);
        if (keys.length > 0) await admin.del(...keys);
      },
      () => closeRedisForTests(admin),
    ),
  );

  it('two server instances share one limit per client', async () => {
    const options = { ratePerSecond: 0.01, burst: 5, redisUrl: REDIS_URL, keyPrefix: `${prefix}fleet:` };
    const a = await start(options);
    const b = await start(options);
    try {
      const statuses = [];
      for (let i = 0; i < 8; i++) statuses.push((await get(i % 2 === 0 ? a.base : b.base)).statusCode);
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
      const keys = await admin.keys(`${prefix}fleet:*`);
      assert.deepEqual(keys, [`${prefix}fleet:ip:127.0.0.1`]);
      assert.ok((await admin.pttl(keys[0]!)) > 0, 'the key expires');
      assert.equal((await health(a.base)).rateLimit.mode, 'redis');
      const ma = await metrics(a.base);
      const mb = await metrics(b.base);
      assert.equal(
        sampleValue(ma, 'bulwark_ratelimit_rejections_total') +
          sampleValue(mb, 'bulwark_ratelimit_rejections_total'),
        3,
      );
      assert.equal(sampleValue(ma, 'bulwark_ratelimit_store_degraded', { name: 'http' }), 0);
    } finally {
      await a.app.close();
      await b.app.close();
    }
  });

  it('Redis unreachable at a closed port: onStoreError "local" falls back to a local bucket and says so', async () => {
    const { app, base, logs } = await start({
      ratePerSecond: 0.01,
      burst: 2,
      redisUrl: 'redis://127.0.0.1:1',
      storeTimeoutMs: 100,
    });
    try {
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await get(base)).statusCode);
      assert.deepEqual(statuses, [200, 200, 429], 'the local bucket enforces the limit');
      const h = await health(base);
      assert.equal(h.status, 'degraded');
      assert.equal(h.rateLimit.degraded, true);
      assert.equal(h.rateLimit.mode, 'local');
      assert.equal((await request(`${base}/readyz`)).statusCode, 200, 'readiness does not depend on Redis');
      const m = await metrics(base);
      assert.equal(sampleValue(m, 'bulwark_ratelimit_store_degraded', { name: 'http' }), 1);
      assert.equal(sampleValue(m, 'bulwark_ratelimit_store_errors_total', { name: 'http' }), 3);
      assert.ok(logs.lines.some((l) => l.level === 40 && String(l.msg).includes('rate-limit store')));
    } finally {
      await app.close();
    }
  });

  it('onStoreError "allow" lets everything through and "deny" answers 429 while Redis is down', async () => {
    const allow = await start({
      ratePerSecond: 0.01,
      burst: 1,
      redisUrl: 'redis://127.0.0.1:1',
      onStoreError: 'allow',
    });
    const deny = await start({
      ratePerSecond: 0.01,
      burst: 1,
      redisUrl: 'redis://127.0.0.1:1',
      onStoreError: 'deny',
    });
    try {
      for (let i = 0; i < 4; i++) assert.equal((await get(allow.base)).statusCode, 200);
      assert.equal((await health(allow.base)).rateLimit.mode, 'allow');
      const res = await request(`${deny.base}/api`);
      assert.equal(res.statusCode, 429);
      assert.ok(Number(res.headers['retry-after']) >= 1);
      await res.body.dump();
      assert.equal((await health(deny.base)).rateLimit.mode, 'deny');
    } finally {
      await allow.app.close();
      await deny.app.close();
    }
  });

  it('a Redis connection that drops (proxy goes down) degrades to local, logs it, and recovers when Redis is back', async () => {
    const proxy = await startFaultProxy({ target: REDIS_URL });
    const { app, base, logs } = await start({
      ratePerSecond: 0.01,
      burst: 50,
      redisUrl: `redis://${proxy.address}`,
      keyPrefix: `${prefix}drop:`,
    });
    try {
      assert.equal((await get(base)).statusCode, 200);
      assert.equal((await health(base)).rateLimit.mode, 'redis');
      assert.equal((await admin.keys(`${prefix}drop:*`)).length, 1);

      const degraded = storeHealth(app, true);
      await proxy.setFault({ type: 'down' });
      await degraded;
      for (let i = 0; i < 5; i++)
        assert.equal((await get(base)).statusCode, 200, 'still serving while Redis is away');
      const h = await health(base);
      assert.equal(h.rateLimit.mode, 'local');
      assert.equal(sampleValue(await metrics(base), 'bulwark_ratelimit_store_degraded', { name: 'http' }), 1);
      assert.ok(logs.find('rate-limit store unavailable; applying onStoreError "local"').length >= 1);

      const recovered = storeHealth(app, false);
      await proxy.reset();
      await recovered; // noticed without a request (finding 10)
      assert.equal((await health(base)).rateLimit.degraded, false);
      assert.equal(sampleValue(await metrics(base), 'bulwark_ratelimit_store_degraded', { name: 'http' }), 0);
      assert.equal(logs.find('rate-limit store available again').length, 1);
    } finally {
      await app.close();
      await proxy.close();
    }
  });

  it('a killed Redis client connection (CLIENT KILL) degrades briefly and reconnects', async () => {
    const { app, base } = await start({
      ratePerSecond: 0.01,
      burst: 50,
      redisUrl: REDIS_URL,
      keyPrefix: `${prefix}kill:`,
    });
    try {
      assert.equal((await get(base)).statusCode, 200);
      const store = app.bulwark.rateLimiter!.redis!;
      const id = await store.client.client('ID');
      const closed = new Promise((resolve) => store.client.once('close', resolve));
      await admin.client('KILL', 'ID', String(id));
      await closed;
      const reconnected = new Promise((resolve) => store.client.once('ready', resolve));
      assert.equal((await get(base)).statusCode, 200, 'served while reconnecting');
      await reconnected;
      if (store.degraded) await storeHealth(app, false);
      assert.notEqual(await store.client.client('ID'), id, 'a new connection');
    } finally {
      await app.close();
    }
  });
});
