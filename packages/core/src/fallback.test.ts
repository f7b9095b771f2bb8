import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.js';
import { InvalidOptionError, TimeoutError } from './errors.js';
import { setListenerErrorHandler } from './events.js';
import { fallback, type FallbackEvent } from './fallback.js';
import { timeout } from './timeout.js';
import { pipeline, type Outcome } from './policy.js';
import type { CallContext } from './context.js';

const optionIs = (name: string) => (e: unknown) => e instanceof InvalidOptionError && e.option === name;

/** An operation that never settles on its own and rejects with the abort reason, as fetch does. */
const untilAborted = (ctx: CallContext) =>
  new Promise<string>((_, reject) => {
    ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
  });

describe('fallback', () => {
  it('validates options at construction, naming the option', () => {
    assert.throws(() => fallback({} as never), optionIs('fallback.fallback'));
    assert.throws(() => fallback({ fallback: 1 } as never), optionIs('fallback.fallback'));
    assert.throws(
      () => fallback({ fallback: () => 1, shouldFallback: true as never }),
      optionIs('fallback.shouldFallback'),
    );
    assert.throws(
      () => fallback({ fallback: () => 1, onError: () => 1 } as never),
      optionIs('fallback.onError'),
    );
  });

  it('on failure, answers with the fallback, which receives the error and the call context', async () => {
    const seen: { reason: Outcome<string>; ctx: CallContext }[] = [];
    const f = fallback<string>({
      fallback: (reason, ctx) => {
        seen.push({ reason, ctx });
        return 'cached';
      },
      clock: new FakeClock(),
    });
    const boom = new Error('down');
    const ac = new AbortController();
    assert.equal(await f.execute(() => Promise.reject(boom), { key: 'user:1', signal: ac.signal }), 'cached');
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0]!.reason, { ok: false, error: boom });
    assert.equal(seen[0]!.ctx.key, 'user:1');
    assert.equal(seen[0]!.ctx.signal, ac.signal, 'the fallback gets the signal of the call');
  });

  it('a synchronous throw and an async fallback work too', async () => {
    const f = fallback({ fallback: async () => 'later', clock: new FakeClock() });
    assert.equal(
      await f.execute(() => {
        throw new Error('sync');
      }),
      'later',
    );
  });

  it('passes values through by default (no fallback on a result)', async () => {
    let used = 0;
    const f = fallback({ fallback: () => used++, clock: new FakeClock() });
    assert.equal(await f.execute(() => 7), 7);
    assert.equal(used, 0);
  });

  it('on a result judged bad by shouldFallback, the fallback receives the value', async () => {
    type Res = { status: number; body: string };
    const reasons: Outcome<Res>[] = [];
    const f = fallback<Res>({
      shouldFallback: (o) => !o.ok || o.value.status >= 500,
      fallback: (reason) => {
        reasons.push(reason);
        return { status: 200, body: 'stale copy' };
      },
      clock: new FakeClock(),
    });
    const bad = { status: 503, body: 'busy' };
    assert.deepEqual(await f.execute(() => bad), { status: 200, body: 'stale copy' });
    assert.deepEqual(reasons, [{ ok: true, value: bad }]);
    assert.deepEqual(await f.execute(() => ({ status: 200, body: 'fresh' })), { status: 200, body: 'fresh' });
    assert.equal(reasons.length, 1);
  });

  it('shouldFallback filters errors: others are rethrown unchanged', async () => {
    const f = fallback({
      shouldFallback: (o) => !o.ok && o.error instanceof TypeError,
      fallback: () => 'fb',
      clock: new FakeClock(),
    });
    assert.equal(await f.execute(() => Promise.reject(new TypeError('t'))), 'fb');
    const other = new RangeError('r');
    await assert.rejects(
      f.execute(() => Promise.reject(other)),
      (e) => e === other,
    );
  });

  it("does not answer a caller's abort: the call rejects with signal.reason", async () => {
    let used = 0;
    const f = fallback({ fallback: () => `fb${used++}`, clock: new FakeClock() });
    const ac = new AbortController();
    const call = f.execute(untilAborted, { signal: ac.signal });
    const reason = new Error('caller left');
    ac.abort(reason);
    await assert.rejects(call, (e) => e === reason);
    assert.equal(used, 0);
  });

  it('does not answer an enclosing timeout, but does answer a timeout placed inside it', async () => {
    const clock = new FakeClock();
    const reasons: Outcome[] = [];
    const f = fallback({
      fallback: (reason) => {
        reasons.push(reason);
        return 'degraded';
      },
      clock,
    });
    const outer = timeout({ timeoutMs: 100, clock });
    const outside = assert.rejects(pipeline(outer, f).execute(untilAborted), TimeoutError);
    await clock.advanceAsync(100);
    await outside;
    assert.equal(reasons.length, 0);

    const inner = timeout({ timeoutMs: 100, clock });
    const inside = pipeline(f, inner).execute(untilAborted);
    await clock.advanceAsync(100);
    assert.equal(await inside, 'degraded');
    assert.equal(reasons.length, 1);
    assert.ok(!reasons[0]!.ok && reasons[0]!.error instanceof TimeoutError);
    outer.dispose();
    inner.dispose();
    assert.equal(clock.pendingTimers, 0);
  });

  it('a fallback that throws fails the call with its error', async () => {
    const second = new Error('no fallback either');
    const f = fallback({
      fallback: () => {
        throw second;
      },
      clock: new FakeClock(),
    });
    await assert.rejects(
      f.execute(() => Promise.reject(new Error('first'))),
      (e) => e === second,
    );
  });

  it('emits onFallback with the reason; a throwing listener changes nothing', async () => {
    const errors: unknown[] = [];
    const previous = setListenerErrorHandler((e) => errors.push(e));
    try {
      const f = fallback({ fallback: () => 'fb', clock: new FakeClock(), name: 'profile' });
      const events: FallbackEvent[] = [];
      f.onFallback((e) => events.push(e));
      f.onFallback(() => {
        throw new Error('listener bug');
      });
      const boom = new Error('x');
      assert.equal(await f.execute(() => Promise.reject(boom), { key: 'k' }), 'fb');
      assert.deepEqual(events, [{ name: 'profile', key: 'k', reason: { ok: false, error: boom } }]);
      assert.equal(errors.length, 1);
    } finally {
      setListenerErrorHandler(previous);
    }
  });
});
