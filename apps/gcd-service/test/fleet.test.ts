/**
 * VALIDATOR_FLEET_BREAKER (issue 14, item 7): two gcd-service instances on one Redis (REDIS_URL) and one
 * dead validator. The first instance's breaker trips on its own failures; the second learns it through
 * Redis and opens its breaker without sending a single call to the validator. Every wait is on an event.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CircuitStateChangeEvent } from '@bulwark/core';
import { ask, freePort, REDIS_URL, requireRedis, start, type Running } from './helpers.js';

let a: Running;
let b: Running;

before(async () => {
  await requireRedis(REDIS_URL); // a clear failure within seconds when there is no Redis
  const validator = {
    url: `http://127.0.0.1:${await freePort()}`, // nothing listens: a validator that is down
    attemptTimeoutMs: 1000,
    retry: { maxAttempts: 1 },
    timeoutMs: 2000,
    circuitBreaker: { openDurationMs: 60_000, strategy: { type: 'consecutive' as const, threshold: 2 } },
    fleetBreaker: true,
  };
  a = await start({ validator, redisUrl: REDIS_URL });
  b = await start({ validator, redisUrl: REDIS_URL });
  await Promise.all([a.server.fleet!.ready(), b.server.fleet!.ready()]);
});

after(async () => {
  await a?.close();
  await b?.close();
});

test("one instance's validator breaker trips; the other opens its own through Redis, without calling the validator", async () => {
  const bOpened = new Promise<CircuitStateChangeEvent>((resolve) => {
    const sub = b.server.validator!.breaker.onStateChange((e) => {
      if (e.to !== 'open') return;
      sub.dispose();
      resolve(e);
    });
  });
  // Two failed validations in a row on A (the validator refuses connections): A's breaker opens.
  for (let i = 0; i < 2; i++) {
    const res = await ask(`${a.url}/api/gcd?n=12&m=18`);
    assert.equal(res.status, 200, 'answered with local validation');
    assert.equal(res.headers['x-gcd-validation'], 'local-fallback');
  }
  assert.equal(a.server.validator!.breaker.state, 'open');
  const e = await bOpened;
  assert.equal(e.reason, 'manual-open');
  assert.match(e.by ?? '', /^fleet:/);
  assert.equal(b.server.validator!.fallbacks, 0, 'B never called the validator');
  // B answers locally at once: its breaker is open.
  const res = await ask(`${b.url}/api/gcd?n=12&m=18`);
  assert.equal(res.headers['x-gcd-validation'], 'local-fallback');
  const health = await ask(`${b.url}/healthz`);
  assert.equal(health.json().status, 'degraded');
});
