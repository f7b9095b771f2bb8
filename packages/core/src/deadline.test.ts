// Deadlines: per call (`execute(fn, { deadline | timeoutMs })`) and ambient (`runWithDeadline`), and how
// every policy respects the tighter of its own limit and the caller's. Time is a FakeClock throughout.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { setImmediate as tick } from 'node:timers/promises';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type * as core from './index.js';
import { assertIdle } from './test-support.js';
import { TimerQueue } from './timer-queue.js';
import { FakeClock, flushMicrotasks, systemClock } from './clock.js';
import type { CallContext } from './context.js';
import { currentDeadline, currentSignal, runWithDeadline, runWithoutDeadline } from './deadline.js';
import { DeadlineExceededError, InvalidOptionError, TimeoutError } from './errors.js';
import { bulkhead } from './bulkhead.js';
import { circuitBreaker } from './circuit-breaker.js';
import { fallback } from './fallback.js';
import { pipeline } from './policy.js';
import { retry } from './retry.js';
import { timeout } from './timeout.js';
import { degrade } from './degrade.js';

/** An operation that settles only when its signal aborts (with the signal's reason). */
const untilAborted = (ctx: CallContext) =>
  new Promise<never>((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));

/** Settled state of a promise without awaiting it. */
function track<T>(p: Promise<T>) {
  const s: { done: boolean; value?: T; error?: unknown } = { done: false };
  p.then(
    (value) => Object.assign(s, { done: true, value }),
    (error: unknown) => Object.assign(s, { done: true, error }),
  );
  return s;
}

