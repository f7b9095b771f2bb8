// rateLimiter({ maxWaitMs }): calls wait for a token, in arrival order per key, within the bound, the
// call's deadline and its abort; with synchronous and asynchronous stores. A property test checks the
// token-bucket promise and the bound over random arrivals.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import fc from 'fast-check';
import { assertIdle } from './test-support.js';
import { FakeClock, flushMicrotasks } from './clock.js';
import { DeadlineExceededError, InvalidOptionError, RateLimitedError } from './errors.js';
import { rateLimiter, type RateLimitWaitEvent } from './rate-limiter.js';
import { memoryRateLimitStore } from './rate-limit/memory-store.js';
import type { RateLimitRule, RateLimitStore, TakeResult } from './rate-limit/store.js';

/** Settled state of a promise without awaiting it. */
function track<T>(p: Promise<T>) {
  const s: { done: boolean; value?: T; error?: unknown } = { done: false };
  p.then(
    (value) => Object.assign(s, { done: true, value }),
    (error: unknown) => Object.assign(s, { done: true, error }),
  );
  return s;
}

/** A store answering through promises, as Redis does (backed by a memory store). */
function asyncStore(): RateLimitStore {
  const inner = memoryRateLimitStore();
  return {
    take: (key, cost, nowMs, rule) =>
      new Promise<TakeResult>((resolve) => setImmediate(() => resolve(inner.take(key, cost, nowMs, rule)))),
  };
}

