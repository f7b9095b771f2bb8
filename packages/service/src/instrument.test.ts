// instrument(policy) with the real @bulwark/core policies, driven by a FakeClock.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  bulkhead,
  chaos,
  hedge,
  circuitBreaker,
  fallback,
  rateLimiter,
  retry,
  retryBudget,
  timeout,
  TimeoutError,
  type CircuitBreakerPolicy,
} from '@bulwark/core';
import { FakeClock } from '@bulwark/core/testing';
import { Registry } from 'prom-client';
import { instrumentPolicy, PolicyRegistry } from './instrument.js';
import { ServiceMetrics } from './metrics.js';
import { createService } from './service.js';
import { parsePrometheus, sampleValue, type Family } from './test-support.js';

function setup() {
  const metrics = new ServiceMetrics(
    { defaultMetrics: false, registry: new Registry() },
    { service: 's', version: 'v' },
  );
  const registry = new PolicyRegistry();
  metrics.sources = {
    ...metrics.sources,
    circuits: () => registry.circuitValues(),
    bulkheads: () => registry.bulkheadValues(),
  };
  const scrape = async (): Promise<Map<string, Family>> => parsePrometheus(await metrics.registry.metrics());
  return { metrics, registry, scrape };
}

const fail = () => Promise.reject(new Error('down'));
const ok = () => Promise.resolve('ok');

describe('instrument(policy) with the real core policies', () => {
  it('circuit breaker: state gauge (1 for the current state), transitions, calls by outcome, rejections', async () => {
    const { metrics, registry, scrape } = setup();
    const clock = new FakeClock();
    const breaker: CircuitBreakerPolicy = circuitBreaker({
      name: 'db',
      clock,
      strategy: { type: 'consecutive', threshold: 2 },
      openDurationMs: 1000,
      halfOpenPermits: 1,
    });
    instrumentPolicy(metrics, registry, breaker);

    let m = await scrape();
    assert.equal(sampleValue(m, 'bulwark_circuit_state', { name: 'db', state: 'closed' }), 1);
    assert.equal(sampleValue(m, 'bulwark_circuit_state', { name: 'db', state: 'open' }), 0);

    await breaker.execute(ok);
    await assert.rejects(breaker.execute(fail));
    await assert.rejects(breaker.execute(fail)); // opens
    await assert.rejects(breaker.execute(ok), /open/); // rejected
    m = await scrape();
    assert.equal(sampleValue(m, 'bulwark_circuit_state', { name: 'db', state: 'open' }), 1);
    assert.equal(sampleValue(m, 'bulwark_circuit_state', { name: 'db', state: 'closed' }), 0);
    assert.equal(
      sampleValue(m, 'bulwark_circuit_transitions_total', { name: 'db', from: 'closed', to: 'open' }),
      1,
    );
    assert.equal(
      sampleValue(m, 'bulwark_calls_total', { policy: 'circuit_breaker', name: 'db', outcome: 'success' }),
      1,
    );
    assert.equal(
      sampleValue(m, 'bulwark_calls_total', { policy: 'circuit_breaker', name: 'db', outcome: 'failure' }),
      2,
    );
    assert.equal(
      sampleValue(m, 'bulwark_calls_total', { policy: 'circuit_breaker', name: 'db', outcome: 'rejected' }),
      1,
    );
    assert.equal(
      sampleValue(m, 'bulwark_rejections_total', { policy: 'circuit_breaker', name: 'db', reason: 'open' }),
      1,
    );

    clock.advance(1000); // open → half-open is lazy: the scrape reads `state`, which moves it
    m = await scrape();
    assert.equal(sampleValue(m, 'bulwark_circuit_state', { name: 'db', state: 'half_open' }), 1);
    await breaker.execute(ok); // the probe passes: closed
    m = await scrape();
    assert.equal(sampleValue(m, 'bulwark_circuit_state', { name: 'db', state: 'closed' }), 1);
    assert.equal(
      sampleValue(m, 'bulwark_circuit_transitions_total', { name: 'db', from: 'half_open', to: 'closed' }),
      1,
    );
  });

  it('retry: retries, successes and give-ups', async () => {
    const { metrics, registry, scrape } = setup();
    const clock = new FakeClock();
    const policy = retry({ name: 'upstream', maxAttempts: 3, initialDelayMs: 10, jitter: 'none', clock });
    instrumentPolicy(metrics, registry, policy);
    let calls = 0;
    const flaky = policy.execute(() => (++calls < 3 ? Promise.reject(new Error('x')) : 'ok'));
    await clock.advanceAsync(1000);
    assert.equal(await flaky, 'ok');
    const doomed = assert.rejects(policy.execute(fail), /down/);
    await clock.advanceAsync(1000);
    await doomed;
    const m = await scrape();
    assert.equal(sampleValue(m, 'bulwark_retries_total', { name: 'upstream' }), 4);
    assert.equal(
      sampleValue(m, 'bulwark_calls_total', { policy: 'retry', name: 'upstream', outcome: 'success' }),
      1,
    );
    assert.equal(
      sampleValue(m, 'bulwark_calls_total', { policy: 'retry', name: 'upstream', outcome: 'give_up' }),
      1,
    );
  });

  it('bulkhead: active and queued gauges read at scrape time, rejections by reason', async () => {
    const { metrics, registry, scrape } = setup();
    const clock = new FakeClock();
    const policy = bulkhead({ name: 'pool', maxConcurrent: 1, maxQueue: 1, clock });
    const sub = instrumentPolicy(metrics, registry, policy);
    let release!: () => void;
    const running = policy.execute(() => new Promise<void>((r) => (release = r)));
    const queued = policy.execute(ok);
    await assert.rejects(policy.execute(ok), /Bulkhead full/);
    let m = await scrape();
    assert.equal(sampleValue(m, 'bulwark_bulkhead_active', { name: 'pool' }), 1);
    assert.equal(sampleValue(m, 'bulwark_bulkhead_queued', { name: 'pool' }), 1);
    assert.equal(
      sampleValue(m, 'bulwark_rejections_total', { policy: 'bulkhead', name: 'pool', reason: 'queue_full' }),
      1,
    );
    release();
    await running;
    await queued;
    m = await scrape();
    assert.equal(sampleValue(m, 'bulwark_bulkhead_active', { name: 'pool' }), 0);
    assert.equal(sampleValue(m, 'bulwark_bulkhead_queued', { name: 'pool' }), 0);
    sub.dispose();
    m = await scrape();
    assert.ok(
      !m.get('bulwark_bulkhead_active')!.samples.some((s) => s.labels.name === 'pool'),
      'disposed: gauge dropped',
    );
  });

  it('timeout, rate limiter and fallback: outcomes under the same names', async () => {
    const { metrics, registry, scrape } = setup();
    const clock = new FakeClock();
    const t = timeout({ name: 'deadline', timeoutMs: 50, clock });
    const limiter = rateLimiter({ name: 'per-client', ratePerSecond: 1, burst: 1, clock });
    const fb = fallback({ name: 'cache', fallback: () => 'stale' });
    for (const p of [t, limiter, fb]) instrumentPolicy(metrics, registry, p);
    const slow = t.execute(() => new Promise(() => {}));
    clock.advance(50);
    await assert.rejects(slow, TimeoutError);
    await limiter.execute(ok);
    await assert.rejects(limiter.execute(ok));
    assert.equal(await fb.execute(fail), 'stale');
    const m = await scrape();
    assert.equal(
      sampleValue(m, 'bulwark_calls_total', { policy: 'timeout', name: 'deadline', outcome: 'timeout' }),
      1,
    );
    assert.equal(
      sampleValue(m, 'bulwark_rejections_total', {
        policy: 'rate_limiter',
        name: 'per-client',
        reason: 'rate_limited',
      }),
      1,
    );
    assert.equal(
      sampleValue(m, 'bulwark_calls_total', { policy: 'fallback', name: 'cache', outcome: 'fallback' }),
      1,
    );
  });

  it('app.bulwark.instrument() shows breaker states in /metrics and /healthz (degraded while not closed)', async () => {
    const app = createService({ logLevel: 'silent', shedding: false, health: { details: true } });
    const breaker = circuitBreaker({ name: 'validator', strategy: { type: 'consecutive', threshold: 1 } });
    app.bulwark.instrument(breaker);
    try {
      let health = (await (await app.inject('/healthz')).json()) as {
        status: string;
        circuits: Record<string, string>;
      };
      assert.deepEqual(health.circuits, { validator: 'closed' });
      assert.equal(health.status, 'ok');
      breaker.isolate();
      health = (await (await app.inject('/healthz')).json()) as typeof health;
      assert.deepEqual(health.circuits, { validator: 'isolated' });
      assert.equal(health.status, 'degraded');
      const m = parsePrometheus((await app.inject('/metrics')).body);
      assert.equal(sampleValue(m, 'bulwark_circuit_state', { name: 'validator', state: 'isolated' }), 1);
    } finally {
      await app.close();
    }
  });
});

