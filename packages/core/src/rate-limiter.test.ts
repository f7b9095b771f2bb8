import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.js';
import { InvalidOptionError, RateLimitedError } from './errors.js';
import { setListenerErrorHandler } from './events.js';
import { rateLimiter, type RateLimitRejectEvent, type RateLimitStoreErrorEvent } from './rate-limiter.js';
import { memoryRateLimitStore } from './rate-limit/memory-store.js';
import type { RateLimitStore, TakeResult } from './rate-limit/store.js';

const optionIs = (name: string) => (e: unknown) => e instanceof InvalidOptionError && e.option === name;

/** A store that answers through promises, as a network store does (backed by a memory store). */
function asyncStore(): RateLimitStore & { calls: number } {
  const inner = memoryRateLimitStore();
  const s = {
    calls: 0,
    take: (key: string, cost: number, nowMs: number, rule: { ratePerSecond: number; burst: number }) => {
      s.calls++;
      return new Promise<TakeResult>((resolve) =>
        setImmediate(() => resolve(inner.take(key, cost, nowMs, rule))),
      );
    },
  };
  return s;
}

/** A store that is down: sync throw or async rejection. */
const downStore = (mode: 'sync' | 'async', error: Error): RateLimitStore => ({
  take: () => {
    if (mode === 'sync') throw error;
    return Promise.reject(error);
  },
});