describe('execute with a deadline', () => {
  it('rejects with DeadlineExceededError at the deadline, aborts the operation, leaves no timer', async () => {
    const clock = new FakeClock(1_000);
    const breaker = circuitBreaker({ clock });
    let seen: CallContext | undefined;
    let aborted: unknown;
    const call = track(
      breaker.execute(
        (ctx) => {
          seen = ctx;
          ctx.signal.addEventListener('abort', () => (aborted = ctx.signal.reason));
          return new Promise(() => {}); // ignores its signal: the deadline still ends the call
        },
        { timeoutMs: 250 },
      ),
    );
    assert.equal(seen!.deadline, 1_250);
    assert.equal(seen!.remainingMs(), 250);
    clock.advance(100);
    assert.equal(seen!.remainingMs(), 150);
    await clock.advanceAsync(149);
    assert.equal(call.done, false);
    await clock.advanceAsync(1);
    assert.ok(call.error instanceof DeadlineExceededError);
    assert.equal((call.error as DeadlineExceededError).budgetMs, 250);
    assert.equal((call.error as DeadlineExceededError).code, 'BULWARK_ERR_DEADLINE_EXCEEDED');
    assert.equal(aborted, call.error, 'the operation is aborted with the same error');
    assertIdle(clock);
  });

  it('an absolute deadline, and the earliest of deadline and timeoutMs', async () => {
    const clock = new FakeClock(50);
    const r = retry({ clock });
    let deadline = NaN;
    await r.execute((ctx) => (deadline = ctx.deadline), { deadline: 400 });
    assert.equal(deadline, 400);
    await r.execute((ctx) => (deadline = ctx.deadline), { deadline: 400, timeoutMs: 100 });
    assert.equal(deadline, 150);
    await r.execute((ctx) => (deadline = ctx.deadline), { deadline: 120, timeoutMs: 100 });
    assert.equal(deadline, 120);
    await r.execute((ctx) => (deadline = ctx.deadline), { deadline: Infinity, timeoutMs: Infinity });
    assert.equal(deadline, Infinity);
    assertIdle(clock);
  });

  it('a deadline already passed (or a zero budget) rejects at once without running anything', async () => {
    const clock = new FakeClock(500);
    const b = bulkhead({ maxConcurrent: 1, clock });
    let ran = 0;
    for (const options of [{ deadline: 500 }, { deadline: 10 }, { timeoutMs: 0 }]) {
      await assert.rejects(
        b.execute(() => ran++, options),
        (e) =>
          e instanceof DeadlineExceededError && e.budgetMs === 0 && /before the call started/.test(e.message),
      );
    }
    assert.equal(ran, 0);
    assert.equal(b.running, 0);
  });

  it('refuses a bad deadline or timeoutMs with InvalidOptionError naming it, running nothing', async () => {
    const clock = new FakeClock();
    const t = timeout({ timeoutMs: 10, clock });
    let ran = 0;
    const cases: [Record<string, unknown>, string][] = [
      [{ deadline: NaN }, 'execute.deadline'],
      [{ deadline: '100' }, 'execute.deadline'],
      [{ deadline: -Infinity }, 'execute.deadline'],
      [{ deadline: Date.now() + 1_000 }, 'execute.deadline'], // a wall-clock time: ~55 years away
      [{ timeoutMs: -1 }, 'execute.timeoutMs'],
      [{ timeoutMs: NaN }, 'execute.timeoutMs'],
      [{ timeoutMs: '5' }, 'execute.timeoutMs'],
      [{ timeoutMs: 1e11 }, 'execute.timeoutMs'], // more than a year: the bound a deadline has
    ];
    for (const [options, option] of cases) {
      await assert.rejects(
        t.execute(() => ran++, options as never),
        (e) => e instanceof InvalidOptionError && e.option === option,
      );
    }
    assert.equal(ran, 0);
  });

  it('settling in time resolves the value and leaves nothing queued, on the caller signal either', async () => {
    const clock = new FakeClock();
    const signal = new AbortController().signal;
    const p = pipeline(retry({ clock }), circuitBreaker({ clock }), timeout({ timeoutMs: 50, clock }));
    const value = await p.execute((ctx) => `${ctx.key}:${ctx.attempt}`, {
      timeoutMs: 1_000,
      key: 'k',
      signal,
    });
    assert.equal(value, 'k:1');
    await flushMicrotasks();
    assert.equal(getEventListeners(signal, 'abort').length, 0);
    await clock.advanceAsync(100); // the per-attempt timeout's shared timer lapses
    assertIdle(clock);
  });

  it("the caller's abort before the deadline rejects with its reason and drops the deadline", async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    const call = track(
      fallback({ fallback: () => 'fallback', clock }).execute(() => new Promise(() => {}), {
        timeoutMs: 1_000,
        signal: controller.signal,
      }),
    );
    await clock.advanceAsync(10);
    controller.abort(new Error('caller left'));
    await flushMicrotasks();
    assert.match(String(call.error), /caller left/);
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    assertIdle(clock);
  });

  it("a breaker does not count the caller's deadline (it is the caller's abort), but counts its own timeout", async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, strategy: { type: 'consecutive', threshold: 1 } });
    const ignored: string[] = [];
    breaker.onIgnored((e) => ignored.push(e.reason));
    const guarded = pipeline(breaker, timeout({ timeoutMs: 500, clock }));
    const call = track(guarded.execute(untilAborted, { timeoutMs: 100 }));
    await clock.advanceAsync(100);
    assert.ok(call.error instanceof DeadlineExceededError);
    assert.equal(ignored.length, 1, 'ignored (the default classifier says so of a DeadlineExceededError)');
    assert.equal(breaker.state, 'closed');
    // the timeout's own bound, inside the breaker, is a failure of the dependency
    const own = track(guarded.execute(untilAborted, { timeoutMs: 1_000 }));
    await clock.advanceAsync(500);
    assert.ok(own.error instanceof TimeoutError);
    assert.equal(breaker.state, 'open');
    await clock.advanceAsync(10_000);
    assertIdle(clock);
  });

  it('a timeout due at the same moment as the deadline yields to it, whichever timer fires first', async () => {
    for (const order of ['timeout armed first', 'deadline armed first']) {
      const clock = new FakeClock();
      const breaker = circuitBreaker({ clock, strategy: { type: 'consecutive', threshold: 1 } });
      const t = timeout({ timeoutMs: 100, clock });
      const guarded = pipeline(breaker, t);
      // an earlier call arms the timeout's shared timer before the deadline's (or after)
      if (order === 'timeout armed first') void t.execute(() => new Promise(() => {})).catch(() => {});
      const call = track(guarded.execute(untilAborted, { timeoutMs: 100 }));
      if (order === 'deadline armed first') void t.execute(() => new Promise(() => {})).catch(() => {});
      await clock.advanceAsync(100);
      assert.ok(call.error instanceof DeadlineExceededError, `${order}: ${String(call.error)}`);
      assert.equal(breaker.state, 'closed', order);
    }
  });

  it('an inner timeout longer than the deadline is capped: the call ends at the deadline', async () => {
    const clock = new FakeClock();
    const t = timeout({ timeoutMs: 5_000, clock });
    let deadline = NaN;
    const call = track(
      t.execute(
        (ctx) => {
          deadline = ctx.deadline;
          return untilAborted(ctx);
        },
        { timeoutMs: 300 },
      ),
    );
    assert.equal(deadline, 300);
    await clock.advanceAsync(300);
    assert.ok(call.error instanceof DeadlineExceededError);
    await clock.advanceAsync(5_000);
    assertIdle(clock);
  });

  it('retry does not sleep past the deadline, and stops when it passes', async () => {
    const clock = new FakeClock();
    const r = retry({ clock, maxAttempts: 10, backoff: { start: () => ({ next: () => 40 }) } });
    const giveUps: string[] = [];
    r.onGiveUp((e) => giveUps.push(e.reason));
    let attempts = 0;
    const call = track(r.execute(() => Promise.reject(new Error(`fail ${++attempts}`)), { timeoutMs: 100 }));
    await clock.advanceAsync(100);
    // attempts at 0, 40, 80; the next wait (40 ms from 80) would end at the deadline: give up with the error
    assert.equal(attempts, 3);
    assert.deepEqual(giveUps, ['deadline']);
    assert.match(String(call.error), /fail 3/);
    assertIdle(clock);
  });

  it('a queued bulkhead waiter leaves the queue at the deadline', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 5, clock });
    const running = b.execute(
      () => new Promise((resolve) => clock.setTimeout(() => resolve('first'), 1_000)),
    );
    const queued = track(b.execute(() => 'second', { timeoutMs: 200 }));
    assert.equal(b.queued, 1);
    await clock.advanceAsync(200);
    assert.ok(queued.error instanceof DeadlineExceededError);
    assert.equal(b.queued, 0);
    await clock.advanceAsync(800);
    assert.equal(await running, 'first');
    assertIdle(clock);
  });

  it('degrade: the ladder ends at the deadline, and the tiers see it', async () => {
    const clock = new FakeClock();
    const seen: number[] = [];
    const ladder = degrade<void, string>({
      clock,
      tiers: [
        {
          name: 'primary',
          run: (ctx) => {
            seen.push(ctx.remainingMs());
            return untilAborted(ctx);
          },
        },
        { name: 'stale', run: () => 'stale' },
      ],
    });
    const call = track(ladder.execute(undefined, { timeoutMs: 80 }));
    assert.deepEqual(seen, [80]);
    await clock.advanceAsync(80);
    assert.ok(call.error instanceof DeadlineExceededError, String(call.error));
    assertIdle(clock);
  });
});

