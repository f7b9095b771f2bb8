import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { FakeClock, flushMicrotasks, type Clock } from './clock.js';
import type { CallContext } from './context.js';
import { classify } from './classify.js';
import { BulkheadRejectedError, CircuitOpenError, InvalidOptionError, RateLimitedError } from './errors.js';
import { setListenerErrorHandler } from './events.js';
import { pipeline, type Outcome } from './policy.js';
import { retry, type GiveUpEvent, type RetryEvent, type RetryOptions } from './retry.js';
import { retryBudget } from './retry-budget.js';
import { timeout } from './timeout.js';
import { exponentialBackoff } from './backoff/exponential.js';
import { constantBackoff } from './backoff/constant.js';
import type { Backoff } from './backoff/backoff.js';

/** An operation that fails (synchronously) `failures` times, then returns `value`; it records each call. */
function flaky<T>(
  clock: Clock,
  failures: number,
  value: T,
  makeError = (n: number) => new Error(`fail ${n}`),
) {
  const calls: { attempt: number; at: number }[] = [];
  const fn = (ctx: CallContext): T => {
    calls.push({ attempt: ctx.attempt, at: clock.now() });
    if (calls.length <= failures) throw makeError(calls.length);
    return value;
  };
  return { fn, calls };
}

/** Tracks a promise's state without awaiting it (and without an unhandled rejection). */
function track<T>(promise: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error: unknown) => Object.assign(state, { settled: true, error }),
  );
  return state;
}

/** A retry on a fake clock with fixed delays 100, 200, 400, … (no jitter). */
function fixed(clock: FakeClock, options: RetryOptions = {}) {
  return retry({ clock, jitter: 'none', initialDelayMs: 100, ...options });
}

function events(policy: ReturnType<typeof retry>) {
  const retries: RetryEvent[] = [];
  const giveUps: GiveUpEvent[] = [];
  const successes: number[] = [];
  policy.onRetry((e) => retries.push(e));
  policy.onGiveUp((e) => giveUps.push(e));
  policy.onSuccess((e) => successes.push(e.attempts));
  return { retries, giveUps, successes };
}