describe('rateLimiter with maxWaitMs', () => {
  it('validates maxWaitMs', () => {
    for (const maxWaitMs of [-1, NaN, 2 ** 31, Infinity, '5']) {
      assert.throws(
        () => rateLimiter({ ratePerSecond: 1, maxWaitMs: maxWaitMs as never }),
        (e) => e instanceof InvalidOptionError && e.option === 'rateLimiter.maxWaitMs',
      );
    }
    assert.equal(rateLimiter({ ratePerSecond: 1 }).maxWaitMs, 0);
  });

  it('a call with no token waits for one, then runs; waiters run in arrival order', async () => {
    const clock = new FakeClock();
    const limiter = rateLimiter({ ratePerSecond: 10, burst: 1, maxWaitMs: 1_000, clock });
    const waits: RateLimitWaitEvent[] = [];
    limiter.onWait((e) => waits.push(e));
    const ranAt: [number, number][] = [];
    const call = (i: number) => track(limiter.execute(() => ranAt.push([i, clock.now()]) && i));
    const calls = [call(1), call(2), call(3)];
    assert.deepEqual(ranAt, [[1, 0]]);
    assert.equal(limiter.waiting, 2);
    await clock.advanceAsync(150);
    const late = call(4); // arrives while 3 waits: behind it, even though a token is due at 200
    await clock.advanceAsync(150);
    assert.deepEqual(ranAt, [
      [1, 0],
      [2, 100],
      [3, 200],
      [4, 300],
    ]);
    assert.deepEqual(
      [...calls, late].map((c) => c.value),
      [1, 2, 3, 4],
    );
    assert.deepEqual(
      waits.map((w) => w.waitedMs),
      [100, 200, 150],
    );
    assert.equal(limiter.waiting, 0);
    assertIdle(clock);
  });

  it('a call whose wait would exceed maxWaitMs is rejected at once, with the estimated wait', async () => {
    const clock = new FakeClock();
    const limiter = rateLimiter({ ratePerSecond: 10, burst: 1, maxWaitMs: 250, clock });
    const rejects: number[] = [];
    limiter.onReject((e) => rejects.push(e.retryAfterMs));
    const ok = [1, 2, 3].map(() => track(limiter.execute(() => 'ran')));
    const fourth = track(limiter.execute(() => 'ran'));
    await flushMicrotasks();
    assert.ok(fourth.error instanceof RateLimitedError);
    assert.equal((fourth.error as RateLimitedError).retryAfterMs, 300);
    assert.deepEqual(rejects, [300]);
    await clock.advanceAsync(200);
    assert.deepEqual(
      ok.map((c) => c.value),
      ['ran', 'ran', 'ran'],
    );
  });

  it("never waits past the call's deadline: rejected at once if it cannot make it", async () => {
    const clock = new FakeClock();
    const limiter = rateLimiter({ ratePerSecond: 10, burst: 1, maxWaitMs: 1_000, clock });
    await limiter.execute(() => 0);
    const tooShort = track(limiter.execute(() => 'ran', { timeoutMs: 50 }));
    await flushMicrotasks();
    assert.ok(tooShort.error instanceof RateLimitedError, String(tooShort.error));
    const inTime = track(limiter.execute(() => 'ran', { timeoutMs: 150 }));
    await clock.advanceAsync(100);
    assert.equal(inTime.value, 'ran');
    assertIdle(clock);
  });

  it('a waiter whose call is aborted (or whose deadline passes) leaves at once; the next moves up', async () => {
    const clock = new FakeClock();
    const limiter = rateLimiter({ ratePerSecond: 10, burst: 1, maxWaitMs: 1_000, clock });
    await limiter.execute(() => 0);
    const controller = new AbortController();
    const ranAt: number[] = [];
    const aborted = track(limiter.execute(() => ranAt.push(clock.now()), { signal: controller.signal }));
    const next = track(limiter.execute(() => ranAt.push(clock.now())));
    await clock.advanceAsync(50);
    controller.abort(new Error('left'));
    await flushMicrotasks();
    assert.match(String(aborted.error), /left/);
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    await clock.advanceAsync(50);
    assert.deepEqual(ranAt, [100], 'the next waiter took the token at 100');
    assert.ok(next.done);
    assertIdle(clock);
  });

  it('a waiter gives up at maxWaitMs when the store keeps refusing (another process took the tokens)', async () => {
    const clock = new FakeClock();
    let refusing = true;
    const inner = memoryRateLimitStore();
    const store: RateLimitStore = {
      take: (key: string, cost: number, nowMs: number, rule: RateLimitRule) =>
        refusing && nowMs > 0
          ? { allowed: false, remaining: 0, retryAfterMs: 100 }
          : inner.take(key, cost, nowMs, rule),
    };
    const limiter = rateLimiter({ ratePerSecond: 10, burst: 1, maxWaitMs: 300, clock, store });
    await limiter.execute(() => 0);
    clock.advance(1);
    const waiting = track(limiter.execute(() => 'ran')); // waits from 1 ms, until 301 ms at most
    await clock.advanceAsync(299);
    assert.equal(waiting.done, false);
    await clock.advanceAsync(1);
    assert.ok(waiting.error instanceof RateLimitedError);
    assert.equal(limiter.waiting, 0);
    // the call's deadline ends the wait first when it is nearer: DeadlineExceededError, as for any abort
    const bounded = track(limiter.execute(() => 'ran', { timeoutMs: 150 }));
    await clock.advanceAsync(150);
    assert.ok(bounded.error instanceof DeadlineExceededError, String(bounded.error));
    assert.equal(limiter.waiting, 0);
    refusing = false;
    assertIdle(clock);
  });

  it('keys wait independently', async () => {
    const clock = new FakeClock();
    const limiter = rateLimiter({ ratePerSecond: 1, burst: 1, maxWaitMs: 5_000, clock });
    const ranAt: string[] = [];
    const calls = ['a', 'a', 'b', 'b'].map((key) =>
      track(limiter.execute(() => ranAt.push(`${key}@${clock.now()}`), { key })),
    );
    await clock.advanceAsync(1_000);
    assert.deepEqual(ranAt, ['a@0', 'b@0', 'a@1000', 'b@1000']);
    assert.ok(calls.every((c) => c.done));
  });

  it('works with an asynchronous store (Redis-like): waiters are served in order', async () => {
    const clock = new FakeClock();
    const limiter = rateLimiter({
      ratePerSecond: 10,
      burst: 2,
      maxWaitMs: 1_000,
      clock,
      store: asyncStore(),
    });
    const ranAt: number[] = [];
    const calls = Array.from({ length: 5 }, () => track(limiter.execute(() => ranAt.push(clock.now()))));
    // step by step: each answer of the store (a macrotask) comes before the clock moves on
    for (let step = 0; step <= 4; step++) {
      await clock.advanceAsync(step === 0 ? 0 : 100);
      for (let i = 0; i < 3; i++) await flushMicrotasks();
    }
    assert.deepEqual(ranAt, [0, 0, 100, 200, 300]);
    assert.ok(calls.every((c) => c.done && c.error === undefined));
    assertIdle(clock);
  });

  it('property: never more than burst + rate × t calls in any interval, each within its bound, in order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 40 }),
        fc.constantFrom(1, 5, 20),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 800 }),
        async (gaps, ratePerSecond, burst, maxWaitMs) => {
          const clock = new FakeClock();
          const limiter = rateLimiter({ ratePerSecond, burst, maxWaitMs, clock });
          const admitted: { i: number; arrived: number; ran: number }[] = [];
          const calls: Promise<unknown>[] = [];
          for (const [i, gap] of gaps.entries()) {
            await clock.advanceAsync(gap);
            const arrived = clock.now();
            calls.push(
              limiter
                .execute(() => admitted.push({ i, arrived, ran: clock.now() }))
                .catch((e: unknown) => {
                  if (!(e instanceof RateLimitedError)) throw e;
                }),
            );
          }
          await clock.advanceAsync(maxWaitMs + 1);
          await Promise.all(calls);
          for (const a of admitted) assert.ok(a.ran - a.arrived <= maxWaitMs, 'within the bound');
          for (let j = 1; j < admitted.length; j++) {
            assert.ok(admitted[j]!.i > admitted[j - 1]!.i, 'in arrival order');
          }
          const times = admitted.map((a) => a.ran);
          for (let x = 0; x < times.length; x++) {
            for (let y = x; y < times.length; y++) {
              const n = y - x + 1;
              const allowed = burst + ((times[y]! - times[x]!) * ratePerSecond) / 1000 + 1e-6;
              assert.ok(n <= allowed, `${n} calls in ${times[y]! - times[x]!} ms`);
            }
          }
          assert.equal(limiter.waiting, 0);
          assertIdle(clock);
        },
      ),
      { numRuns: 150 },
    );
  });
});
