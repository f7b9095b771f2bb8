import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { FakeClock, flushMicrotasks } from './clock.js';
import { BulkheadRejectedError, InvalidOptionError, TimeoutError } from './errors.js';
import { setListenerErrorHandler } from './events.js';
import { bulkhead, type BulkheadRejectEvent } from './bulkhead.js';
import { timeout } from './timeout.js';
import { pipeline } from './policy.js';
import type { CallContext } from './context.js';

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** An operation the test finishes by hand; records that it started. */
function gate<T = string>(started: string[], label: string) {
  const d = deferred<T>();
  const fn = (ctx: CallContext) => {
    started.push(label);
    void ctx;
    return d.promise;
  };
  return { fn, ...d };
}

/** Settled state of a promise without awaiting it. */
function track<T>(p: Promise<T>) {
  const s: { done: boolean; value?: T; error?: unknown } = { done: false };
  p.then(
    (value) => Object.assign(s, { done: true, value }),
    (error: unknown) => Object.assign(s, { done: true, error }),
  );
  return s;
}

const optionIs = (name: string) => (e: unknown) => e instanceof InvalidOptionError && e.option === name;

describe('bulkhead', () => {
  it('validates options at construction, naming the option', () => {
    assert.throws(() => bulkhead({ maxConcurrent: 0 }), optionIs('bulkhead.maxConcurrent'));
    assert.throws(() => bulkhead({ maxConcurrent: 1.5 }), optionIs('bulkhead.maxConcurrent'));
    assert.throws(() => bulkhead(undefined as never), optionIs('bulkhead'));
    assert.throws(() => bulkhead({ maxConcurrent: 1, maxQueue: -1 }), optionIs('bulkhead.maxQueue'));
    assert.throws(() => bulkhead({ maxConcurrent: 1, maxQueue: NaN }), optionIs('bulkhead.maxQueue'));
    assert.throws(
      () => bulkhead({ maxConcurrent: 1, queueTimeoutMs: 0 }),
      optionIs('bulkhead.queueTimeoutMs'),
    );
    assert.throws(() => bulkhead({ maxConcurrent: 1, limit: 3 } as never), optionIs('bulkhead.limit'));
    assert.throws(() => bulkhead({ maxConcurrent: 1, clock: {} as never }), optionIs('bulkhead.clock'));
    const b = bulkhead({ maxConcurrent: Infinity, maxQueue: Infinity });
    assert.equal(b.maxQueue, Infinity);
    assert.equal(bulkhead({ maxConcurrent: 2 }).maxQueue, 0);
    assert.equal(bulkhead({ maxConcurrent: 2 }).queueTimeoutMs, Infinity);
    // handed to a timer: above 2^31 - 1 ms Node would fire it after 1 ms (issue 14)
    assert.throws(
      () => bulkhead({ maxConcurrent: 1, queueTimeoutMs: 2 ** 31 }),
      (e: unknown) => optionIs('bulkhead.queueTimeoutMs')(e) && /<= 2147483647/.test((e as Error).message),
    );
    assert.equal(bulkhead({ maxConcurrent: 1, queueTimeoutMs: 2 ** 31 - 1 }).queueTimeoutMs, 2 ** 31 - 1);
  });

  it('runs at most maxConcurrent at once and starts waiters in FIFO order as slots free', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 2, maxQueue: 10, clock });
    const started: string[] = [];
    const ops = ['a', 'b', 'c', 'd', 'e'].map((l) => gate(started, l));
    const calls = ops.map((op) => b.execute(op.fn));
    await flushMicrotasks();
    assert.deepEqual(started, ['a', 'b']);
    assert.equal(b.running, 2);
    assert.equal(b.queued, 3);
    assert.equal(b.available, 0);

    ops[1]!.resolve('B');
    assert.equal(await calls[1], 'B');
    await flushMicrotasks();
    assert.deepEqual(started, ['a', 'b', 'c']);
    assert.equal(b.running, 2);
    assert.equal(b.queued, 2);

    ops[0]!.reject(new Error('A failed'));
    await assert.rejects(calls[0]!, /A failed/);
    await flushMicrotasks();
    assert.deepEqual(started, ['a', 'b', 'c', 'd']);

    for (const op of ops.slice(2)) op.resolve('x');
    await Promise.all(calls.slice(2));
    assert.deepEqual(started, ['a', 'b', 'c', 'd', 'e']);
    assert.equal(b.running, 0);
    assert.equal(b.queued, 0);
    assert.equal(b.available, 2);
  });

  it('a new call does not overtake queued waiters', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 5, clock: new FakeClock() });
    const started: string[] = [];
    const first = gate(started, 'first');
    const waiting = gate(started, 'waiting');
    const c1 = b.execute(first.fn);
    const c2 = b.execute(waiting.fn);
    first.resolve('1');
    await c1;
    // the slot went straight to the waiter: a call arriving now must queue behind it
    const late = gate(started, 'late');
    const c3 = b.execute(late.fn);
    await flushMicrotasks();
    assert.deepEqual(started, ['first', 'waiting']);
    waiting.resolve('2');
    late.resolve('3');
    assert.deepEqual(await Promise.all([c2, c3]), ['2', '3']);
  });

  it('rejects at once with queue-full when the queue is full, with a cheap error and an event', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock, name: 'db' });
    const events: BulkheadRejectEvent[] = [];
    b.onReject((e) => events.push(e));
    const started: string[] = [];
    const a = gate(started, 'a');
    const q = gate(started, 'q');
    const ca = b.execute(a.fn);
    const cq = b.execute(q.fn);
    let ran = false;
    const rejected = b.execute(
      () => {
        ran = true;
        return 'never';
      },
      { key: 'k1' },
    );
    await assert.rejects(rejected, (e: unknown) => {
      assert.ok(e instanceof BulkheadRejectedError);
      assert.equal(e.reason, 'queue-full');
      assert.equal(e.code, 'BULWARK_ERR_BULKHEAD_REJECTED');
      assert.equal(e.maxConcurrent, 1);
      assert.equal(e.maxQueue, 1);
      assert.equal(e.stack!.split('\n').length, 1, 'no stack trace captured');
      return true;
    });
    assert.equal(ran, false);
    assert.deepEqual(events, [{ name: 'db', reason: 'queue-full', key: 'k1', running: 1, queued: 1 }]);
    a.resolve('a');
    q.resolve('q');
    assert.deepEqual(await Promise.all([ca, cq]), ['a', 'q']);
  });

  it('maxQueue 0 (the default) rejects as soon as every slot is taken', async () => {
    const b = bulkhead({ maxConcurrent: 1, clock: new FakeClock() });
    const d = deferred<number>();
    const c1 = b.execute(() => d.promise);
    await assert.rejects(
      b.execute(() => 2),
      BulkheadRejectedError,
    );
    d.resolve(1);
    assert.equal(await c1, 1);
    assert.equal(await b.execute(() => 3), 3);
  });

  it('rejects a waiter with queue-timeout after queueTimeoutMs, one waiter at a time', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 5, queueTimeoutMs: 100, clock });
    const events: string[] = [];
    b.onReject((e) => events.push(e.reason));
    const busy = deferred<string>();
    const running = b.execute(() => busy.promise);
    assert.equal(clock.pendingTimers, 0, 'no timer while nobody waits');
    const w1 = track(b.execute(() => 'w1'));
    assert.equal(clock.pendingTimers, 1);
    await clock.advanceAsync(30);
    const w2 = track(b.execute(() => 'w2'));
    assert.equal(clock.pendingTimers, 1, 'one shared timer for all waiters');
    await clock.advanceAsync(69);
    assert.equal(w1.done, false);
    await clock.advanceAsync(1);
    assert.ok(w1.error instanceof BulkheadRejectedError);
    assert.equal(w1.error.reason, 'queue-timeout');
    assert.equal(w2.done, false);
    assert.equal(b.queued, 1);
    await clock.advanceAsync(29);
    assert.equal(w2.done, false);
    await clock.advanceAsync(1);
    assert.ok(w2.error instanceof BulkheadRejectedError);
    assert.deepEqual(events, ['queue-timeout', 'queue-timeout']);
    assert.equal(b.queued, 0);
    assert.equal(b.running, 1, 'the running call keeps its slot');
    assert.equal(clock.pendingTimers, 0);
    busy.resolve('done');
    assert.equal(await running, 'done');
    assert.equal(b.running, 0);
  });

  it('a waiter that gets a slot before its deadline is not timed out, and the timer goes when the queue empties', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 5, queueTimeoutMs: 100, clock });
    const busy = deferred<string>();
    const c1 = b.execute(() => busy.promise);
    const c2 = b.execute(() => 'second');
    await clock.advanceAsync(50);
    busy.resolve('first');
    assert.deepEqual(await Promise.all([c1, c2]), ['first', 'second']);
    assert.equal(clock.pendingTimers, 0);
  });

  it('an aborted waiter leaves the queue at once with signal.reason, and the next waiter gets the slot', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 3, queueTimeoutMs: 1000, clock });
    const started: string[] = [];
    const a = gate(started, 'a');
    const ca = b.execute(a.fn);
    const ac = new AbortController();
    const cAborted = track(b.execute(() => started.push('aborted'), { signal: ac.signal }));
    const next = gate(started, 'next');
    const cNext = b.execute(next.fn);
    assert.equal(b.queued, 2);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);

    const reason = new Error('caller gave up');
    ac.abort(reason);
    assert.equal(b.queued, 1, 'left the queue synchronously');
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'listener removed');
    await flushMicrotasks();
    assert.equal(cAborted.error, reason);

    a.resolve('a');
    await ca;
    await flushMicrotasks();
    assert.deepEqual(started, ['a', 'next']);
    next.resolve('n');
    assert.equal(await cNext, 'n');
    assert.equal(b.running, 0);
    assert.equal(clock.pendingTimers, 0);
  });

  it('does not listen on the signal when a slot is free, and removes the listener once a waiter starts', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock: new FakeClock() });
    const ac = new AbortController();
    const d = deferred<number>();
    const c1 = b.execute(() => d.promise, { signal: ac.signal });
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    const c2 = b.execute(() => 2, { signal: ac.signal });
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    d.resolve(1);
    assert.deepEqual(await Promise.all([c1, c2]), [1, 2]);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });

  it('run() with a foreign CallContext: the operation sees that context, and its abort dequeues the waiter', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock });
    const ac = new AbortController();
    const foreign: CallContext = {
      signal: ac.signal,
      get aborted() {
        return ac.signal.aborted;
      },
      attempt: 1,
      deadline: Infinity,
      key: 'custom',
      clock,
      remainingMs: () => Infinity,
    };
    const d = deferred<number>();
    let seen: CallContext | undefined;
    const c1 = b.run((ctx) => {
      seen = ctx;
      return d.promise;
    }, foreign);
    assert.equal(seen, foreign);
    const waiter = track(b.run(() => 2, foreign));
    assert.equal(b.queued, 1);
    ac.abort('stop');
    assert.equal(b.queued, 0);
    await flushMicrotasks();
    assert.equal(waiter.error, 'stop');
    d.resolve(1);
    assert.equal(await c1, 1);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });

  it('rejects with signal.reason without running when the signal is already aborted', async () => {
    const b = bulkhead({ maxConcurrent: 1, clock: new FakeClock() });
    const reason = new Error('already');
    let ran = false;
    await assert.rejects(
      b.execute(
        () => {
          ran = true;
        },
        { signal: AbortSignal.abort(reason) },
      ),
      (e) => e === reason,
    );
    assert.equal(ran, false);
    assert.equal(b.running, 0);
  });

  it('frees a slot only when the work really settles, even after an aggressive timeout gave up on it', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock });
    const t = timeout({ timeoutMs: 50, clock });
    const p = pipeline(t, b);
    const started: string[] = [];
    const slow = gate(started, 'slow');
    let slowSignal: AbortSignal | undefined;
    const c1 = track(
      p.execute((ctx) => {
        slowSignal = ctx.signal;
        return slow.fn(ctx);
      }),
    );
    await clock.advanceAsync(50);
    assert.ok(c1.error instanceof TimeoutError, 'the caller got its timeout');
    assert.equal(slowSignal!.aborted, true, 'the work was told to stop');
    assert.equal(b.running, 1, 'but its slot is still taken');

    const second = gate(started, 'second');
    const c2 = b.execute(second.fn);
    await flushMicrotasks();
    assert.deepEqual(started, ['slow'], 'the next call waits for the abandoned work');
    assert.equal(b.queued, 1);

    slow.resolve('late');
    await flushMicrotasks();
    assert.deepEqual(started, ['slow', 'second']);
    second.resolve('ok');
    assert.equal(await c2, 'ok');
    assert.equal(b.running, 0);
    t.dispose();
    assert.equal(clock.pendingTimers, 0);
  });

  it('a waiter queued under an enclosing timeout leaves the queue when the timeout fires', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock });
    const t = timeout({ timeoutMs: 50, clock });
    const busy = deferred<string>();
    const c1 = b.execute(() => busy.promise);
    let ran = false;
    const c2 = track(
      pipeline(t, b).execute(() => {
        ran = true;
        return 'x';
      }),
    );
    assert.equal(b.queued, 1);
    await clock.advanceAsync(50);
    assert.ok(c2.error instanceof TimeoutError);
    assert.equal(b.queued, 0, 'the waiter left the queue');
    busy.resolve('done');
    await c1;
    assert.equal(ran, false, 'the timed-out waiter never ran');
    assert.equal(b.running, 0);
    t.dispose();
    assert.equal(clock.pendingTimers, 0);
  });

  it('a synchronous throw frees the slot', async () => {
    const b = bulkhead({ maxConcurrent: 1, clock: new FakeClock() });
    await assert.rejects(
      b.execute(() => {
        throw new Error('sync');
      }),
      /sync/,
    );
    assert.equal(b.running, 0);
    assert.equal(await b.execute(() => 'again'), 'again');
  });

  it('a throwing listener changes nothing', async () => {
    const errors: unknown[] = [];
    const previous = setListenerErrorHandler((e) => errors.push(e));
    try {
      const clock = new FakeClock();
      const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 10, clock });
      b.onReject(() => {
        throw new Error('listener bug');
      });
      const d = deferred<number>();
      const c1 = b.execute(() => d.promise);
      const waiter = track(b.execute(() => 2));
      await assert.rejects(
        b.execute(() => 3),
        (e) => e instanceof BulkheadRejectedError && e.reason === 'queue-full',
      );
      await clock.advanceAsync(10);
      assert.ok(waiter.error instanceof BulkheadRejectedError);
      assert.equal(waiter.error.reason, 'queue-timeout');
      d.resolve(1);
      assert.equal(await c1, 1);
      assert.equal(errors.length, 2);
    } finally {
      setListenerErrorHandler(previous);
    }
  });

  it('disposing a listener stops events', async () => {
    const b = bulkhead({ maxConcurrent: 1, clock: new FakeClock() });
    let n = 0;
    const sub = b.onReject(() => n++);
    const d = deferred<number>();
    const c = b.execute(() => d.promise);
    await assert.rejects(b.execute(() => 0));
    sub.dispose();
    await assert.rejects(b.execute(() => 0));
    assert.equal(n, 1);
    d.resolve(1);
    await c;
  });

  it('keeps the bound under many concurrent calls with random completion order', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 3, maxQueue: Infinity, clock });
    let active = 0;
    let peak = 0;
    const pending: (() => void)[] = [];
    const calls = Array.from({ length: 200 }, (_, i) =>
      b.execute(
        () =>
          new Promise<number>((resolve) => {
            active++;
            peak = Math.max(peak, active);
            pending.push(() => {
              active--;
              resolve(i);
            });
          }),
      ),
    );
    let seed = 7;
    while (pending.length > 0 || b.queued > 0) {
      await flushMicrotasks();
      if (pending.length === 0) continue;
      seed = (seed * 1103515245 + 12345) % 2147483648;
      const [finish] = pending.splice(seed % pending.length, 1);
      finish!();
    }
    const results = await Promise.all(calls);
    assert.equal(results.length, 200);
    assert.equal(peak, 3);
    assert.equal(b.running, 0);
  });
});
