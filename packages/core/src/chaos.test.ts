// Chaos policies: what each injects, the rate with a seeded source, the run-time switch, events, and
// the waits (abortable, on the FakeClock, no timer left).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { FakeClock, flushMicrotasks } from './clock.js';
import { chaos, type ChaosInjectEvent } from './chaos.js';
import { circuitBreaker } from './circuit-breaker.js';
import { ChaosFaultError, DeadlineExceededError, InvalidOptionError } from './errors.js';
import { pipeline } from './policy.js';
import { seededRandom } from './random.js';
import { retry } from './retry.js';

/** Settled state of a promise without awaiting it. */
function track<T>(p: Promise<T>) {
  const s: { done: boolean; value?: T; error?: unknown } = { done: false };
  p.then(
    (value) => Object.assign(s, { done: true, value }),
    (error: unknown) => Object.assign(s, { done: true, error }),
  );
  return s;
}

describe('chaos', () => {
  it('validates options: rate required within 0 … 1, the kind’s own option, no stray names', () => {
    const bad: [() => unknown, string][] = [
      [() => chaos.fault({} as never), 'chaos.fault.rate'],
      [() => chaos.fault({ rate: 1.5 }), 'chaos.fault.rate'],
      [() => chaos.fault({ rate: NaN }), 'chaos.fault.rate'],
      [() => chaos.fault({ rate: 0.1, latencyMs: 5 } as never), 'chaos.fault.latencyMs'],
      [() => chaos.latency({ rate: 0.1 } as never), 'chaos.latency.latencyMs'],
      [() => chaos.latency({ rate: 0.1, latencyMs: 2 ** 31 }), 'chaos.latency.latencyMs'],
      [() => chaos.latency({ rate: 0.1, latencyMs: -1 }), 'chaos.latency.latencyMs'],
      [() => chaos.outcome({ rate: 0.1 } as never), 'chaos.outcome.outcome'],
      [
        () => chaos.outcome({ rate: 0.1, outcome: () => 1, enabled: 'yes' as never }),
        'chaos.outcome.enabled',
      ],
      [() => chaos.fault({ rate: 0.1, random: 3 as never }), 'chaos.fault.random'],
      [() => chaos.fault({ rate: 0.1, fault: 'down' as never }), 'chaos.fault.fault'],
    ];
    for (const [make, option] of bad) {
      assert.throws(make, (e) => e instanceof InvalidOptionError && e.option === option, option);
    }
  });

  it('fault: fails the call instead of running it; the breaker counts it as a failure', async () => {
    const clock = new FakeClock();
    const fault = chaos.fault({ rate: 1, clock, name: 'validator-chaos' });
    const events: ChaosInjectEvent[] = [];
    fault.onInject((e) => events.push(e));
    const breaker = circuitBreaker({ clock, strategy: { type: 'consecutive', threshold: 2 } });
    let ran = 0;
    for (let i = 0; i < 2; i++) {
      await assert.rejects(
        pipeline(breaker, fault).execute(() => ran++, { key: 'k' }),
        (e) =>
          e instanceof ChaosFaultError &&
          e.code === 'BULWARK_ERR_CHAOS_FAULT' &&
          /validator-chaos/.test(e.message),
      );
    }
    assert.equal(ran, 0);
    assert.equal(breaker.state, 'open');
    assert.deepEqual(events[0], { name: 'validator-chaos', key: 'k', kind: 'fault', latencyMs: undefined });
    // a fault of one's own, fresh per call from a function
    const own = chaos.fault({ rate: 1, fault: (ctx) => new Error(`boom ${ctx.key}`) });
    await assert.rejects(
      own.execute(() => 1, { key: 'x' }),
      /boom x/,
    );
  });

  it('injects into a share `rate` of the calls, reproducibly with a seeded source', async () => {
    const run = async (seed: number) => {
      const fault = chaos.fault({ rate: 0.25, random: seededRandom(seed) });
      const outcomes: boolean[] = [];
      for (let i = 0; i < 4_000; i++) outcomes.push(await fault.execute(() => true).catch(() => false));
      return outcomes;
    };
    const a = await run(42);
    const failed = a.filter((ok) => !ok).length;
    assert.ok(Math.abs(failed / 4_000 - 0.25) < 0.03, `${failed} of 4000`);
    assert.deepEqual(await run(42), a, 'the same seed, the same calls');
    assert.notDeepEqual(await run(43), a);
  });

  it('rate 0 never injects and rate 1 always does; a rate function decides per call', async () => {
    const never = chaos.outcome({ rate: 0, outcome: () => 'fake', random: () => 0 });
    assert.equal(await never.execute(() => 'real'), 'real');
    const always = chaos.outcome({ rate: 1, outcome: () => 'fake', random: () => 0.999_999 });
    assert.equal(await always.execute(() => 'real'), 'fake');
    const perKey = chaos.outcome({ rate: (ctx) => (ctx.key === 'a' ? 1 : 0), outcome: () => 'fake' });
    assert.equal(await perKey.execute(() => 'real', { key: 'a' }), 'fake');
    assert.equal(await perKey.execute(() => 'real', { key: 'b' }), 'real');
  });

  it('a rate function answering anything but a number from 0 to 1 fails the call, saying so', async () => {
    for (const bad of [2, '1', NaN, -0.1, undefined, Infinity]) {
      for (const p of [
        chaos.outcome({ rate: () => bad as never, outcome: () => 'fake' }),
        chaos.fault({ rate: () => bad as never }),
      ]) {
        let ran = 0;
        await assert.rejects(
          p.execute(() => ran++),
          (e) =>
            e instanceof InvalidOptionError &&
            e.option === `chaos.${p.kind}.rate` &&
            /returned/.test(e.message),
          `rate function returning ${String(bad)}`,
        );
        // inside a pipeline too (the inline stage)
        await assert.rejects(
          pipeline(p, retry({ maxAttempts: 1 })).execute(() => ran++),
          (e) => e instanceof InvalidOptionError && e.option === `chaos.${p.kind}.rate`,
        );
        assert.equal(ran, 0);
      }
    }
  });

  it('a fault function returning nothing fails the call with a clear error, not with undefined', async () => {
    for (const nothing of [undefined, null]) {
      const p = chaos.fault({ rate: 1, fault: () => nothing });
      for (const run of [
        () => p.execute(() => 1),
        () => pipeline(p, retry({ maxAttempts: 1 })).execute(() => 1),
      ]) {
        await assert.rejects(
          run(),
          (e) =>
            e instanceof InvalidOptionError &&
            e.option === 'chaos.fault.fault' &&
            /returned nothing/.test(e.message),
        );
      }
    }
  });

  it('the switch: enabled changes at run time; enabled: false builds it off; when narrows it per call', async () => {
    const p = chaos.outcome({ rate: 1, outcome: () => 'fake', enabled: false });
    assert.equal(p.enabled, false);
    assert.equal(await p.execute(() => 'real'), 'real');
    p.enabled = true;
    assert.equal(await p.execute(() => 'real'), 'fake');
    p.enabled = false;
    assert.equal(await pipeline(p).execute(() => 'real'), 'real');
    assert.throws(() => (p.enabled = 'on' as never), TypeError);

    const gameDay = { on: false };
    const q = chaos.outcome({ rate: 1, outcome: () => 'fake', when: () => gameDay.on });
    assert.equal(await q.execute(() => 'real'), 'real');
    gameDay.on = true;
    assert.equal(await q.execute(() => 'real'), 'fake');
  });

  it('latency: waits on the clock, then runs the operation; the wait ends on abort and at the deadline', async () => {
    const clock = new FakeClock();
    const slow = chaos.latency({ rate: 1, latencyMs: 300, clock });
    const events: ChaosInjectEvent[] = [];
    slow.onInject((e) => events.push(e));
    let ranAt = -1;
    const call = track(slow.execute(() => (ranAt = clock.now())));
    await clock.advanceAsync(299);
    assert.equal(call.done, false);
    await clock.advanceAsync(1);
    assert.equal(call.value, 300);
    assert.equal(ranAt, 300);
    assert.equal(events[0]!.latencyMs, 300);

    const controller = new AbortController();
    let ran = false;
    const aborted = track(slow.execute(() => (ran = true), { signal: controller.signal }));
    await clock.advanceAsync(10);
    controller.abort(new Error('left'));
    await flushMicrotasks();
    assert.match(String(aborted.error), /left/);
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);

    const late = track(slow.execute(() => (ran = true), { timeoutMs: 100 }));
    await clock.advanceAsync(100);
    assert.ok(late.error instanceof DeadlineExceededError);
    await clock.advanceAsync(1_000);
    assert.equal(ran, false);
    assert.equal(clock.pendingTimers, 0);
  });

  it('latency inside a pipeline, with retry outside: the injection decided at entry is the one applied', async () => {
    const clock = new FakeClock();
    const rolls = [0.1, 0.9, 0.1]; // inject, do not, inject
    const slow = chaos.latency({ rate: 0.5, latencyMs: 50, clock, random: () => rolls.shift() ?? 0.9 });
    let calls = 0;
    const p = pipeline(retry({ clock, maxAttempts: 1 }), slow);
    const first = track(p.execute(() => ++calls));
    await clock.advanceAsync(49);
    assert.equal(calls, 0);
    await clock.advanceAsync(1);
    assert.equal(first.value, 1);
    assert.equal(await p.execute(() => ++calls), 2, 'not injected: runs at once');
    const third = track(p.execute(() => ++calls));
    await clock.advanceAsync(50);
    assert.equal(third.value, 3);
  });

  it('a throwing rate, when or fault function fails the call with its error', async () => {
    const boom = () => {
      throw new Error('callback bug');
    };
    await assert.rejects(
      chaos.fault({ rate: boom }).execute(() => 1),
      /callback bug/,
    );
    await assert.rejects(
      chaos.fault({ rate: 1, when: boom }).execute(() => 1),
      /callback bug/,
    );
    await assert.rejects(
      chaos.fault({ rate: 1, fault: boom }).execute(() => 1),
      /callback bug/,
    );
    await assert.rejects(
      pipeline(chaos.fault({ rate: boom })).execute(() => 1),
      /callback bug/,
    );
  });
});
