// hedge: state-machine tests on a FakeClock, a model-based property test, and the edges (budget,
// deadline, aborts, classifier).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import fc from 'fast-check';
import { FakeClock, flushMicrotasks } from './clock.js';
import type { CallContext } from './context.js';
import { DeadlineExceededError, HedgeCancelledError, InvalidOptionError } from './errors.js';
import { circuitBreaker } from './circuit-breaker.js';
import { classify } from './classify.js';
import { hedge, type HedgeEvent, type HedgeOptions } from './hedge.js';
import { pipeline } from './policy.js';
import { retryBudget } from './retry-budget.js';
import { bucketOf, upperBound } from './hedge/latency.js';

/** Settled state of a promise without awaiting it. */
function track<T>(p: Promise<T>) {
  const s: { done: boolean; value?: T; error?: unknown } = { done: false };
  p.then(
    (value) => Object.assign(s, { done: true, value }),
    (error: unknown) => Object.assign(s, { done: true, error }),
  );
  return s;
}

/** An attempt that settles after `ms` on the clock (or rejects with its signal's reason when aborted). */
function after<T>(clock: FakeClock, ctx: CallContext, ms: number, outcome: () => T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimeout(() => {
      try {
        resolve(outcome());
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    }, ms);
    const signal = ctx.signal;
    signal.addEventListener('abort', () => {
      clock.clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

/** A budget that never runs out, for tests about something else. */
const plenty = (clock: FakeClock) => retryBudget({ ratio: 10, minRetriesPerSecond: 1_000, clock });

function setup(options: Partial<HedgeOptions> = {}) {
  const clock = new FakeClock();
  const events: HedgeEvent[] = [];
  const h = hedge({ idempotent: true, delayMs: 10, budget: plenty(clock), clock, ...options });
  h.onHedge((e) => events.push(e));
  return { clock, h, events };
}

describe('hedge', () => {
  it('insists on a declaration of idempotence, and validates its options', () => {
    for (const idempotent of [undefined, false, 'yes', 1]) {
      assert.throws(
        () => hedge({ idempotent } as never),
        (e) =>
          e instanceof InvalidOptionError && e.option === 'hedge.idempotent' && /idempotent/.test(e.expected),
      );
    }
    const bad: [Partial<HedgeOptions>, string][] = [
      [{ delayMs: -1 }, 'hedge.delayMs'],
      [{ delayMs: 2 ** 31 }, 'hedge.delayMs'],
      [{ delayMs: 5, percentile: 0.9 }, 'hedge.percentile'],
      [{ percentile: 1 }, 'hedge.percentile'],
      [{ percentile: 0 }, 'hedge.percentile'],
      [{ minDelayMs: 10, maxDelayMs: 5 }, 'hedge.maxDelayMs'],
      [{ maxHedges: 1.5 }, 'hedge.maxHedges'],
      [{ maxHedges: 17 }, 'hedge.maxHedges'],
      [{ minSamples: 0 }, 'hedge.minSamples'],
      [{ budget: {} as never }, 'hedge.budget'],
      [{ delay: 5 } as never, 'hedge.delay'],
    ];
    for (const [options, option] of bad) {
      assert.throws(
        () => hedge({ idempotent: true, ...options }),
        (e) => e instanceof InvalidOptionError && e.option === option,
        option,
      );
    }
  });

  it('a first attempt that answers before the delay is the whole call: no hedge, no event, no timer', async () => {
    const { clock, h, events } = setup();
    let calls = 0;
    const call = track(h.execute((ctx) => after(clock, ctx, 5, () => `ok ${++calls}`)));
    await clock.advanceAsync(5);
    assert.equal(call.value, 'ok 1');
    assert.deepEqual(events, []);
    await clock.advanceAsync(100);
    assert.equal(calls, 1);
    assert.equal(clock.pendingTimers, 0);
  });

  it('a slow first attempt is hedged after the delay; the first success wins and the loser is cancelled', async () => {
    const { clock, h, events } = setup();
    const signals: AbortSignal[] = [];
    const latencies = [100, 5];
    const call = track(
      h.execute((ctx) => {
        signals.push(ctx.signal);
        const i = signals.length;
        return after(clock, ctx, latencies[i - 1]!, () => `attempt ${i}`);
      }),
    );
    await clock.advanceAsync(9);
    assert.equal(signals.length, 1);
    await clock.advanceAsync(1);
    assert.equal(signals.length, 2, 'the hedge starts at the delay');
    await clock.advanceAsync(5);
    assert.equal(call.value, 'attempt 2');
    assert.ok(signals[0]!.aborted);
    assert.ok(signals[0]!.reason instanceof HedgeCancelledError);
    assert.equal((signals[0]!.reason as HedgeCancelledError).winner, 2);
    assert.equal(signals[1]!.aborted, false);
    assert.deepEqual(
      events.map((e) => ({ ...e })),
      [
        { name: 'hedge', key: undefined, type: 'started', attempt: 2, delayMs: 10 },
        { name: 'hedge', key: undefined, type: 'cancelled', attempt: 1 },
        { name: 'hedge', key: undefined, type: 'won', attempt: 2, attempts: 2 },
      ],
    );
    assert.equal(clock.pendingTimers, 0);
  });

  it('maxHedges: each hedge starts a delay after the previous one; the first attempt may still win', async () => {
    const { clock, h, events } = setup({ maxHedges: 2 });
    const starts: number[] = [];
    const latencies = [25, 100, 100];
    const call = track(
      h.execute((ctx) => {
        starts.push(clock.now());
        const i = starts.length;
        return after(clock, ctx, latencies[i - 1]!, () => i);
      }),
    );
    await clock.advanceAsync(25);
    assert.deepEqual(starts, [0, 10, 20]);
    assert.equal(call.value, 1);
    assert.deepEqual(
      events.filter((e) => e.type === 'cancelled').map((e) => e.attempt),
      [2, 3],
    );
    assert.equal(clock.pendingTimers, 0);
  });

  it('a failed attempt is forgotten while another runs; the call fails with the last failure when none is left', async () => {
    const { clock, h } = setup();
    const plan = [
      { ms: 12, fail: true },
      { ms: 3, fail: false },
    ];
    let n = 0;
    const won = track(
      h.execute((ctx) => {
        const p = plan[n++]!;
        return after(clock, ctx, p.ms, () => {
          if (p.fail) throw new Error(`attempt ${n} failed`);
          return 'hedge answered';
        });
      }),
    );
    await clock.advanceAsync(13);
    assert.equal(won.value, 'hedge answered');

    n = 0;
    const both = [
      { ms: 12, fail: true },
      { ms: 5, fail: true },
    ];
    let i = 0;
    const lost = track(
      h.execute((ctx) => {
        const p = both[i++]!;
        const mine = i;
        return after(clock, ctx, p.ms, () => {
          throw new Error(`attempt ${mine} failed`);
        });
      }),
    );
    await clock.advanceAsync(15);
    assert.match(String(lost.error), /attempt 2 failed/, 'the last to fail');
    assert.equal(clock.pendingTimers, 0);
  });

  it('a first attempt that fails before the delay fails the call at once (retrying is retry’s job)', async () => {
    const { clock, h, events } = setup();
    let calls = 0;
    const call = track(
      h.execute((ctx) =>
        after(clock, ctx, 2, () => {
          calls++;
          throw new Error('down');
        }),
      ),
    );
    await clock.advanceAsync(2);
    assert.match(String(call.error), /down/);
    await clock.advanceAsync(50);
    assert.equal(calls, 1);
    assert.deepEqual(events, []);
    assert.equal(clock.pendingTimers, 0);
  });

  it('an error the classifier calls a success (an answer, e.g. retryable: false) wins too', async () => {
    const { clock, h } = setup();
    const signals: AbortSignal[] = [];
    const call = track(
      h.execute((ctx) => {
        signals.push(ctx.signal);
        const first = signals.length === 1;
        return after(clock, ctx, first ? 100 : 2, () => {
          throw Object.assign(new Error('404'), { retryable: false });
        });
      }),
    );
    await clock.advanceAsync(12);
    assert.match(String(call.error), /404/);
    assert.ok(signals[0]!.aborted);
  });

  it('a value the classifier calls a failure does not win', async () => {
    const { clock, h } = setup({ classify: classify.result((v: string) => v === 'busy', 'failure') });
    const replies = ['ok', 'busy'];
    let n = 0;
    const call = track(h.execute((ctx) => after(clock, ctx, n === 0 ? 20 : 2, () => replies[n++]!)));
    await clock.advanceAsync(12);
    assert.equal(call.done, false, 'the hedge answered "busy": not a win');
    await clock.advanceAsync(8);
    assert.equal(call.value, 'ok');
  });

  it('a throwing classifier fails the call with its error', async () => {
    const { clock, h } = setup({
      classify: () => {
        throw new Error('classifier bug');
      },
    });
    const call = track(h.execute((ctx) => after(clock, ctx, 1, () => 1)));
    await clock.advanceAsync(1);
    assert.match(String(call.error), /classifier bug/);
  });

  it('the budget caps hedges (skipped, reason budget); by default at 10 % of calls', async () => {
    const clock = new FakeClock();
    const h = hedge({ idempotent: true, delayMs: 10, clock });
    const events: HedgeEvent[] = [];
    h.onHedge((e) => events.push(e));
    const calls = [];
    for (let i = 0; i < 200; i++) calls.push(h.execute((ctx) => after(clock, ctx, 50, () => i)));
    await clock.advanceAsync(100);
    await Promise.all(calls);
    const started = events.filter((e) => e.type === 'started').length;
    const skipped = events.filter((e) => e.type === 'skipped' && e.reason === 'budget').length;
    assert.equal(started, 20, '10 % of 200 calls');
    assert.equal(started + skipped, 200);
    assert.equal(h.budget.totalRetries, 20);
  });

  it('no hedge is started once the delay would reach the deadline', async () => {
    const { clock, h, events } = setup({ delayMs: 50 });
    const call = track(h.execute((ctx) => after(clock, ctx, 100, () => 1), { timeoutMs: 40 }));
    assert.deepEqual(
      events.map((e) => [e.type, (e as { reason?: string }).reason]),
      [['skipped', 'deadline']],
    );
    await clock.advanceAsync(40);
    assert.ok(call.error instanceof DeadlineExceededError);
    assert.equal(clock.pendingTimers, 0);
  });

  it("the caller's abort ends the call at once and aborts every attempt", async () => {
    const { clock, h } = setup();
    const controller = new AbortController();
    const signals: AbortSignal[] = [];
    const call = track(
      h.execute(
        (ctx) => {
          signals.push(ctx.signal);
          return after(clock, ctx, 100, () => 1);
        },
        { signal: controller.signal },
      ),
    );
    await clock.advanceAsync(15);
    assert.equal(signals.length, 2);
    controller.abort(new Error('gone'));
    await flushMicrotasks();
    assert.match(String(call.error), /gone/);
    assert.ok(signals.every((s) => s.aborted));
    assert.equal(clock.pendingTimers, 0);
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  });

  it('an operation declared not idempotent runs once, unhedged', async () => {
    const clock = new FakeClock();
    const h = hedge({ idempotent: (ctx) => ctx.key === 'GET', delayMs: 1, budget: plenty(clock), clock });
    let starts = 0;
    const post = track(
      h.execute((ctx) => (starts++, after(clock, ctx, 50, () => 'posted')), { key: 'POST' }),
    );
    await clock.advanceAsync(50);
    assert.equal(post.value, 'posted');
    assert.equal(starts, 1, 'POST ran once');
    const get = track(h.execute((ctx) => (starts++, after(clock, ctx, 50, () => 'got')), { key: 'GET' }));
    await clock.advanceAsync(50);
    assert.equal(starts, 3, 'GET was hedged');
    assert.equal(get.value, 'got');
  });

  it('a breaker inside does not count a cancelled attempt', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, strategy: { type: 'consecutive', threshold: 1 } });
    const ignored: string[] = [];
    breaker.onIgnored((e) => ignored.push(e.reason));
    const h = hedge({ idempotent: true, delayMs: 10, budget: plenty(clock), clock });
    const p = pipeline(h, breaker);
    let n = 0;
    const call = track(p.execute((ctx) => after(clock, ctx, n++ === 0 ? 100 : 1, () => 'fast')));
    await clock.advanceAsync(11);
    assert.equal(call.value, 'fast');
    await flushMicrotasks();
    assert.equal(ignored.length, 1);
    assert.equal(breaker.state, 'closed');
  });

  it('adaptive: nothing is hedged until minSamples latencies were seen; then the delay is their percentile', async () => {
    const clock = new FakeClock();
    const h = hedge({ idempotent: true, minSamples: 20, budget: plenty(clock), clock });
    assert.equal(h.currentDelayMs, undefined);
    let calls = 0;
    for (let i = 0; i < 19; i++) {
      const p = h.execute((ctx) => after(clock, ctx, i < 18 ? 2 : 40, () => ++calls));
      await clock.advanceAsync(40);
      await p;
    }
    assert.equal(calls, 19, 'warming up: one attempt each');
    assert.equal(h.currentDelayMs, undefined);
    const last = h.execute((ctx) => after(clock, ctx, 2, () => ++calls));
    await clock.advanceAsync(2);
    await last;
    const delay = h.currentDelayMs!;
    // 19 of 20 samples took 2 ms: the 95th percentile is in 2 ms's bucket
    assert.equal(delay, upperBound(bucketOf(2)));
    assert.ok(delay >= 2 && delay < 2.2, String(delay));
  });

  it('adaptive: the delay stays within [minDelayMs, maxDelayMs]', async () => {
    for (const [ms, min, max, want] of [
      [0.01, 3, 100, 3],
      [500, 1, 50, 50],
    ] as const) {
      const clock = new FakeClock();
      const h = hedge({
        idempotent: true,
        minSamples: 1,
        minDelayMs: min,
        maxDelayMs: max,
        budget: plenty(clock),
        clock,
      });
      const p = h.execute((ctx) => after(clock, ctx, ms, () => 1));
      await clock.advanceAsync(ms);
      await p;
      assert.equal(h.currentDelayMs, want);
    }
  });

  it('model: the call settles with the earliest success among the attempts started before it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 0, max: 2 }),
        fc.array(fc.record({ ms: fc.integer({ min: 0, max: 100 }).map((n) => n + 0.5), ok: fc.boolean() }), {
          minLength: 3,
          maxLength: 3,
        }),
        async (delay, maxHedges, plan) => {
          const clock = new FakeClock();
          const h = hedge({ idempotent: true, delayMs: delay, maxHedges, budget: plenty(clock), clock });
          const signals: AbortSignal[] = [];
          const call = track(
            h.execute((ctx) => {
              const i = signals.length;
              signals.push(ctx.signal);
              return after(clock, ctx, plan[i]!.ms, () => {
                if (!plan[i]!.ok) throw new Error(`fail ${i + 1}`);
                return i + 1;
              });
            }),
          );
          // the model, an event simulation: attempt i starts at i × delay while the call is not over;
          // latencies end in .5 and delays are whole, so a start never ties with a settlement (two
          // settlements at the same time come in attempt order, as the clock fires its timers)
          type Ev = { at: number; kind: 'start' | 'settle'; i: number };
          const queue: Ev[] = [{ at: 0, kind: 'start', i: 0 }];
          let done = false;
          let inFlight = 0;
          let started = 0;
          let result: { ok: boolean; v: number } | undefined;
          while (queue.length > 0 && !done) {
            queue.sort((a, b) => a.at - b.at || a.i - b.i);
            const ev = queue.shift()!;
            if (ev.kind === 'start') {
              started++;
              inFlight++;
              queue.push({ at: ev.at + plan[ev.i]!.ms, kind: 'settle', i: ev.i });
              if (ev.i < maxHedges) queue.push({ at: ev.at + delay, kind: 'start', i: ev.i + 1 });
            } else {
              inFlight--;
              if (plan[ev.i]!.ok) {
                done = true;
                result = { ok: true, v: ev.i + 1 };
              } else if (inFlight === 0) {
                done = true;
                result = { ok: false, v: ev.i + 1 };
              }
            }
          }
          await clock.advanceAsync(400);
          assert.ok(call.done);
          assert.equal(signals.length, started, 'attempts started');
          if (result!.ok) assert.equal(call.value, result!.v);
          else assert.match(String(call.error), new RegExp(`fail ${result!.v}$`));
          assert.equal(clock.pendingTimers, 0);
        },
      ),
      { numRuns: 300 },
    );
  });
});