describe('instrument(policy): hedge, chaos and the waiting rate limiter', () => {
  it('hedge: hedged attempts started, and the calls a hedge won', async () => {
    const { metrics, registry, scrape } = setup();
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 1, minRetriesPerSecond: 10, clock }); // room for the hedge
    const hedged = hedge({ name: 'search', clock, idempotent: true, delayMs: 50, maxHedges: 1, budget });
    instrumentPolicy(metrics, registry, hedged);
    // the first attempt hangs until told; the hedge (the second run) answers at once
    let release: (() => void) | undefined;
    let runs = 0;
    const call = hedged.execute(() =>
      ++runs === 1
        ? new Promise<string>((resolve) => (release = () => resolve('first')))
        : Promise.resolve('hedge'),
    );
    await clock.advanceAsync(50);
    assert.equal(await call, 'hedge');
    release?.();
    const m = await scrape();
    assert.equal(sampleValue(m, 'bulwark_hedges_total', { name: 'search' }), 1);
    assert.equal(sampleValue(m, 'bulwark_hedge_wins_total', { name: 'search' }), 1);
  });

  it('chaos: injections by kind', async () => {
    const { metrics, registry, scrape } = setup();
    const faults = chaos.fault({ name: 'drill', rate: 1, fault: new Error('injected') });
    instrumentPolicy(metrics, registry, faults);
    await assert.rejects(faults.execute(ok), /injected/);
    await assert.rejects(faults.execute(ok), /injected/);
    const m = await scrape();
    assert.equal(sampleValue(m, 'bulwark_chaos_injections_total', { name: 'drill', kind: 'fault' }), 2);
  });

  it('rate limiter with maxWaitMs: calls that waited, and for how long', async () => {
    const { metrics, registry, scrape } = setup();
    const clock = new FakeClock();
    const limiter = rateLimiter({ name: 'api', clock, ratePerSecond: 10, burst: 1, maxWaitMs: 1_000 });
    instrumentPolicy(metrics, registry, limiter);
    await limiter.execute(ok); // takes the only token
    const waiting = limiter.execute(ok); // waits 100 ms for the next
    await clock.advanceAsync(100);
    assert.equal(await waiting, 'ok');
    const m = await scrape();
    assert.equal(sampleValue(m, 'bulwark_ratelimit_waits_total', { name: 'api' }), 1);
    assert.equal(sampleValue(m, 'bulwark_ratelimit_wait_seconds_total', { name: 'api' }), 0.1);
  });
});
