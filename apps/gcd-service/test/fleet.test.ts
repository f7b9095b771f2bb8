/**
 * VALIDATOR_FLEET_BREAKER (issue 14, item 7): two gcd-service instances on one Redis (REDIS_URL) and one
 * dead validator. The first instance's breaker trips on its own failures; the second learns it through
 * Redis and opens its breaker without sending a single call to the validator. Every wait is on an event.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CircuitStateChangeEvent } from '@bulwark/core';
import { Redis } from 'ioredis';
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

/** A log stream that keeps the parsed lines and tells when one matches. */
function captureLogs() {
  const lines: Array<Record<string, unknown> & { msg: string }> = [];
  const waiters: Array<{ test: () => boolean; resolve: () => void }> = [];
  return {
    lines,
    stream: {
      write(line: string) {
        lines.push(JSON.parse(line) as Record<string, unknown> & { msg: string });
        for (const w of [...waiters]) {
          if (w.test()) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve();
          }
        }
      },
    },
    until(test: () => boolean): Promise<void> {
      return test() ? Promise.resolve() : new Promise((resolve) => waiters.push({ test, resolve }));
    },
  };
}

test('garbage on the channel is counted and summed up in the log, never a line (or a stack) per message; the start-up line says what Redis is for', async () => {
  const logs = captureLogs();
  const validator = {
    url: `http://127.0.0.1:${await freePort()}`, // a channel of this test's own
    attemptTimeoutMs: 1000,
    retry: { maxAttempts: 1 },
    timeoutMs: 2000,
    fleetBreaker: true,
  };
  const c = await start(
    { validator, redisUrl: REDIS_URL, logLevel: 'info', rateLimit: undefined },
    { logStream: logs.stream, fleetLogIntervalMs: 100 },
  );
  const publisher = new Redis(REDIS_URL);
  try {
    await c.server.fleet!.ready();
    // F8: with rate limiting off, Redis still carries the fleet breaker: the log says so.
    assert.ok(logs.lines.some((l) => /REDIS_URL is used to share the validator breaker's trips/.test(l.msg)));
    assert.ok(!logs.lines.some((l) => /not used/.test(l.msg)));

    const n = 200;
    const fleet = c.server.fleet!;
    const counted = new Promise<void>((resolve) => {
      fleet.onMalformed((e) => {
        if (e.count === n) resolve();
      });
    });
    const flood = publisher.pipeline();
    for (let i = 0; i < n; i++) flood.publish(fleet.channel, `garbage ${i}`);
    await flood.exec();
    await counted;
    assert.equal(fleet.malformed, n, 'every one counted');
    const about = () => logs.lines.filter((l) => /malformed message/.test(l.msg));
    // the first is logged at once; the others are summed up at the end of each interval
    await logs.until(
      () => about().reduce((sum, l) => sum + (typeof l.count === 'number' ? l.count : 1), 0) === n,
    );
    const lines = about();
    assert.ok(lines.length < 20, `${lines.length} log lines for ${n} messages`);
    assert.match(lines[0]!.msg, /ignored a malformed message/);
    assert.match(lines[1]!.msg, /^fleet breaker: \d+ malformed messages? ignored in the last 0.1 s$/);
    for (const l of lines) assert.doesNotMatch(JSON.stringify(l), /"stack"|\bat \w+ \(/, 'no stack');
    assert.equal(c.server.validator!.breaker.state, 'closed');
  } finally {
    publisher.disconnect();
    await c.close();
  }
});

test('VALIDATOR_FLEET_BREAKER_SECRET: a forged, well-formed but unsigned trip does not open the breaker', async () => {
  const validator = {
    url: `http://127.0.0.1:${await freePort()}`,
    attemptTimeoutMs: 1000,
    retry: { maxAttempts: 1 },
    timeoutMs: 2000,
    fleetBreaker: true,
  };
  const c = await start({
    validator,
    redisUrl: REDIS_URL,
    fleetBreakerSecret: 'the-fleet-secret-0123456789',
  });
  const publisher = new Redis(REDIS_URL);
  try {
    const fleet = c.server.fleet!;
    await fleet.ready();
    const rejected = new Promise<string>((resolve) => fleet.onMalformed((e) => resolve(e.reason)));
    await publisher.publish(
      fleet.channel,
      JSON.stringify({ v: 1, instance: 'evil', reason: 'forged', openDurationMs: 1 }),
    );
    assert.equal(await rejected, 'unauthenticated');
    assert.equal(c.server.validator!.breaker.state, 'closed');
  } finally {
    publisher.disconnect();
    await c.close();
  }
});