describe('the ambient deadline', () => {
  it('every execute inside runWithDeadline sees it, across awaits, without parameter threading', async () => {
    const clock = new FakeClock(10);
    const r = retry({ clock });
    const deadlines: number[] = [];
    await runWithDeadline({ timeoutMs: 500, clock }, async () => {
      deadlines.push(currentDeadline(clock));
      await r.execute((ctx) => deadlines.push(ctx.deadline));
      await tick();
      await r.execute((ctx) => deadlines.push(ctx.deadline));
      setImmediate(() => void r.execute((ctx) => deadlines.push(ctx.deadline)));
    });
    await tick();
    await flushMicrotasks();
    assert.deepEqual(deadlines, [510, 510, 510, 510]);
    // outside: none
    await r.execute((ctx) => deadlines.push(ctx.deadline));
    assert.equal(deadlines.at(-1), Infinity);
    assert.equal(currentDeadline(clock), Infinity);
  });

  it('the ambient deadline ends a call that outlives it', async () => {
    const clock = new FakeClock();
    const b = circuitBreaker({ clock });
    const call = runWithDeadline({ deadline: 300, clock }, () => track(b.execute(untilAborted)));
    await clock.advanceAsync(300);
    assert.ok(call.error instanceof DeadlineExceededError);
    assertIdle(clock);
  });

  it("the earliest of the ambient and the call's own deadline applies; nesting never extends", async () => {
    const clock = new FakeClock();
    const r = retry({ clock });
    const got = await runWithDeadline({ timeoutMs: 100, clock }, async () => {
      const out: number[] = [];
      await r.execute((ctx) => out.push(ctx.deadline), { timeoutMs: 1_000 });
      await r.execute((ctx) => out.push(ctx.deadline), { timeoutMs: 40 });
      await runWithDeadline({ timeoutMs: 5_000, clock }, () => r.execute((ctx) => out.push(ctx.deadline)));
      await runWithDeadline({ timeoutMs: 20, clock }, () => r.execute((ctx) => out.push(ctx.deadline)));
      await runWithoutDeadline(() => r.execute((ctx) => out.push(ctx.deadline)));
      await runWithoutDeadline(() => r.execute((ctx) => out.push(ctx.deadline), { timeoutMs: 7 }));
      return out;
    });
    assert.deepEqual(got, [100, 40, 100, 20, Infinity, 7]);
  });

  it('is converted between clocks: a policy on another clock sees the same remaining time', async () => {
    const serverClock = new FakeClock(1_000_000);
    const policyClock = new FakeClock(5);
    const r = retry({ clock: policyClock });
    await runWithDeadline({ timeoutMs: 250, clock: serverClock }, async () => {
      assert.equal(currentDeadline(serverClock), 1_000_250);
      assert.equal(currentDeadline(policyClock), 255);
      await r.execute((ctx) => assert.equal(ctx.remainingMs(), 250));
      serverClock.advance(50); // time passes on the server's clock only: the remaining budget shrinks
      assert.equal(currentDeadline(policyClock), 205);
    });
    // the system clock default
    runWithDeadline({ timeoutMs: 1_000 }, () => {
      const left = currentDeadline() - systemClock.now();
      assert.ok(left > 900 && left <= 1_000, String(left));
    });
  });

  it("an ambient signal aborts the calls made inside, alone or with a signal of the call's own", async () => {
    const clock = new FakeClock();
    const request = new AbortController();
    const b = circuitBreaker({ clock });
    const own = new AbortController();
    const [withoutOwn, withOwn] = runWithDeadline(
      { signal: request.signal, timeoutMs: 10_000, clock },
      () => {
        assert.equal(currentSignal(), request.signal);
        return [track(b.execute(untilAborted)), track(b.execute(untilAborted, { signal: own.signal }))];
      },
    );
    request.abort(new Error('client went away'));
    await flushMicrotasks();
    assert.match(String(withoutOwn!.error), /client went away/);
    assert.match(String(withOwn!.error), /client went away/);
    assert.equal(TimerQueue.for(clock).size, 0);
    assert.equal(getEventListeners(own.signal, 'abort').length, 0);
    // an ambient signal already aborted: nothing runs
    let ran = 0;
    await runWithDeadline({ signal: request.signal }, () =>
      assert.rejects(
        b.execute(() => ran++),
        /client went away/,
      ),
    );
    assert.equal(ran, 0);
  });

  it('two copies of @bulwark/core in one process share it (a dependency that bundles its own)', async () => {
    // a second, separate copy of the built package: every module of it is a different instance
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-core-copy-'));
    try {
      cpSync(fileURLToPath(new URL('.', import.meta.url)), dir, { recursive: true });
      writeFileSync(join(dir, 'package.json'), '{ "type": "module" }');
      const other = (await import(pathToFileURL(join(dir, 'index.js')).href)) as typeof core;
      assert.notEqual(other.retry, retry, 'a separate copy');
      const clock = new FakeClock();
      const mine = retry({ clock });
      const theirs = other.retry({ clock });
      // set by this copy, seen by the other, and the other way round
      const a = await runWithDeadline({ timeoutMs: 70, clock }, () => theirs.execute((ctx) => ctx.deadline));
      const b = await other.runWithDeadline({ timeoutMs: 80, clock }, () =>
        mine.execute((ctx) => ctx.deadline),
      );
      assert.deepEqual([a, b], [70, 80]);
      await assert.rejects(
        runWithDeadline({ timeoutMs: 0, clock }, () => theirs.execute(() => 1)),
        (e) => DeadlineExceededError.is(e) && e.code === 'BULWARK_ERR_DEADLINE_EXCEEDED',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad options with InvalidOptionError', () => {
    const bad: [unknown, string][] = [
      [{ timeoutMs: -5 }, 'runWithDeadline.timeoutMs'],
      [{ timeoutMs: 1e11 }, 'runWithDeadline.timeoutMs'],
      [{ deadline: NaN }, 'runWithDeadline.deadline'],
      [{ deadline: Date.now() }, 'runWithDeadline.deadline'],
      [{ signal: {} }, 'runWithDeadline.signal'],
      [{ clock: {} }, 'runWithDeadline.clock'],
      [{ timeout: 5 }, 'runWithDeadline.timeout'],
      [5, 'runWithDeadline'],
    ];
    for (const [options, option] of bad) {
      assert.throws(
        () => runWithDeadline(options as never, () => 0),
        (e) => e instanceof InvalidOptionError && e.option === option,
      );
    }
    assert.throws(() => runWithDeadline({}, 5 as never), InvalidOptionError);
  });

  it('a timeoutMs of up to a year (or Infinity) is a deadline every policy inside accepts', async () => {
    const clock = new FakeClock();
    const year = 365 * 24 * 3600 * 1000;
    const ladder = degrade<void, string>({
      clock,
      singleFlight: true,
      tiers: [{ name: 'primary', run: (ctx) => `left ${ctx.remainingMs()}` }],
    });
    for (const timeoutMs of [year, Infinity]) {
      const result = await runWithDeadline({ timeoutMs, clock }, () =>
        // the single flight runs under `deadline: caller.deadline`, validated as any deadline is
        ladder.execute(undefined, { key: 'k' }),
      );
      assert.equal(result.value, `left ${timeoutMs}`);
      assert.equal(
        await runWithDeadline({ timeoutMs, clock }, () =>
          timeout({ timeoutMs: 10, clock }).execute(() => 'ok', { deadline: currentDeadline(clock) }),
        ),
        'ok',
      );
    }
  });
});