describe('rateLimiter', () => {
  it('validates options at construction, naming the option', () => {
    assert.throws(() => rateLimiter({ ratePerSecond: 0 }), optionIs('rateLimiter.ratePerSecond'));
    assert.throws(() => rateLimiter({ ratePerSecond: -1 }), optionIs('rateLimiter.ratePerSecond'));
    assert.throws(() => rateLimiter({ ratePerSecond: Infinity }), optionIs('rateLimiter.ratePerSecond'));
    assert.throws(() => rateLimiter({} as never), optionIs('rateLimiter.ratePerSecond'));
    assert.throws(() => rateLimiter({ ratePerSecond: 1, burst: 0 }), optionIs('rateLimiter.burst'));
    assert.throws(() => rateLimiter({ ratePerSecond: 1, burst: 1.5 }), optionIs('rateLimiter.burst'));
    assert.throws(() => rateLimiter({ ratePerSecond: 1, store: {} as never }), optionIs('rateLimiter.store'));
    assert.throws(
      () => rateLimiter({ ratePerSecond: 1, keyOf: 'k' as never }),
      optionIs('rateLimiter.keyOf'),
    );
    assert.throws(
      () => rateLimiter({ ratePerSecond: 1, onStoreError: 'maybe' as never }),
      optionIs('rateLimiter.onStoreError'),
    );
    assert.throws(
      () => rateLimiter({ ratePerSecond: 1, onStoreError: {} as never }),
      optionIs('rateLimiter.onStoreError'),
    );
    assert.throws(() => rateLimiter({ ratePerSecond: 1, rate: 3 } as never), optionIs('rateLimiter.rate'));
  });

  it('burst defaults to one second of tokens (at least 1)', () => {
    assert.equal(rateLimiter({ ratePerSecond: 0.5 }).burst, 1);
    assert.equal(rateLimiter({ ratePerSecond: 10 }).burst, 10);
    assert.equal(rateLimiter({ ratePerSecond: 2.5 }).burst, 3);
    assert.equal(rateLimiter({ ratePerSecond: 2.5, burst: 7 }).burst, 7);
  });

  it('runs calls while tokens last, then rejects at once with RateLimitedError and retryAfterMs', async () => {
    const clock = new FakeClock();
    const rl = rateLimiter({ ratePerSecond: 4, burst: 2, clock, name: 'api' });
    const events: RateLimitRejectEvent[] = [];
    rl.onReject((e) => events.push(e));
    assert.equal(await rl.execute(() => 1, { key: 'u1' }), 1);
    assert.equal(await rl.execute(() => 2, { key: 'u1' }), 2);
    let ran = false;
    await assert.rejects(
      rl.execute(
        () => {
          ran = true;
        },
        { key: 'u1' },
      ),
      (e: unknown) => {
        assert.ok(e instanceof RateLimitedError);
        assert.equal(e.retryAfterMs, 250);
        assert.equal(e.key, 'u1');
        assert.equal(e.code, 'BULWARK_ERR_RATE_LIMITED');
        assert.equal(e.stack!.split('\n').length, 1, 'no stack trace captured');
        return true;
      },
    );
    assert.equal(ran, false);
    assert.deepEqual(events, [{ name: 'api', key: 'u1', retryAfterMs: 250 }]);
    clock.advance(249);
    await assert.rejects(
      rl.execute(() => 3, { key: 'u1' }),
      (e) => (e as RateLimitedError).retryAfterMs === 1,
    );
    clock.advance(1);
    assert.equal(await rl.execute(() => 4, { key: 'u1' }), 4);
    assert.equal(clock.pendingTimers, 0, 'a limiter never sets a timer');
  });

  it('keys are independent; without a key every call shares one bucket', async () => {
    const rl = rateLimiter({ ratePerSecond: 1, burst: 1, clock: new FakeClock() });
    assert.equal(await rl.execute(() => 'a', { key: 'a' }), 'a');
    await assert.rejects(
      rl.execute(() => 'a', { key: 'a' }),
      RateLimitedError,
    );
    assert.equal(await rl.execute(() => 'b', { key: 'b' }), 'b');
    assert.equal(await rl.execute(() => 'none'), 'none');
    await assert.rejects(
      rl.execute(() => 'none'),
      (e) => (e as RateLimitedError).key === '',
    );
  });

  it('keyOf overrides ctx.key', async () => {
    const rl = rateLimiter({
      ratePerSecond: 1,
      burst: 1,
      clock: new FakeClock(),
      keyOf: (ctx) => `t:${ctx.key}`,
    });
    await rl.execute(() => 0, { key: 'x' });
    await assert.rejects(
      rl.execute(() => 0, { key: 'x' }),
      (e) => (e as RateLimitedError).key === 't:x',
    );
    assert.equal((rl.tryAcquire('t:y') as TakeResult).allowed, true);
  });

  it('tryAcquire answers synchronously with a sync store, takes cost tokens, emits on denial, never throws for it', () => {
    const clock = new FakeClock();
    const rl = rateLimiter({ ratePerSecond: 2, burst: 5, clock });
    let rejections = 0;
    rl.onReject(() => rejections++);
    const first = rl.tryAcquire('ip', 3);
    assert.ok(!(first instanceof Promise));
    assert.deepEqual(first, { allowed: true, remaining: 2, retryAfterMs: 0 });
    assert.deepEqual(rl.tryAcquire('ip', 3), { allowed: false, remaining: 2, retryAfterMs: 500 });
    assert.equal(rejections, 1);
    clock.advance(500);
    assert.deepEqual(rl.tryAcquire('ip', 3), { allowed: true, remaining: 0, retryAfterMs: 0 });
    assert.throws(() => rl.tryAcquire('ip', 6), RangeError);
    assert.throws(() => rl.tryAcquire('ip', 0), RangeError);
    assert.throws(() => rl.tryAcquire('ip', NaN), RangeError);
  });

  it('works with an asynchronous store', async () => {
    const clock = new FakeClock();
    const store = asyncStore();
    const rl = rateLimiter({ ratePerSecond: 1, burst: 1, clock, store });
    assert.equal(await rl.execute(() => 'ok', { key: 'k' }), 'ok');
    await assert.rejects(
      rl.execute(() => 'no', { key: 'k' }),
      (e) => (e as RateLimitedError).retryAfterMs === 1000,
    );
    const r = rl.tryAcquire('k');
    assert.ok(r instanceof Promise);
    assert.equal((await r).allowed, false);
    assert.equal(store.calls, 3);
  });

  it('does not run the operation when the call was aborted while the store answered', async () => {
    const rl = rateLimiter({ ratePerSecond: 10, clock: new FakeClock(), store: asyncStore() });
    const ac = new AbortController();
    let ran = false;
    const call = rl.execute(
      () => {
        ran = true;
      },
      { signal: ac.signal },
    );
    const reason = new Error('gone');
    ac.abort(reason);
    await assert.rejects(call, (e) => e === reason);
    assert.equal(ran, false);
  });

  for (const how of ['sync', 'async'] as const) {
    it(`store failure (${how}), onStoreError 'allow' (default): the call runs and an event says so`, async () => {
      const boom = new Error('redis down');
      const rl = rateLimiter({
        ratePerSecond: 1,
        burst: 1,
        clock: new FakeClock(),
        store: downStore(how, boom),
      });
      const events: RateLimitStoreErrorEvent[] = [];
      rl.onStoreError((e) => events.push(e));
      assert.equal(await rl.execute(() => 'ran', { key: 'k' }), 'ran');
      assert.equal(await rl.execute(() => 'ran again', { key: 'k' }), 'ran again');
      assert.equal((await rl.tryAcquire('k')).allowed, true);
      assert.equal(events.length, 3);
      assert.deepEqual(events[0], { name: 'rateLimiter', key: 'k', error: boom, action: 'allow' });
    });

    it(`store failure (${how}), onStoreError 'deny': rejects with RateLimitedError (one token's wait)`, async () => {
      const rl = rateLimiter({
        ratePerSecond: 4,
        clock: new FakeClock(),
        store: downStore(how, new Error('redis down')),
        onStoreError: 'deny',
      });
      const actions: string[] = [];
      rl.onStoreError((e) => actions.push(e.action));
      let ran = false;
      await assert.rejects(
        rl.execute(() => {
          ran = true;
        }),
        (e) => e instanceof RateLimitedError && e.retryAfterMs === 250,
      );
      assert.equal(ran, false);
      assert.deepEqual(await rl.tryAcquire('k', 2), { allowed: false, remaining: 0, retryAfterMs: 500 });
      assert.deepEqual(actions, ['deny', 'deny']);
    });

    it(`store failure (${how}), onStoreError = a store: that store decides`, async () => {
      const local = memoryRateLimitStore();
      const rl = rateLimiter({
        ratePerSecond: 1,
        burst: 1,
        clock: new FakeClock(),
        store: downStore(how, new Error('redis down')),
        onStoreError: local,
      });
      const actions: string[] = [];
      rl.onStoreError((e) => actions.push(e.action));
      assert.equal(await rl.execute(() => 1), 1);
      await assert.rejects(
        rl.execute(() => 2),
        RateLimitedError,
      );
      assert.equal(local.size, 1);
      assert.deepEqual(actions, ['fallback-store', 'fallback-store']);
    });
  }

  it('a failing fallback store rejects the call with its own error', async () => {
    const second = new Error('fallback down too');
    const rl = rateLimiter({
      ratePerSecond: 1,
      clock: new FakeClock(),
      store: downStore('async', new Error('primary down')),
      onStoreError: downStore('sync', second),
    });
    await assert.rejects(
      rl.execute(() => 1),
      (e) => e === second,
    );
  });

  it('a throwing listener changes nothing', async () => {
    const errors: unknown[] = [];
    const previous = setListenerErrorHandler((e) => errors.push(e));
    try {
      const rl = rateLimiter({
        ratePerSecond: 1,
        burst: 1,
        clock: new FakeClock(),
        store: downStore('sync', new Error('down')),
        onStoreError: memoryRateLimitStore(),
      });
      rl.onReject(() => {
        throw new Error('listener bug');
      });
      rl.onStoreError(() => {
        throw new Error('listener bug');
      });
      assert.equal(await rl.execute(() => 1), 1);
      await assert.rejects(
        rl.execute(() => 2),
        RateLimitedError,
      );
      assert.equal(errors.length, 3);
    } finally {
      setListenerErrorHandler(previous);
    }
  });
});