describe('retry', () => {
  describe('options', () => {
    it('defaults: 3 attempts, decorrelated exponential backoff, 60 s Retry-After cap', () => {
      const r = retry();
      assert.equal(r.maxAttempts, 3);
      assert.equal(r.maxRetryAfterMs, 60_000);
      assert.equal(r.name, 'retry');
      assert.equal(r.budget, undefined);
      assert.equal((r.backoff as ReturnType<typeof exponentialBackoff>).jitter, 'decorrelated');
    });

    it('validates at construction, naming the option', () => {
      const bad: [unknown, string][] = [
        [{ maxAttempts: 0 }, 'retry.maxAttempts'],
        [{ maxAttempts: 2.5 }, 'retry.maxAttempts'],
        [{ maxAttempts: NaN }, 'retry.maxAttempts'],
        [{ initialDelayMs: -1 }, 'retry.initialDelayMs'],
        [{ maxDelayMs: Infinity }, 'retry.maxDelayMs'],
        [{ multiplier: 1 }, 'retry.multiplier'],
        [{ jitter: 'equal' }, 'retry.jitter'],
        [{ maxRetryAfterMs: -1 }, 'retry.maxRetryAfterMs'],
        [{ shouldRetry: true }, 'retry.shouldRetry'],
        [{ readRetryAfterMs: 5 }, 'retry.readRetryAfterMs'],
        [{ budget: {} }, 'retry.budget'],
        [{ backoff: 100 }, 'retry.backoff'],
        [{ backoff: constantBackoff(), maxDelayMs: 100 }, 'retry.maxDelayMs'],
        [{ clock: Date }, 'retry.clock'],
        [{ retries: 3 }, 'retry.retries'],
        [[], 'retry'],
      ];
      for (const [options, option] of bad) {
        assert.throws(
          () => retry(options as RetryOptions),
          (e: unknown) => e instanceof InvalidOptionError && e.option === option,
          `${JSON.stringify(options)} should name ${option}`,
        );
      }
    });
  });

  describe('attempts', () => {
    it('maxAttempts counts calls, the first included; each attempt sees ctx.attempt', async () => {
      const clock = new FakeClock();
      const { fn, calls } = flaky(clock, 10, 'never');
      const call = track(fixed(clock).execute(fn));
      await clock.advanceAsync(10_000);
      assert.equal((call.error as Error).message, 'fail 3');
      assert.deepEqual(
        calls.map((c) => c.attempt),
        [1, 2, 3],
      );
    });

    it('maxAttempts: 1 never retries; Infinity retries until success', async () => {
      const clock = new FakeClock();
      const once = flaky(clock, 1, 'ok');
      await assert.rejects(fixed(clock, { maxAttempts: 1 }).execute(once.fn), /fail 1/);
      assert.equal(once.calls.length, 1);
      assert.equal(clock.pendingTimers, 0);

      const many = flaky(clock, 9, 'ok');
      const call = track(fixed(clock, { maxAttempts: Infinity, maxDelayMs: 100 }).execute(many.fn));
      await clock.advanceAsync(10_000);
      assert.equal(call.value, 'ok');
      assert.equal(many.calls.length, 10);
    });

    it('returns the value of the attempt that succeeds, after waiting each backoff on the clock', async () => {
      const clock = new FakeClock();
      const { fn, calls } = flaky(clock, 2, 42);
      const call = track(fixed(clock).execute(fn));
      await clock.advanceAsync(99);
      assert.equal(calls.length, 1, 'no retry before the first delay is over');
      await clock.advanceAsync(1);
      assert.equal(calls.length, 2);
      await clock.advanceAsync(200);
      assert.equal(call.value, 42);
      assert.deepEqual(
        calls.map((c) => c.at),
        [0, 100, 300],
      );
      assert.equal(clock.pendingTimers, 0);
    });

    it('retries rejections as well as synchronous throws', async () => {
      const clock = new FakeClock();
      let n = 0;
      const call = track(
        fixed(clock).execute(async () => {
          if (++n < 3) throw new Error('async fail');
          return 'ok';
        }),
      );
      await clock.advanceAsync(1000);
      assert.equal(call.value, 'ok');
      assert.equal(n, 3);
    });

    it('the happy path reads no clock, starts no backoff, sets no timer and adds no listener', async () => {
      const fake = new FakeClock();
      let reads = 0;
      let timers = 0;
      const clock: Clock = {
        now: () => (reads++, fake.now()),
        setTimeout: (cb, ms) => (timers++, fake.setTimeout(cb, ms)),
        clearTimeout: (t) => fake.clearTimeout(t),
      };
      let starts = 0;
      const backoff: Backoff = { start: () => (starts++, constantBackoff().start()) };
      const r = retry({ clock, backoff });
      const seen = events(r);
      const ac = new AbortController();
      assert.equal(await r.execute(() => 7, { signal: ac.signal }), 7);
      assert.equal(await r.execute(async () => 8), 8);
      assert.deepEqual({ reads, timers, starts }, { reads: 0, timers: 0, starts: 0 });
      assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
      assert.deepEqual(seen.successes, [1, 1]);
    });
  });

  describe('backoff', () => {
    async function delaysOf(options: RetryOptions, failures = 4): Promise<number[]> {
      const clock = new FakeClock();
      const r = retry({ clock, maxAttempts: failures + 1, ...options });
      const { retries } = events(r);
      const { fn, calls } = flaky(clock, failures, 'ok');
      const call = track(r.execute(fn));
      await clock.advanceAsync(1_000_000);
      assert.equal(call.value, 'ok');
      // the waits really happened on the clock
      const gaps = calls.slice(1).map((c, i) => c.at - calls[i]!.at);
      const delays = retries.map((e) => e.delayMs);
      assert.equal(gaps.length, delays.length);
      gaps.forEach((gap, i) =>
        assert.ok(Math.abs(gap - delays[i]!) < 1e-6, `gap ${gap} ≠ delay ${delays[i]}`),
      );
      return delays;
    }

    it('none: initialDelayMs × multiplier^n', async () => {
      assert.deepEqual(
        await delaysOf({ jitter: 'none', initialDelayMs: 100, multiplier: 3 }),
        [100, 300, 900, 2700],
      );
    });

    it('maxDelayMs caps every delay', async () => {
      assert.deepEqual(
        await delaysOf({ jitter: 'none', initialDelayMs: 100, maxDelayMs: 250 }),
        [100, 200, 250, 250],
      );
      for (const d of await delaysOf({ initialDelayMs: 100, maxDelayMs: 150, random: () => 0.99 }, 8)) {
        assert.ok(d <= 150, `decorrelated delay ${d} > 150`);
      }
    });

    it('full: uniform below the exponential, from the injected random source', async () => {
      assert.deepEqual(
        await delaysOf({ jitter: 'full', initialDelayMs: 100, random: () => 0.5 }),
        [50, 100, 200, 400],
      );
    });

    it('decorrelated (default): the Polly V2 sequence for the injected random source', async () => {
      const expected = exponentialBackoff({ initialDelayMs: 100, random: () => 0.25 }).start();
      const delays = await delaysOf({ initialDelayMs: 100, random: () => 0.25 });
      assert.deepEqual(
        delays,
        delays.map(() => expected.next()),
      );
      assert.notDeepEqual(delays, [100, 200, 400, 800]);
    });

    it('a custom backoff (and a NaN or negative delay from it counts as 0)', async () => {
      assert.deepEqual(await delaysOf({ backoff: constantBackoff({ delayMs: 30 }) }, 2), [30, 30]);
      const values = [NaN, -5];
      let i = 0;
      const odd: Backoff = { start: () => ({ next: () => values[i++]! }) };
      assert.deepEqual(await delaysOf({ backoff: odd }, 2), [0, 0]);
    });
  });

  describe('retryAfterMs hints', () => {
    it('waits at least the error’s retryAfterMs, even beyond maxDelayMs', async () => {
      const clock = new FakeClock();
      const hinted = Object.assign(new Error('429'), { retryAfterMs: 5000 });
      const { fn, calls } = flaky(clock, 1, 'ok', () => hinted);
      const call = track(fixed(clock, { maxDelayMs: 1000 }).execute(fn));
      await clock.advanceAsync(4999);
      assert.equal(calls.length, 1);
      await clock.advanceAsync(1);
      assert.equal(call.value, 'ok');
      assert.deepEqual(
        calls.map((c) => c.at),
        [0, 5000],
      );
    });

    it('honours RateLimitedError and BulkheadRejectedError; a shorter hint leaves the backoff in charge', async () => {
      const clock = new FakeClock();
      const errors = [
        new RateLimitedError(2000, 'k'),
        new BulkheadRejectedError('queue-full', 1, 0, 3000),
        new RateLimitedError(0, 'k'),
      ];
      const { fn, calls } = flaky(clock, 3, 'ok', (n) => errors[n - 1]!);
      const r = fixed(clock, { maxAttempts: 4, initialDelayMs: 1000, multiplier: 1 });
      const call = track(r.execute(fn));
      await clock.advanceAsync(100_000);
      assert.equal(call.value, 'ok');
      assert.deepEqual(
        calls.map((c) => c.at),
        [0, 2000, 5000, 6000],
      );
    });

    it('a hint longer than maxRetryAfterMs gives up at once (reason retry-after-too-long)', async () => {
      const clock = new FakeClock();
      const r = fixed(clock, { maxRetryAfterMs: 10_000 });
      const { giveUps } = events(r);
      const limited = new RateLimitedError(30_000, 'k');
      const { fn, calls } = flaky(clock, 5, 'ok', () => limited);
      await assert.rejects(r.execute(fn), (e) => e === limited);
      assert.equal(calls.length, 1);
      assert.equal(clock.pendingTimers, 0);
      assert.equal(giveUps[0]?.reason, 'retry-after-too-long');
    });

    it('readRetryAfterMs can take the hint from a result', async () => {
      const clock = new FakeClock();
      const responses = [{ status: 503, retryAfterMs: 700 }, { status: 200 }];
      let i = 0;
      const r = fixed(clock, {
        classify: classify.result((v: { status: number }) => v.status === 503, 'failure'),
        readRetryAfterMs: (o: Outcome) =>
          o.ok ? (o.value as { retryAfterMs?: number }).retryAfterMs : undefined,
      });
      const call = track(r.execute(() => responses[i++]!));
      await clock.advanceAsync(699);
      assert.equal(i, 1);
      await clock.advanceAsync(1);
      assert.deepEqual(call.value, { status: 200 });
    });
  });

  describe('what is retried', () => {
    it('by default: not an open breaker, not InvalidOptionError, not errors with retryable: false', async () => {
      const clock = new FakeClock();
      const r = fixed(clock);
      const { giveUps } = events(r);
      const open = new CircuitOpenError(50);
      const invalid = new InvalidOptionError('x', 1, 'y');
      const permanent = Object.assign(new Error('404'), { retryable: false });
      for (const error of [open, invalid, permanent]) {
        let calls = 0;
        await assert.rejects(
          r.execute(() => {
            calls++;
            throw error;
          }),
          (e) => e === error,
        );
        assert.equal(calls, 1);
      }
      assert.deepEqual(
        giveUps.map((e) => [e.reason, e.attempts]),
        [
          ['not-retryable', 1],
          ['not-retryable', 1],
          ['not-retryable', 1],
        ],
      );
      // retryable: true, or a non-object thrown value, is retried
      const transient = flaky(clock, 1, 'ok', () => Object.assign(new Error('503'), { retryable: true }));
      const a = track(r.execute(transient.fn));
      let n = 0;
      const b = track(
        r.execute(() => {
          if (n++ === 0) throw 'a string';
          return 'ok';
        }),
      );
      await clock.advanceAsync(1000);
      assert.equal(a.value, 'ok');
      assert.equal(b.value, 'ok');
    });

    it('a classify function replaces the default and receives the outcome and the attempt context', async () => {
      const clock = new FakeClock();
      const seen: [boolean, number][] = [];
      const r = fixed(clock, {
        maxAttempts: 5,
        classify: (o, ctx) => {
          seen.push([o.ok, ctx.attempt]);
          return !o.ok && (o.error as Error).message !== 'fail 2' ? 'failure' : 'success';
        },
      });
      const { fn } = flaky(clock, 3, 'ok');
      const call = track(r.execute(fn));
      await clock.advanceAsync(10_000);
      assert.equal((call.error as Error).message, 'fail 2');
      assert.deepEqual(seen, [
        [false, 1],
        [false, 2],
      ]);
    });

    it('an open breaker classified `rejected` is waited for (its retryAfterMs) and retried', async () => {
      const clock = new FakeClock();
      const { fn, calls } = flaky(clock, 1, 'ok', () => new CircuitOpenError(2000));
      const r = fixed(clock, { classify: classify.error(CircuitOpenError, 'rejected') });
      const call = track(r.execute(fn));
      await clock.advanceAsync(10_000);
      assert.equal(call.value, 'ok');
      assert.deepEqual(
        calls.map((c) => c.at),
        [0, 2000],
      );
    });

    it('a classifier that throws or returns nonsense rejects the call with a clear error', async () => {
      const clock = new FakeClock();
      const bug = new Error('classifier bug');
      const throwing = fixed(clock, {
        classify: () => {
          throw bug;
        },
      });
      await assert.rejects(
        throwing.execute(() => Promise.reject(new Error('x'))),
        (e) => e === bug,
      );
      const nonsense = fixed(clock, { classify: (() => true) as never });
      await assert.rejects(
        nonsense.execute(() => Promise.reject(new Error('x'))),
        /classifier returned true; expected one of 'failure', 'success', 'rejected', 'ignore'/,
      );
      assert.equal(clock.pendingTimers, 0);
    });

    it('a throwing backoff or hint reader rejects the call with its error and leaves no timer', async () => {
      const clock = new FakeClock();
      const bug = new Error('callback bug');
      const backoff: Backoff = {
        start: () => ({
          next: () => {
            throw bug;
          },
        }),
      };
      await assert.rejects(
        retry({ clock, backoff }).execute(() => Promise.reject(new Error('x'))),
        (e) => e === bug,
      );
      const hints = fixed(clock, {
        readRetryAfterMs: () => {
          throw bug;
        },
      });
      await assert.rejects(
        hints.execute(() => Promise.reject(new Error('x'))),
        (e) => e === bug,
      );
      assert.equal(clock.pendingTimers, 0);
    });

    it('retries on a result; when attempts run out the last value is returned', async () => {
      const clock = new FakeClock();
      const busy = classify.result((v) => v === 'busy', 'failure');
      const values = ['busy', 'busy', 'done'];
      let i = 0;
      const ok = track(fixed(clock, { classify: busy }).execute(() => values[i++]!));
      await clock.advanceAsync(10_000);
      assert.equal(ok.value, 'done');
      assert.equal(i, 3);

      const r = fixed(clock, { classify: busy, maxAttempts: 2 });
      const { giveUps, retries } = events(r);
      const last = track(r.execute(() => 'busy'));
      await clock.advanceAsync(10_000);
      assert.equal(last.value, 'busy');
      assert.deepEqual(
        retries.map((e) => [e.ok, e.ok && e.value, e.attempt]),
        [[true, 'busy', 1]],
      );
      assert.equal(giveUps.length, 1);
      assert.equal(giveUps[0]!.ok && giveUps[0]!.value, 'busy');
      assert.equal(giveUps[0]!.reason, 'max-attempts');
    });
  });

  describe('abort', () => {
    it('an abort during the wait ends it at once with signal.reason, leaving no timer and no listener', async () => {
      const clock = new FakeClock();
      const r = fixed(clock, { initialDelayMs: 60_000, maxDelayMs: 60_000 });
      const { giveUps } = events(r);
      const ac = new AbortController();
      const { fn, calls } = flaky(clock, 5, 'ok');
      const call = track(r.execute(fn, { signal: ac.signal }));
      await flushMicrotasks();
      assert.equal(clock.pendingTimers, 1, 'sleeping');
      assert.equal(getEventListeners(ac.signal, 'abort').length, 1, 'listening while sleeping');
      const reason = new Error('caller gave up');
      ac.abort(reason);
      await flushMicrotasks();
      assert.equal(call.settled, true, 'settled without the clock moving');
      assert.equal(call.error, reason);
      assert.equal(clock.pendingTimers, 0);
      assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
      assert.equal(calls.length, 1);
      assert.equal(giveUps[0]?.reason, 'aborted');
      assert.equal(clock.now(), 0);
    });

    it('after the wait, the listener is gone too', async () => {
      const clock = new FakeClock();
      const ac = new AbortController();
      const { fn } = flaky(clock, 2, 'ok');
      const call = track(fixed(clock).execute(fn, { signal: ac.signal }));
      await clock.advanceAsync(1000);
      assert.equal(call.value, 'ok');
      assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    });

    it('an attempt that fails because the caller aborted is not retried; the call rejects with the reason', async () => {
      const clock = new FakeClock();
      const ac = new AbortController();
      const reason = new Error('stop');
      let calls = 0;
      await assert.rejects(
        fixed(clock).execute(
          () => {
            calls++;
            ac.abort(reason);
            throw new Error('AbortError from the operation');
          },
          { signal: ac.signal },
        ),
        (e) => e === reason,
      );
      assert.equal(calls, 1);
      assert.equal(clock.pendingTimers, 0);
    });

    it('a value the classifier accepts is returned even if the caller aborted meanwhile; one it retries is not', async () => {
      const clock = new FakeClock();
      const r = fixed(clock, { classify: (o) => (!o.ok || o.value === 'busy' ? 'failure' : 'success') });
      const ac = new AbortController();
      const reason = new Error('stop');
      const values = ['busy', 'done'];
      let i = 0;
      const accepted = track(
        r.execute(
          () => {
            if (i === 1) ac.abort(reason);
            return values[i++]!;
          },
          { signal: ac.signal },
        ),
      );
      await clock.advanceAsync(1000);
      assert.equal(accepted.value, 'done');

      const ac2 = new AbortController();
      await assert.rejects(
        r.execute(
          () => {
            ac2.abort(reason);
            return 'busy';
          },
          { signal: ac2.signal },
        ),
        (e) => e === reason,
      );
      assert.equal(clock.pendingTimers, 0);
    });

    it('an enclosing timeout that fires during an attempt stops the retries with its TimeoutError', async () => {
      const clock = new FakeClock();
      const t = timeout({ timeoutMs: 1000, clock, strategy: 'cooperative' });
      const r = fixed(clock, { initialDelayMs: 300 });
      const { giveUps } = events(r);
      let calls = 0;
      const call = track(
        pipeline(t, r).execute(
          (ctx) =>
            new Promise((_, reject) => {
              calls++;
              const timer = clock.setTimeout(() => reject(new Error('slow failure')), 600);
              ctx.signal.addEventListener('abort', () => {
                clock.clearTimeout(timer);
                reject(new Error('AbortError'));
              });
            }),
        ),
      );
      // attempt 1: 0–600 fails; wait 600–900; attempt 2 from 900 is aborted at 1000
      await clock.advanceAsync(2000);
      assert.equal(calls, 2);
      assert.equal((call.error as Error).name, 'TimeoutError');
      assert.equal(giveUps[0]?.reason, 'aborted');
      t.dispose();
      assert.equal(clock.pendingTimers, 0);
    });
  });

  describe('deadline', () => {
    it('never sleeps past the context deadline: gives up at once with the last error', async () => {
      const clock = new FakeClock();
      const t = timeout({ timeoutMs: 250, clock });
      const r = fixed(clock); // waits 100, then 200
      const { giveUps } = events(r);
      const { fn, calls } = flaky(clock, 5, 'ok');
      const call = track(pipeline(t, r).execute(fn));
      await clock.advanceAsync(100);
      await flushMicrotasks();
      // attempt 2 failed at t = 100; the next wait (200) would end at 300 > 250
      assert.equal(call.settled, true);
      assert.equal((call.error as Error).message, 'fail 2');
      assert.deepEqual(
        calls.map((c) => c.at),
        [0, 100],
      );
      assert.equal(giveUps[0]?.reason, 'deadline');
      t.dispose();
      assert.equal(clock.pendingTimers, 0);
    });

    it('a Retry-After hint beyond the deadline gives up too', async () => {
      const clock = new FakeClock();
      const t = timeout({ timeoutMs: 5000, clock });
      const r = fixed(clock);
      const { giveUps } = events(r);
      const limited = new RateLimitedError(8000);
      await assert.rejects(
        pipeline(t, r).execute(() => {
          throw limited;
        }),
        (e) => e === limited,
      );
      assert.equal(giveUps[0]?.reason, 'deadline');
      t.dispose();
    });
  });

  describe('budget', () => {
    it('gives up when the shared budget is spent (reason budget), across policies', async () => {
      const clock = new FakeClock();
      const budget = retryBudget({ ratio: 0.5, minRetriesPerSecond: 0, clock });
      const a = fixed(clock, { budget, maxAttempts: 5 });
      const b = fixed(clock, { budget, maxAttempts: 5 });
      const aEvents = events(a);
      const bEvents = events(b);
      const fa = flaky(clock, 10, 'ok');
      const fb = flaky(clock, 10, 'ok');
      const ca = track(a.execute(fa.fn));
      const cb = track(b.execute(fb.fn));
      await clock.advanceAsync(100_000);
      assert.ok(ca.error && cb.error);
      // 2 requests × 0.5 = 1 retry for both policies together
      assert.equal(fa.calls.length + fb.calls.length, 3);
      assert.deepEqual([...aEvents.giveUps, ...bEvents.giveUps].map((e) => e.reason).sort(), [
        'budget',
        'budget',
      ]);
      assert.deepEqual([budget.totalRequests, budget.totalRetries, budget.totalRejected], [2, 1, 2]);
    });

    it('deposits once per call, not per attempt', async () => {
      const clock = new FakeClock();
      const budget = retryBudget({ clock });
      const r = fixed(clock, { budget });
      for (let i = 0; i < 5; i++) await r.execute(() => i);
      const { fn } = flaky(clock, 2, 'ok');
      const call = track(r.execute(fn));
      await clock.advanceAsync(1000);
      assert.equal(call.value, 'ok');
      assert.deepEqual([budget.totalRequests, budget.totalRetries], [6, 2]);
    });

    it('with everything failing, attempts ≤ (1 + ratio) × calls + floor × seconds', async () => {
      const clock = new FakeClock();
      const ratio = 0.1;
      const floor = 1; // retries per second
      const budget = retryBudget({ ratio, minRetriesPerSecond: floor, windowMs: 10_000, clock });
      const r = retry({ clock, budget, maxAttempts: 5, backoff: constantBackoff({ delayMs: 10 }) });
      let attempts = 0;
      const fn = () => {
        attempts++;
        throw new Error('down');
      };
      // one call every 10 ms for 30 s, everything failing
      const seconds = 30;
      const calls = (seconds * 1000) / 10;
      const results: Promise<unknown>[] = [];
      for (let i = 0; i < calls; i++) {
        results.push(r.execute(fn).catch(() => undefined));
        await clock.advanceAsync(10);
      }
      await clock.advanceAsync(1000);
      await Promise.all(results);
      const bound = (1 + ratio) * calls + floor * seconds;
      assert.ok(attempts <= bound, `attempts ${attempts} > bound ${bound}`);
      assert.ok(attempts > calls, 'some retries were allowed');
      assert.ok(attempts < 5 * calls, 'without the budget it would be 5 × calls');
      assert.equal(attempts, calls + budget.totalRetries);
    });
  });

  describe('events', () => {
    it('onRetry carries the failed attempt, the delay and the error; onGiveUp the attempts and reason', async () => {
      const clock = new FakeClock();
      const r = fixed(clock, { name: 'orders' });
      const { retries, giveUps, successes } = events(r);
      const { fn } = flaky(clock, 5, 'ok');
      const call = track(r.execute(fn, { key: 'GET /orders' }));
      await clock.advanceAsync(10_000);
      assert.ok(call.error);
      assert.deepEqual(
        retries.map((e) => [e.name, e.key, e.attempt, e.delayMs, !e.ok && (e.error as Error).message]),
        [
          ['orders', 'GET /orders', 1, 100, 'fail 1'],
          ['orders', 'GET /orders', 2, 200, 'fail 2'],
        ],
      );
      assert.equal(giveUps.length, 1);
      const g = giveUps[0]!;
      assert.deepEqual(
        [g.attempts, g.reason, !g.ok && (g.error as Error).message],
        [3, 'max-attempts', 'fail 3'],
      );
      assert.deepEqual(successes, []);

      const later = flaky(clock, 1, 'ok');
      const ok = track(r.execute(later.fn));
      await clock.advanceAsync(1000);
      assert.equal(ok.value, 'ok');
      assert.deepEqual(successes, [2]);
    });

    it('a throwing listener changes nothing', async () => {
      const clock = new FakeClock();
      const thrown: unknown[] = [];
      const previous = setListenerErrorHandler((e) => thrown.push(e));
      try {
        const r = fixed(clock);
        const boom = () => {
          throw new Error('listener bug');
        };
        r.onRetry(boom);
        r.onGiveUp(boom);
        r.onSuccess(boom);
        const good = flaky(clock, 1, 'ok');
        const ok = track(r.execute(good.fn));
        const bad = flaky(clock, 5, 'ok');
        const failed = track(r.execute(bad.fn));
        await clock.advanceAsync(10_000);
        assert.equal(ok.value, 'ok');
        assert.equal((failed.error as Error).message, 'fail 3');
        assert.equal(good.calls.length + bad.calls.length, 2 + 3);
        assert.equal(thrown.length, 1 + 1 + 2 + 1, 'retry ×3, success ×1, give-up ×1');
        assert.equal(clock.pendingTimers, 0);
      } finally {
        setListenerErrorHandler(previous);
      }
    });

    it('disposing a subscription stops its events', async () => {
      const clock = new FakeClock();
      const r = fixed(clock);
      let n = 0;
      const sub = r.onRetry(() => n++);
      sub.dispose();
      const { fn } = flaky(clock, 1, 'ok');
      const call = track(r.execute(fn));
      await clock.advanceAsync(1000);
      assert.equal(call.value, 'ok');
      assert.equal(n, 0);
    });
  });

  it('works inside a pipeline with a per-attempt timeout: each attempt gets its own deadline', async () => {
    const clock = new FakeClock();
    const perAttempt = timeout({ timeoutMs: 50, clock });
    const r = fixed(clock);
    let n = 0;
    const call = track(
      pipeline(r, perAttempt).execute(async (ctx) => {
        n++;
        assert.equal(ctx.attempt, n);
        if (n < 3) await new Promise(() => undefined); // hangs; the timeout ends it
        return 'ok';
      }),
    );
    await clock.advanceAsync(10_000);
    assert.equal(call.value, 'ok');
    assert.equal(n, 3);
    perAttempt.dispose();
    assert.equal(clock.pendingTimers, 0);
  });
});
