// Leak tests across every policy and a composed pipeline: once calls settle or abort, no timer is
// pending on the clock and no listener is left on the caller's signal.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { FakeClock } from './clock.js';
import { bulkhead } from './bulkhead.js';
import { circuitBreaker } from './circuit-breaker.js';
import { fallback } from './fallback.js';
import { pipeline, type Policy } from './policy.js';
import { rateLimiter } from './rate-limiter.js';
import { retry } from './retry.js';
import { timeout } from './timeout.js';
import { hedge } from './hedge.js';
import { adaptiveThrottle } from './adaptive-throttle.js';
import { chaos } from './chaos.js';
import { retryBudget } from './retry-budget.js';

/** An operation that honours its signal: it settles only when aborted. */
const untilAborted = (signal: AbortSignal) =>
  new Promise<never>((_, reject) =>
    signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
  );

function policies(clock: FakeClock): Record<string, Policy> {
  return {
    timeout: timeout({ timeoutMs: 100, clock }),
    cooperativeTimeout: timeout({ timeoutMs: 100, clock, strategy: 'cooperative' }),
    retry: retry({ maxAttempts: 3, initialDelayMs: 10, clock }),
    breaker: circuitBreaker({ clock }),
    bulkhead: bulkhead({ maxConcurrent: 1, maxQueue: 5, queueTimeoutMs: 50, clock }),
    rateLimiter: rateLimiter({ ratePerSecond: 1000, clock }),
    fallback: fallback({ fallback: () => 0, clock }),
    hedge: hedge({
      idempotent: true,
      delayMs: 0,
      budget: retryBudget({ ratio: 10, minRetriesPerSecond: 100, clock }),
      clock,
    }),
    adaptiveThrottle: adaptiveThrottle({ clock, minimumRequests: 0 }),
    chaosLatency: chaos.latency({ rate: 1, latencyMs: 5, clock }),
    chaosFault: chaos.fault({ rate: 0.5, clock, random: () => 0.7 }),
    waitingRateLimiter: rateLimiter({ ratePerSecond: 1, burst: 1, maxWaitMs: 5_000, clock }),
    pipeline: pipeline(
      fallback({ fallback: () => 0, clock }),
      timeout({ timeoutMs: 500, clock }),
      retry({ maxAttempts: 3, initialDelayMs: 10, clock }),
      circuitBreaker({ clock }),
      bulkhead({ maxConcurrent: 2, maxQueue: 5, queueTimeoutMs: 50, clock }),
      timeout({ timeoutMs: 100, clock }),
    ),
    newPolicies: pipeline(
      chaos.fault({ rate: 1, clock, enabled: false }),
      timeout({ timeoutMs: 500, clock }),
      hedge({
        idempotent: true,
        delayMs: 1,
        budget: retryBudget({ ratio: 10, minRetriesPerSecond: 100, clock }),
        clock,
      }),
      adaptiveThrottle({ clock }),
      circuitBreaker({ clock }),
      chaos.latency({ rate: 1, latencyMs: 2, clock }),
    ),
  };
}

describe('no timers or listeners left behind', () => {
  for (const name of Object.keys(policies(new FakeClock()))) {
    it(`${name}: success, failure, and an aborted call that reads the signal`, async () => {
      const clock = new FakeClock();
      const policy = policies(clock)[name]!;
      const controller = new AbortController();
      const signal = controller.signal;

      // calls that settle by themselves, under a signal that is never aborted
      const live = new AbortController().signal;
      const first = policy.execute((ctx) => ctx.signal.aborted && 1, { signal: live });
      await clock.advanceAsync(100); // a policy that waits (injected latency) needs the clock to move
      await first;
      const failing = policy
        .execute((ctx) => (ctx.signal.aborted ? 0 : Promise.reject(new Error('boom'))), { signal: live })
        .catch(() => 'failed');
      await clock.advanceAsync(1_000);
      await failing;
      assert.equal(getEventListeners(live, 'abort').length, 0, 'no listener left on a live caller signal');

      const pending = policy.execute((ctx) => untilAborted(ctx.signal), { signal }).catch((e: unknown) => e);
      await clock.advanceAsync(1);
      controller.abort(new Error('caller gave up'));
      await clock.advanceAsync(1_000);
      await pending;

      // under a deadline of the call's own: settled in time, and past it
      const bounded = policy.execute((ctx) => ctx.signal.aborted && 1, { signal: live, timeoutMs: 2_000 });
      await clock.advanceAsync(1_000);
      await bounded;
      const late = policy
        .execute((ctx) => untilAborted(ctx.signal), { signal: live, timeoutMs: 50 })
        .catch((e: unknown) => e);
      await clock.advanceAsync(1_000);
      await late;

      await clock.advanceAsync(10_000);
      assert.equal(clock.pendingTimers, 0, 'no timer pending on the clock');
      assert.equal(getEventListeners(signal, 'abort').length, 0, 'no listener left on the caller signal');
      assert.equal(getEventListeners(live, 'abort').length, 0, 'no listener left on a live caller signal');
    });
  }
});
