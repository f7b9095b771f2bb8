import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { FakeClock, flushMicrotasks } from './clock.js';
import { TimeoutError, InvalidOptionError } from './errors.js';
import { timeout } from './timeout.js';
import { pipeline } from './policy.js';
import type { CallContext } from './context.js';

/** A promise with its resolvers exposed. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('timeout', () => {
  it('validates options at construction, naming the option', () => {
    assert.throws(
      () => timeout({ timeoutMs: 0 }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'timeout.timeoutMs',
    );
    assert.throws(() => timeout({ timeoutMs: NaN }), InvalidOptionError);
    // above 2^31 - 1 ms Node would cut the timer to 1 ms and re-arm it every millisecond (issue 14)
    for (const timeoutMs of [2 ** 31, 1e10, Infinity]) {
      assert.throws(
        () => timeout({ timeoutMs }),
        (e: unknown) =>
          e instanceof InvalidOptionError &&
          e.option === 'timeout.timeoutMs' &&
          /<= 2147483647/.test(e.message),
      );
    }
    assert.equal(timeout({ timeoutMs: 2 ** 31 - 1 }).timeoutMs, 2 ** 31 - 1);
    assert.throws(
      () => timeout({ timeoutMs: 10, strategy: 'eager' as never }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'timeout.strategy',
    );
    assert.throws(
      () => timeout({ timeout: 10 } as never),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'timeout.timeout',
    );
  });

  it('passes values and errors through when the operation is in time', async () => {
    const clock = new FakeClock();
    const t = timeout({ timeoutMs: 100, clock });
    assert.equal(await t.execute(() => 42), 42);
    await assert.rejects(
      t.execute(() => Promise.reject(new Error('boom'))),
      /boom/,
    );
    await assert.rejects(
      t.execute(() => {
        throw new Error('sync boom');
      }),
      /sync boom/,
    );
  });

  it('aggressive: settles with TimeoutError at the deadline and aborts the signal', async () => {
    const clock = new FakeClock();
    const t = timeout({ timeoutMs: 100, clock });
    let seen: CallContext | undefined;
    const never = deferred<number>();
    const call = t.execute((ctx) => {
      seen = ctx;
      assert.equal(ctx.signal.aborted, false);
      return never.promise;
    });
    let settled = false;
    call.catch(() => (settled = true));
    await clock.advanceAsync(99);
    assert.equal(settled, false);
    await clock.advanceAsync(1);
    await assert.rejects(call, (e: unknown) => e instanceof TimeoutError && e.timeoutMs === 100);
    assert.equal(seen!.signal.aborted, true);
    assert.ok(seen!.signal.reason instanceof TimeoutError);
    assert.equal(seen!.aborted, true);
  });

  it('cooperative: aborts the signal and waits for the operation, then reports the timeout', async () => {
    const clock = new FakeClock();
    const t = timeout({ timeoutMs: 50, strategy: 'cooperative', clock });
    let finished = false;
    const call = t.execute(
      (ctx) =>
        new Promise<string>((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            // the operation notices and finishes a little later
            clock.setTimeout(() => {
              finished = true;
              resolve('late');
            }, 10);
          });
        }),
    );
    const rejected = assert.rejects(call, TimeoutError);
    await clock.advanceAsync(50);
    assert.equal(finished, false);
    await clock.advanceAsync(10);
    assert.equal(finished, true);
    await rejected;
  });

  it('does not create a signal unless the operation reads it', async () => {
    const clock = new FakeClock();
    const t = timeout({ timeoutMs: 10, clock });
    const original = globalThis.AbortController;
    let created = 0;
    globalThis.AbortController = class extends original {
      constructor() {
        super();
        created++;
      }
    };
    try {
      await t.execute(() => 1);
      assert.equal(created, 0);
      await t.execute((ctx) => ctx.signal.aborted);
      assert.equal(created, 1);
    } finally {
      globalThis.AbortController = original;
    }
  });

  it('uses one shared timer for many calls, and none is left once it lapses', async () => {
    const clock = new FakeClock();
    const t = timeout({ timeoutMs: 100, clock });
    for (let i = 0; i < 50; i++) await t.execute(() => i);
    assert.equal(clock.pendingTimers, 1, 'one lazily re-armed timer, not one per call');
    await clock.advanceAsync(100);
    assert.equal(clock.pendingTimers, 0, 'nothing in flight: the timer lapses without re-arming');
    assert.equal(t.inFlight, 0);
  });

  it('fires each in-flight call at its own deadline', async () => {
    const clock = new FakeClock();
    const t = timeout({ timeoutMs: 100, clock });
    const results: string[] = [];
    const a = t.execute(() => deferred<void>().promise).catch(() => results.push(`a@${clock.now()}`));
    await clock.advanceAsync(30);
    const b = t.execute(() => deferred<void>().promise).catch(() => results.push(`b@${clock.now()}`));
    await clock.advanceAsync(70);
    await a;
    assert.deepEqual(results, ['a@100']);
    await clock.advanceAsync(30);
    await b;
    assert.deepEqual(results, ['a@100', 'b@130']);
    assert.equal(clock.pendingTimers, 0);
  });

  it("rejects with the caller's reason when the caller aborts, and leaves no listener behind", async () => {
    const clock = new FakeClock();
    const t = timeout({ timeoutMs: 1000, clock });
    const controller = new AbortController();
    const reason = new Error('user cancelled');
    const call = t.execute(() => deferred<void>().promise, { signal: controller.signal });
    controller.abort(reason);
    await assert.rejects(call, (e: unknown) => e === reason);
    await clock.advanceAsync(1000);
    assert.equal(clock.pendingTimers, 0);

    const ok = new AbortController();
    let count = 0;
    const add = ok.signal.addEventListener.bind(ok.signal);
    const remove = ok.signal.removeEventListener.bind(ok.signal);
    ok.signal.addEventListener = ((...args: Parameters<typeof add>) => {
      count++;
      return add(...args);
    }) as typeof add;
    ok.signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
      count--;
      return remove(...args);
    }) as typeof remove;
    await t.execute((ctx) => ctx.signal.aborted, { signal: ok.signal });
    assert.equal(count, 0, 'every listener added to the caller signal was removed');
  });

  it('an already-aborted caller signal rejects without running the operation', async () => {
    const t = timeout({ timeoutMs: 10, clock: new FakeClock() });
    let ran = false;
    await assert.rejects(
      t.execute(() => (ran = true), { signal: AbortSignal.abort(new Error('gone')) }),
      /gone/,
    );
    assert.equal(ran, false);
  });

  it('nested timeouts: the inner deadline is capped by the outer one and the inner signal follows the outer', async () => {
    const clock = new FakeClock();
    const outer = timeout({ timeoutMs: 50, clock });
    const inner = timeout({ timeoutMs: 1000, clock });
    let innerCtx: CallContext | undefined;
    const call = pipeline(outer, inner).execute((ctx) => {
      innerCtx = ctx;
      void ctx.signal;
      return deferred<void>().promise;
    });
    assert.equal(innerCtx!.deadline, 50);
    assert.equal(innerCtx!.remainingMs(), 50);
    const rejected = assert.rejects(call, (e: unknown) => e instanceof TimeoutError && e.timeoutMs === 50);
    await clock.advanceAsync(50);
    await rejected;
    assert.equal(innerCtx!.signal.aborted, true);
    await clock.advanceAsync(1000);
    assert.equal(clock.pendingTimers, 0);
  });

  it('nested aggressive timeouts create no AbortSignal unless the operation reads ctx.signal', async () => {
    const clock = new FakeClock();
    const Original = globalThis.AbortController;
    let made = 0;
    globalThis.AbortController = class extends Original {
      constructor() {
        super();
        made++;
      }
    };
    try {
      const both = pipeline(timeout({ timeoutMs: 2_000, clock }), timeout({ timeoutMs: 500, clock }));
      for (let i = 0; i < 10; i++) assert.equal(await both.execute(async () => i), i);
      assert.equal(made, 0, 'no signal for an operation that ignores it');
      // the outer deadline still ends the call and reaches a signal read later
      let seen: CallContext | undefined;
      const call = pipeline(timeout({ timeoutMs: 50, clock }), timeout({ timeoutMs: 500, clock })).execute(
        (ctx) => {
          seen = ctx;
          return deferred<void>().promise;
        },
      );
      const rejected = assert.rejects(call, (e: unknown) => e instanceof TimeoutError && e.timeoutMs === 50);
      await clock.advanceAsync(50);
      await rejected;
      assert.equal(made, 0);
      assert.equal(seen!.aborted, true);
      assert.equal(seen!.signal.aborted, true, 'a signal made after the abort is born aborted');
      assert.ok((seen!.signal.reason as TimeoutError).timeoutMs === 50);
    } finally {
      globalThis.AbortController = Original;
    }
  });

  it('an inner signal read before the outer deadline follows it, without a signal for the outer scope', async () => {
    const clock = new FakeClock();
    const Original = globalThis.AbortController;
    let made = 0;
    globalThis.AbortController = class extends Original {
      constructor() {
        super();
        made++;
      }
    };
    try {
      let signal: AbortSignal | undefined;
      const call = pipeline(timeout({ timeoutMs: 50, clock }), timeout({ timeoutMs: 500, clock })).execute(
        (ctx) => {
          signal = ctx.signal;
          return deferred<void>().promise;
        },
      );
      assert.equal(made, 1, 'only the scope the operation sees has a signal');
      const rejected = assert.rejects(call, TimeoutError);
      await clock.advanceAsync(50);
      await rejected;
      assert.equal(signal!.aborted, true);
      assert.equal((signal!.reason as TimeoutError).timeoutMs, 50);
    } finally {
      globalThis.AbortController = Original;
    }
  });

  it('three nested timeouts under a caller signal: either abort reaches the innermost signal, and nothing is left on the caller signal', async () => {
    for (const trigger of ['outer deadline', 'caller'] as const) {
      const clock = new FakeClock();
      const ac = new AbortController();
      const seen: AbortSignal[] = [];
      const p = pipeline(
        timeout({ timeoutMs: 100, clock }),
        timeout({ timeoutMs: 200, clock, strategy: 'cooperative' }),
        timeout({ timeoutMs: 300, clock }),
      );
      const call = p.execute(
        (ctx) => {
          seen.push(ctx.signal);
          return deferred<void>().promise;
        },
        { signal: ac.signal },
      );
      const reason = new Error('caller left');
      const rejected = assert.rejects(call, (e: unknown) =>
        trigger === 'caller' ? e === reason : e instanceof TimeoutError && e.timeoutMs === 100,
      );
      if (trigger === 'caller') ac.abort(reason);
      else await clock.advanceAsync(100);
      await rejected;
      assert.equal(seen[0]!.aborted, true);
      assert.equal(
        trigger === 'caller' ? seen[0]!.reason : (seen[0]!.reason as TimeoutError).timeoutMs,
        trigger === 'caller' ? reason : 100,
      );
      assert.equal(getEventListeners(ac.signal, 'abort').length, 0, trigger);
      await clock.advanceAsync(1_000);
      assert.equal(clock.pendingTimers, 0);
    }
  });

  it('emits onTimeout only to listeners, and a throwing listener changes nothing', async () => {
    const clock = new FakeClock();
    const t = timeout({ timeoutMs: 5, clock, name: 'db' });
    const events: unknown[] = [];
    const sub = t.onTimeout((e) => events.push(e));
    t.onTimeout(() => {
      throw new Error('listener bug');
    });
    const { setListenerErrorHandler } = await import('./events.js');
    const errors: unknown[] = [];
    const previous = setListenerErrorHandler((e) => errors.push(e));
    try {
      const rejected = assert.rejects(
        t.execute(() => deferred<void>().promise, { key: 'k1' }),
        TimeoutError,
      );
      await clock.advanceAsync(5);
      await rejected;
      assert.deepEqual(events, [{ name: 'db', timeoutMs: 5, key: 'k1' }]);
      assert.equal(errors.length, 1);
      sub.dispose();
    } finally {
      setListenerErrorHandler(previous);
    }
  });

  it('with the real clock, leaves no ref’d timer once calls settle', async () => {
    const t = timeout({ timeoutMs: 60_000 });
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await t.execute(() => 1);
    await flushMicrotasks();
    const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    assert.equal(after, before, 'the shared timer is unref’d when nothing is in flight');
    t.dispose();
  });
});
