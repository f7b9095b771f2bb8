import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { TimerQueue } from './timer-queue.js';
import { FakeClock, flushMicrotasks } from './clock.js';
import { classify } from './classify.js';
import {
  BulkheadRejectedError,
  CircuitOpenError,
  InvalidOptionError,
  RateLimitedError,
  TimeoutError,
} from './errors.js';
import { setListenerErrorHandler } from './events.js';
import { pipeline } from './policy.js';
import { timeout } from './timeout.js';
import {
  circuitBreaker,
  CIRCUIT_BREAKER_DEFAULTS,
  type CircuitBreakerOptions,
  type CircuitBreakerPolicy,
  type CircuitStateChangeEvent,
} from './circuit-breaker.js';

function deferred<T = unknown>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const ok = () => Promise.resolve('ok');
const boom = () => Promise.reject(new Error('boom'));

function setup(options: CircuitBreakerOptions = {}) {
  const clock = new FakeClock();
  const breaker = circuitBreaker({ strategy: { type: 'consecutive', threshold: 3 }, clock, ...options });
  const changes: CircuitStateChangeEvent[] = [];
  breaker.onStateChange((e) => changes.push(e));
  return { clock, breaker, changes };
}

async function failTimes(breaker: CircuitBreakerPolicy, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await assert.rejects(breaker.execute(boom), /boom/);
}

function isOpenError(reason: string, retryAfterMs?: number) {
  return (e: unknown) =>
    e instanceof CircuitOpenError &&
    e.reason === reason &&
    (retryAfterMs === undefined || e.retryAfterMs === retryAfterMs);
}

describe('circuitBreaker options', () => {
  const bad: [CircuitBreakerOptions | Record<string, unknown>, string][] = [
    [{ openDuration: 10 }, 'circuitBreaker.openDuration'],
    [{ openDurationMs: 0 }, 'circuitBreaker.openDurationMs'],
    [{ openDurationMs: Infinity }, 'circuitBreaker.openDurationMs'],
    [{ failureRateThreshold: 0 }, 'circuitBreaker.failureRateThreshold'],
    [{ failureRateThreshold: 1.5 }, 'circuitBreaker.failureRateThreshold'],
    [{ slowCallRateThreshold: -1 }, 'circuitBreaker.slowCallRateThreshold'],
    [{ slowCallDurationMs: 0 }, 'circuitBreaker.slowCallDurationMs'],
    [{ halfOpenPermits: 0 }, 'circuitBreaker.halfOpenPermits'],
    [{ halfOpenPermits: 1.5 }, 'circuitBreaker.halfOpenPermits'],
    [{ halfOpenTimeoutMs: -5 }, 'circuitBreaker.halfOpenTimeoutMs'],
    [{ mode: 'off' }, 'circuitBreaker.mode'],
    [{ classify: true }, 'circuitBreaker.classify'],
    [{ isFailure: () => true }, 'circuitBreaker.isFailure'],
    [{ name: 5 }, 'circuitBreaker.name'],
    [{ clock: {} }, 'circuitBreaker.clock'],
    [{ strategy: { type: 'ring' } }, 'circuitBreaker.strategy.type'],
    [{ strategy: { type: 'consecutive', threshold: 0 } }, 'circuitBreaker.strategy.threshold'],
    [{ strategy: { type: 'consecutive', failures: 3 } }, 'circuitBreaker.strategy.failures'],
    [{ strategy: { type: 'count', size: 10, minimumCalls: 11 } }, 'circuitBreaker.strategy.minimumCalls'],
    [{ strategy: { type: 'count', size: 10, minimumCalls: 0 } }, 'circuitBreaker.strategy.minimumCalls'],
    [{ strategy: { type: 'time', windowMs: 0 } }, 'circuitBreaker.strategy.windowMs'],
    [{ strategy: { type: 'time', windowMs: 1000, buckets: 0 } }, 'circuitBreaker.strategy.buckets'],
    [{ strategy: { type: 'time', windowMs: 1000, minimumCalls: 0 } }, 'circuitBreaker.strategy.minimumCalls'],
    [{ openDurationBackoff: 2 }, 'circuitBreaker.openDurationBackoff'],
    [
      { openDurationBackoff: { multiplier: 0.5, maxOpenDurationMs: 1e5 } },
      'circuitBreaker.openDurationBackoff.multiplier',
    ],
    [
      { openDurationMs: 10_000, openDurationBackoff: { multiplier: 2, maxOpenDurationMs: 5_000 } },
      'circuitBreaker.openDurationBackoff.maxOpenDurationMs',
    ],
    [{ openDurationBackoff: { multiplier: 2, max: 5 } }, 'circuitBreaker.openDurationBackoff.max'],
    [{ initialState: { version: 2 } }, 'circuitBreaker.initialState'],
  ];
  for (const [options, option] of bad) {
    it(`rejects ${JSON.stringify(options)} naming ${option}`, () => {
      assert.throws(
        () => circuitBreaker(options as CircuitBreakerOptions),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option,
      );
    });
  }

  it('has frozen, documented defaults', () => {
    assert.ok(Object.isFrozen(CIRCUIT_BREAKER_DEFAULTS));
    assert.ok(Object.isFrozen(CIRCUIT_BREAKER_DEFAULTS.strategy));
    const b = circuitBreaker();
    assert.deepEqual(b.strategy, { type: 'time', windowMs: 30_000, buckets: 10, minimumCalls: 20 });
    assert.equal(b.name, 'circuitBreaker');
    assert.equal(b.mode, 'enabled');
    assert.equal(b.failureRateThreshold, 0.5);
    assert.equal(b.openDurationMs, 5_000);
    assert.equal(b.halfOpenPermits, 3);
    assert.equal(b.halfOpenTimeoutMs, 10_000);
    assert.equal(b.slowCallDurationMs, Infinity);
    assert.equal(b.state, 'closed');
    assert.deepEqual(circuitBreaker({ strategy: { type: 'count', size: 5 } }).strategy, {
      type: 'count',
      size: 5,
      minimumCalls: 5,
    });
  });

  it('accepts an open duration longer than the default backoff cap', () => {
    assert.equal(circuitBreaker({ openDurationMs: 120_000 }).openDurationMs, 120_000);
  });
});

describe('circuitBreaker state machine', () => {
  it('closed → open on the strategy trip, then rejects at once without calling the operation', async () => {
    const { clock, breaker, changes } = setup({ name: 'db' });
    await failTimes(breaker, 2);
    assert.equal(breaker.state, 'closed');
    await failTimes(breaker, 1);
    assert.equal(breaker.state, 'open');
    assert.deepEqual(changes, [
      {
        name: 'db',
        from: 'closed',
        to: 'open',
        reason: 'consecutive-failures',
        generation: 1,
        openDurationMs: 5_000,
        by: undefined,
        note: undefined,
        window: { type: 'consecutive', consecutiveFailures: 3, consecutiveSlowCalls: 0 },
      },
    ]);
    clock.advance(1_000);
    let called = 0;
    const rejection = breaker.execute(() => called++);
    await assert.rejects(rejection, (e: unknown) => {
      assert.ok(e instanceof CircuitOpenError);
      assert.equal(e.reason, 'open');
      assert.equal(e.retryAfterMs, 4_000);
      assert.equal(e.breakerName, 'db');
      assert.equal(e.code, 'BULWARK_ERR_CIRCUIT_OPEN');
      // built without a stack trace: only the header line
      assert.equal(e.stack?.split('\n').length, 1);
      return true;
    });
    assert.equal(called, 0);
    assert.equal(clock.pendingTimers, 1, 'one entry in the shared queue: the end of the open duration');
  });

  it('successes in between keep a consecutive breaker closed', async () => {
    const { breaker } = setup();
    for (let i = 0; i < 5; i++) {
      await failTimes(breaker, 2);
      await breaker.execute(ok);
    }
    assert.equal(breaker.state, 'closed');
  });

  it('counts a synchronous throw as a failure', async () => {
    const { breaker } = setup({ strategy: { type: 'consecutive', threshold: 1 } });
    await assert.rejects(
      breaker.execute(() => {
        throw new Error('sync');
      }),
      /sync/,
    );
    assert.equal(breaker.state, 'open');
  });

  it('open → half-open when due, without a call or a read: one shared timer, unref’d', async () => {
    const { clock, breaker, changes } = setup();
    await failTimes(breaker, 3);
    assert.equal(clock.pendingTimers, 1);
    clock.advance(4_999);
    assert.equal(changes.length, 1);
    clock.advance(1);
    assert.equal(changes.length, 2, 'the change is seen when it is due');
    assert.equal(clock.pendingTimers, 0, 'nothing left to wake it for');
    assert.equal(breaker.state, 'half-open');
    assert.equal(breaker.state, 'half-open');
    assert.equal(changes.length, 2, 'one event per transition, however often it is read');
    assert.deepEqual(changes[1], {
      name: 'circuitBreaker',
      from: 'open',
      to: 'half-open',
      reason: 'open-elapsed',
      generation: 2,
      openDurationMs: undefined,
      by: undefined,
      note: undefined,
      window: undefined,
    });
  });

  it('a read or a call before the shared timer fires makes the move too (a clock whose timers run late)', async () => {
    let t = 0;
    const changes: string[] = [];
    // a clock whose timers never fire: only the lazy path can move the breaker
    const lazy = circuitBreaker({
      clock: { now: () => t, setTimeout: () => ({}), clearTimeout: () => {} },
      strategy: { type: 'consecutive', threshold: 1 },
      openDurationMs: 100,
    });
    lazy.onStateChange((e) => changes.push(`${e.from}>${e.to}`));
    await lazy.execute(() => Promise.reject(new Error('down'))).catch(() => {});
    t = 99;
    assert.equal(lazy.state, 'open');
    t = 100;
    assert.equal(lazy.state, 'half-open');
    assert.deepEqual(changes, ['closed>open', 'open>half-open']);
  });

  it('the next call after the open duration is a probe (transition evaluated on the call)', async () => {
    const { clock, breaker, changes } = setup({ halfOpenPermits: 1 });
    await failTimes(breaker, 3);
    clock.advance(5_000);
    assert.equal(await breaker.execute(ok), 'ok');
    assert.deepEqual(
      changes.map((c) => `${c.from}>${c.to}:${c.reason}`),
      ['closed>open:consecutive-failures', 'open>half-open:open-elapsed', 'half-open>closed:probes-passed'],
    );
  });

  it('half-open admits exactly halfOpenPermits probes and rejects the next caller at once', async () => {
    const { clock, breaker } = setup({ halfOpenPermits: 3 });
    await failTimes(breaker, 3);
    clock.advance(5_000);
    const probes = [deferred<string>(), deferred<string>(), deferred<string>()];
    let started = 0;
    const calls = probes.map((d) =>
      breaker.execute(() => {
        started++;
        return d.promise;
      }),
    );
    assert.equal(started, 3);
    let fourthCalled = false;
    const fourth = breaker.execute(() => {
      fourthCalled = true;
      return 'x';
    });
    // rejected without waiting for the probes
    await assert.rejects(fourth, isOpenError('half-open-full', 0));
    assert.equal(fourthCalled, false);
    assert.deepEqual(breaker.metrics.probes, {
      permits: 3,
      inFlight: 3,
      settled: 0,
      failures: 0,
      slowCalls: 0,
    });
    probes[0]!.resolve('a');
    probes[1]!.resolve('b');
    await Promise.all(calls.slice(0, 2));
    assert.equal(breaker.state, 'half-open', 'decides only once every permit settled');
    await assert.rejects(breaker.execute(ok), isOpenError('half-open-full'));
    probes[2]!.resolve('c');
    assert.deepEqual(await Promise.all(calls), ['a', 'b', 'c']);
    assert.equal(breaker.state, 'closed');
  });

  it('half-open closes when the probes failure rate stays under the threshold', async () => {
    const { clock, breaker, changes } = setup({ halfOpenPermits: 3, failureRateThreshold: 0.5 });
    await failTimes(breaker, 3);
    clock.advance(5_000);
    await failTimes(breaker, 1); // 1/3 < 0.5
    await breaker.execute(ok);
    await breaker.execute(ok);
    assert.equal(breaker.state, 'closed');
    assert.equal(changes.at(-1)!.reason, 'probes-passed');
    // the window starts empty after a close
    assert.deepEqual(breaker.metrics.window, {
      type: 'consecutive',
      consecutiveFailures: 0,
      consecutiveSlowCalls: 0,
    });
  });

  it('half-open reopens at once when too many probes failed for the round to pass, and ignores the rest', async () => {
    const { clock, breaker, changes } = setup({ halfOpenPermits: 3 });
    const ignored: string[] = [];
    breaker.onIgnored((e) => ignored.push(e.reason));
    await failTimes(breaker, 3);
    clock.advance(5_000);
    const last = deferred<string>();
    const probes = [breaker.execute(boom), breaker.execute(boom), breaker.execute(() => last.promise)];
    await assert.rejects(probes[0]!);
    await assert.rejects(probes[1]!);
    assert.equal(breaker.state, 'open', 'opened before the third probe settled (2/3 >= 0.5)');
    assert.equal(changes.at(-1)!.reason, 'probes-failed');
    assert.equal(changes.at(-1)!.openDurationMs, 10_000, 'the open duration doubled');
    last.resolve('late');
    assert.equal(await probes[2], 'late');
    assert.deepEqual(ignored, ['stale']);
    assert.equal(breaker.state, 'open');
  });

  it('open duration backs off across failed probe rounds, capped, and resets on close', async () => {
    const { clock, breaker, changes } = setup({
      halfOpenPermits: 1,
      openDurationMs: 1_000,
      openDurationBackoff: { multiplier: 3, maxOpenDurationMs: 5_000 },
    });
    await failTimes(breaker, 3);
    const durations = [changes.at(-1)!.openDurationMs];
    for (let round = 0; round < 3; round++) {
      clock.advance(durations.at(-1)!);
      await failTimes(breaker, 1); // the probe fails
      durations.push(changes.at(-1)!.openDurationMs);
      assert.equal(breaker.metrics.backoffLevel, round + 1);
    }
    assert.deepEqual(durations, [1_000, 3_000, 5_000, 5_000]);
    clock.advance(5_000);
    await breaker.execute(ok);
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.metrics.backoffLevel, 0);
    await failTimes(breaker, 3);
    assert.equal(changes.at(-1)!.openDurationMs, 1_000);
  });

  it('accepts a backoff function of the level; an invalid result falls back to openDurationMs', async () => {
    const levels: number[] = [];
    const { clock, breaker, changes } = setup({
      halfOpenPermits: 1,
      openDurationMs: 1_000,
      openDurationBackoff: (level) => {
        levels.push(level);
        return level === 0 ? 2_000 : NaN;
      },
    });
    await failTimes(breaker, 3);
    assert.equal(changes.at(-1)!.openDurationMs, 2_000);
    clock.advance(2_000);
    await failTimes(breaker, 1);
    assert.equal(changes.at(-1)!.openDurationMs, 1_000);
    assert.deepEqual(levels, [0, 1]);
  });

  it('a throwing openDurationBackoff leaves the breaker consistent: a failed probe round reopens it (issue 14)', async () => {
    const errors: unknown[] = [];
    const previous = setListenerErrorHandler((e) => errors.push(e));
    try {
      const { clock, breaker, changes } = setup({
        halfOpenPermits: 1,
        openDurationMs: 1_000,
        openDurationBackoff: (level) => {
          if (level > 0) throw new Error('backoff bug');
          return 1_000;
        },
      });
      await failTimes(breaker, 3);
      clock.advance(1_000);
      // the probe fails: opening at level 1 calls the throwing backoff
      await assert.rejects(breaker.execute(boom), /boom/);
      assert.equal(breaker.state, 'open');
      assert.deepEqual(
        changes.slice(-1).map((c) => [c.to, c.reason, c.openDurationMs]),
        [['open', 'probes-failed', 1_000]],
      );
      assert.equal(errors.length, 1);
      assert.match(String(errors[0]), /backoff bug/);
      // before the fix: half-open with its one permit used, `half-open-full` for every call, forever
      clock.advance(3_600_000);
      assert.equal(await breaker.execute(ok), 'ok');
      assert.equal(breaker.state, 'closed');
    } finally {
      setListenerErrorHandler(previous);
    }
  });

  it('after a throwing openDurationBackoff, isolate() still isolates (issue 14)', async () => {
    const previous = setListenerErrorHandler(() => {});
    try {
      const { breaker } = setup({
        openDurationMs: 1_500,
        openDurationBackoff: () => {
          throw new Error('backoff bug');
        },
      });
      const first = breaker.isolate();
      assert.equal(breaker.state, 'isolated');
      const rejected = await breaker.execute(ok).catch((e: unknown) => e);
      assert.ok(rejected instanceof CircuitOpenError && rejected.reason === 'isolated');
      assert.equal(rejected.retryAfterMs, 1_500, 'falls back to openDurationMs');
      first.dispose();
      assert.equal(breaker.state, 'half-open');
      // before the fix: the first isolate() threw half-way and every later one silently did nothing
      const second = breaker.isolate();
      assert.equal(breaker.state, 'isolated');
      second.dispose();
    } finally {
      setListenerErrorHandler(previous);
    }
  });

  it('probes that never settle: back to open once the bound passes (when due), as a failed round', async () => {
    const { clock, breaker, changes } = setup({ halfOpenPermits: 2, halfOpenTimeoutMs: 1_000 });
    await failTimes(breaker, 3);
    clock.advance(5_000);
    const hung = deferred<string>();
    const probe = breaker.execute(() => hung.promise);
    clock.advance(500);
    const second = deferred<string>();
    const probe2 = breaker.execute(() => second.promise);
    second.resolve('fine');
    assert.equal(await probe2, 'fine');
    clock.advance(499);
    assert.equal(breaker.state, 'half-open');
    await assert.rejects(breaker.execute(ok), isOpenError('half-open-full', 0));
    clock.advance(1);
    assert.equal(changes.at(-1)!.reason, 'half-open-timeout', 'seen when due, before any call');
    assert.equal(clock.pendingTimers, 1, 'now waiting for the end of the open duration');
    await assert.rejects(breaker.execute(ok), isOpenError('open', 10_000));
    assert.equal(breaker.metrics.backoffLevel, 1);
    hung.resolve('too late');
    assert.equal(await probe, 'too late');
    assert.equal(breaker.state, 'open', 'the hung probe’s late success is from a stale generation');
  });

  it('half-open with no traffic waits (the bound applies to probes in flight, not to idle time)', async () => {
    const { clock, breaker } = setup({ halfOpenPermits: 3, halfOpenTimeoutMs: 1_000 });
    await failTimes(breaker, 3);
    clock.advance(5_000);
    await breaker.execute(ok);
    clock.advance(60_000);
    assert.equal(breaker.state, 'half-open');
    await breaker.execute(ok);
    await breaker.execute(ok);
    assert.equal(breaker.state, 'closed');
  });

  it('a result from a stale generation is ignored', async () => {
    const { clock, breaker } = setup({ halfOpenPermits: 1 });
    const ignored: string[] = [];
    breaker.onIgnored((e) => ignored.push(e.reason));
    const slow = deferred<string>();
    const early = breaker.execute(() => slow.promise); // admitted while closed, generation 0
    await failTimes(breaker, 3);
    clock.advance(5_000);
    await breaker.execute(ok); // probe passes → closed, generation 3
    await failTimes(breaker, 2);
    slow.reject(new Error('late failure'));
    await assert.rejects(early, /late failure/);
    assert.deepEqual(ignored, ['stale']);
    // had it counted, this would be the third failure in a row
    assert.deepEqual(breaker.metrics.window, {
      type: 'consecutive',
      consecutiveFailures: 2,
      consecutiveSlowCalls: 0,
    });
    assert.equal(breaker.state, 'closed');
  });

  it('isolate(): forced open while any handle is held; the last release goes half-open', async () => {
    const { breaker, changes } = setup({ openDurationMs: 7_000 });
    const inFlight = deferred<string>();
    const call = breaker.execute(() => inFlight.promise);
    const a = breaker.isolate();
    const b = breaker.isolate();
    assert.equal(breaker.state, 'isolated');
    await assert.rejects(breaker.execute(ok), isOpenError('isolated', 7_000));
    a.dispose();
    a.dispose(); // idempotent: does not release b's hold
    assert.equal(breaker.state, 'isolated');
    await assert.rejects(breaker.execute(ok), isOpenError('isolated'));
    b.dispose();
    assert.equal(breaker.state, 'half-open');
    assert.deepEqual(
      changes.map((c) => `${c.from}>${c.to}:${c.reason}`),
      ['closed>isolated:isolated', 'isolated>half-open:released'],
    );
    inFlight.reject(new Error('from before the isolation'));
    await assert.rejects(call);
    assert.equal(breaker.state, 'half-open');
    const c = breaker.isolate();
    assert.equal(breaker.state, 'isolated');
    c.dispose();
    await breaker.execute(ok);
    await breaker.execute(ok);
    await breaker.execute(ok);
    assert.equal(breaker.state, 'closed');
  });

  it('an ignored probe gives its permit back', async () => {
    const { clock, breaker } = setup({ halfOpenPermits: 1 });
    await failTimes(breaker, 3);
    clock.advance(5_000);
    const controller = new AbortController();
    const hung = deferred<string>();
    const probe = breaker.execute(() => hung.promise, { signal: controller.signal });
    await assert.rejects(breaker.execute(ok), isOpenError('half-open-full'));
    controller.abort(new Error('caller gave up'));
    hung.reject(new Error('aborted'));
    await assert.rejects(probe, /aborted/);
    assert.equal(breaker.state, 'half-open');
    assert.equal(await breaker.execute(ok), 'ok');
    assert.equal(breaker.state, 'closed');
  });
});

describe('circuitBreaker modes', () => {
  it('disabled: always passes, records nothing, emits nothing, ignores isolation', async () => {
    const { breaker, changes } = setup({ mode: 'disabled' });
    const events: unknown[] = [];
    breaker.onFailure((e) => events.push(e));
    breaker.onSuccess((e) => events.push(e));
    breaker.onReject((e) => events.push(e));
    await failTimes(breaker, 10);
    assert.equal(await breaker.execute(ok), 'ok');
    assert.equal(breaker.state, 'closed');
    const hold = breaker.isolate();
    assert.equal(await breaker.execute(ok), 'ok');
    hold.dispose();
    assert.deepEqual(events, []);
    assert.deepEqual(
      changes.map((c) => c.to),
      ['isolated', 'half-open'],
    );
  });

  it('metrics-only: records, changes state and emits, but never rejects (and does not record what it would have rejected)', async () => {
    const { clock, breaker, changes } = setup({ mode: 'metrics-only', halfOpenPermits: 1 });
    const rejects: unknown[] = [];
    breaker.onReject((e) => rejects.push(e));
    await failTimes(breaker, 3);
    assert.equal(breaker.state, 'open');
    assert.equal(changes.length, 1);
    clock.advance(1_000);
    let called = 0;
    assert.equal(
      await breaker.execute(() => {
        called++;
        return 'ran';
      }),
      'ran',
    );
    await failTimes(breaker, 2); // would have been rejected: not recorded
    assert.equal(called, 1);
    assert.deepEqual(rejects[0], {
      name: 'circuitBreaker',
      key: undefined,
      reason: 'open',
      retryAfterMs: 4_000,
      enforced: false,
    });
    assert.equal(rejects.length, 3);
    clock.advance(4_000);
    await breaker.execute(ok); // the probe
    assert.equal(breaker.state, 'closed');
  });
});

describe('circuitBreaker outcomes', () => {
  it('slow calls trip the breaker by slow-call rate, with onSlowCall events', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({
      clock,
      strategy: { type: 'count', size: 4, minimumCalls: 4 },
      slowCallDurationMs: 100,
      slowCallRateThreshold: 0.5,
    });
    const slow: unknown[] = [];
    breaker.onSlowCall((e) => slow.push(e));
    const taking = (ms: number) => () => {
      clock.advance(ms);
      return 'done';
    };
    await breaker.execute(taking(10));
    await breaker.execute(taking(150), { key: 'k' });
    await breaker.execute(taking(99));
    assert.equal(breaker.state, 'closed');
    await breaker.execute(taking(100)); // 2 of 4 slow: 0.5
    assert.equal(breaker.state, 'open');
    assert.deepEqual(slow[0], {
      name: 'circuitBreaker',
      key: 'k',
      durationMs: 150,
      slowCallDurationMs: 100,
      failed: false,
      probe: false,
    });
    assert.equal(slow.length, 2);
  });

  it('consecutive strategy: opens on threshold slow calls in a row; slow probes reopen it', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({
      clock,
      strategy: { type: 'consecutive', threshold: 2 },
      slowCallDurationMs: 100,
      slowCallRateThreshold: 0.5,
      halfOpenPermits: 2,
    });
    const reasons: string[] = [];
    breaker.onStateChange((e) => reasons.push(e.reason));
    const taking = (ms: number) => () => {
      clock.advance(ms);
      return 'done';
    };
    await breaker.execute(taking(100));
    await breaker.execute(taking(5));
    await breaker.execute(taking(100));
    assert.equal(breaker.state, 'closed');
    await breaker.execute(taking(120));
    assert.equal(breaker.state, 'open');
    clock.advance(5_000);
    await breaker.execute(taking(150)); // 1 slow probe of 2: 0.5 reached, the round cannot pass
    assert.equal(breaker.state, 'open');
    assert.deepEqual(reasons, ['consecutive-slow-calls', 'open-elapsed', 'probes-slow']);
  });

  it('measures durations only when needed', async () => {
    let reads = 0;
    const clock = new FakeClock();
    const counting = {
      now: () => {
        reads++;
        return clock.now();
      },
      setTimeout: clock.setTimeout.bind(clock),
      clearTimeout: clock.clearTimeout.bind(clock),
    };
    const breaker = circuitBreaker({ clock: counting, strategy: { type: 'count', size: 10 } });
    await breaker.execute(ok);
    await assert.rejects(breaker.execute(boom));
    assert.equal(reads, 0, 'no listener, no slow threshold, no time window: no clock read');
    const durations: (number | undefined)[] = [];
    const sub = breaker.onSuccess((e) => durations.push(e.durationMs));
    await breaker.execute(() => {
      clock.advance(7);
      return 1;
    });
    assert.deepEqual(durations, [7]);
    sub.dispose();
    reads = 0;
    await breaker.execute(ok);
    assert.equal(reads, 0);
  });

  it('the time window forgets failures older than windowMs', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({
      clock,
      strategy: { type: 'time', windowMs: 10_000, buckets: 10, minimumCalls: 3 },
    });
    await failTimes(breaker, 2);
    clock.advance(10_000);
    await failTimes(breaker, 1);
    await breaker.execute(ok);
    assert.equal(breaker.state, 'closed', 'the first two failures left the window');
    await failTimes(breaker, 1); // 2 failures of 3 in the window
    assert.equal(breaker.state, 'open');
  });

  it("a caller's abort is never counted; a TimeoutError from a timeout inside the breaker is", async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, strategy: { type: 'consecutive', threshold: 1 } });
    const ignored: unknown[] = [];
    breaker.onIgnored((e) => ignored.push(e.reason));

    // the caller's own signal
    const controller = new AbortController();
    const call = breaker.execute(
      (ctx) =>
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
      { signal: controller.signal },
    );
    controller.abort(new Error('caller left'));
    await assert.rejects(call, /caller left/);
    assert.equal(breaker.state, 'closed');

    // an enclosing timeout aborts the context the breaker received
    const outer = pipeline(timeout({ timeoutMs: 100, clock }), breaker);
    const hanging = outer.execute(
      (ctx) =>
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('stopped')))),
    );
    const settled = assert.rejects(hanging, TimeoutError);
    await clock.advanceAsync(100);
    await settled;
    await flushMicrotasks();
    assert.equal(breaker.state, 'closed');
    assert.deepEqual(ignored, ['aborted', 'aborted']);

    // a timeout inside the breaker: the dependency was too slow, that counts
    const inner = pipeline(breaker, timeout({ timeoutMs: 100, clock }));
    const slow = inner.execute(() => new Promise(() => {}));
    const timedOut = assert.rejects(slow, TimeoutError);
    await clock.advanceAsync(100);
    await timedOut;
    assert.equal(breaker.state, 'open');
  });

  it('classify judges values and errors; "ignore" and "rejected" count as neither', async () => {
    const { breaker } = setup({
      strategy: { type: 'consecutive', threshold: 2 },
      classify: classify
        .error(RangeError, 'ignore')
        .error(SyntaxError, 'rejected')
        .result((v) => v === 'bad', 'failure'),
    });
    const failures: unknown[] = [];
    const ignored: unknown[] = [];
    breaker.onFailure((e) => failures.push(e.ok ? e.value : e.error));
    breaker.onIgnored((e) => ignored.push(e.reason));
    assert.equal(await breaker.execute(() => 'bad'), 'bad');
    await assert.rejects(breaker.execute(() => Promise.reject(new RangeError('not theirs'))));
    await assert.rejects(breaker.execute(() => Promise.reject(new SyntaxError('turned away'))));
    assert.equal(breaker.state, 'closed');
    assert.deepEqual(ignored, ['classified', 'classified']);
    assert.equal(await breaker.execute(() => 'bad'), 'bad');
    assert.equal(breaker.state, 'open');
    assert.deepEqual(failures, ['bad', 'bad']);
  });

  it('a throwing (or nonsense-returning) classifier surfaces its error and records nothing', async () => {
    const { breaker } = setup({
      strategy: { type: 'consecutive', threshold: 1 },
      classify: () => {
        throw new Error('classifier bug');
      },
    });
    await assert.rejects(breaker.execute(ok), /classifier bug/);
    assert.equal(breaker.state, 'closed');
    const nonsense = setup({ strategy: { type: 'consecutive', threshold: 1 }, classify: (() => 1) as never });
    await assert.rejects(nonsense.breaker.execute(boom), /classifier returned 1/);
    assert.equal(nonsense.breaker.state, 'closed');
  });

  it('by default, local rejections from inner policies are ignored', async () => {
    const { breaker } = setup({ strategy: { type: 'consecutive', threshold: 1 } });
    await assert.rejects(breaker.execute(() => Promise.reject(new CircuitOpenError(5, 'open', 'inner'))));
    await assert.rejects(
      breaker.execute(() => Promise.reject(new BulkheadRejectedError('queue-full', 1, 0))),
    );
    await assert.rejects(breaker.execute(() => Promise.reject(new RateLimitedError(5, 'k'))));
    await assert.rejects(breaker.execute(() => Promise.reject(new InvalidOptionError('x', 1, 'y'))));
    assert.equal(breaker.state, 'closed');
    // an error that is the dependency's answer (retryable: false) is a success
    await assert.rejects(
      breaker.execute(() => Promise.reject(Object.assign(new Error('404'), { retryable: false }))),
    );
    assert.equal(breaker.state, 'closed');
    await assert.rejects(breaker.execute(boom));
    assert.equal(breaker.state, 'open');
  });

  it('onFailure and onSuccess carry the outcome, the key and whether it was a probe', async () => {
    const { clock, breaker } = setup({ halfOpenPermits: 1, strategy: { type: 'consecutive', threshold: 1 } });
    const events: unknown[] = [];
    breaker.onFailure((e) => events.push(e));
    breaker.onSuccess((e) => events.push(e));
    const error = new Error('boom');
    await assert.rejects(
      breaker.execute(
        () => {
          clock.advance(3);
          return Promise.reject(error);
        },
        { key: 'k1' },
      ),
    );
    clock.advance(5_000);
    await breaker.execute(ok, { key: 'k2' });
    assert.deepEqual(events, [
      { ok: false, error, name: 'circuitBreaker', key: 'k1', durationMs: 3, probe: false },
      { name: 'circuitBreaker', key: 'k2', durationMs: 0, probe: true },
    ]);
  });

  it('a listener that throws changes nothing', async () => {
    const seen: unknown[] = [];
    const previous = setListenerErrorHandler((e) => seen.push(e));
    try {
      const { clock, breaker } = setup({ halfOpenPermits: 1, slowCallDurationMs: 1 });
      const thrower = () => {
        throw new Error('listener bug');
      };
      breaker.onStateChange(thrower);
      breaker.onFailure(thrower);
      breaker.onSuccess(thrower);
      breaker.onReject(thrower);
      breaker.onSlowCall(thrower);
      breaker.onIgnored(thrower);
      assert.equal(await breaker.execute(ok), 'ok');
      await failTimes(breaker, 3);
      assert.equal(breaker.state, 'open');
      await assert.rejects(breaker.execute(ok), isOpenError('open'));
      clock.advance(5_000);
      assert.equal(await breaker.execute(ok), 'ok');
      assert.equal(breaker.state, 'closed');
      assert.ok(seen.length >= 6);
    } finally {
      setListenerErrorHandler(previous);
    }
  });

  it('a listener may isolate the breaker from inside an event (the outcome is then not recorded)', async () => {
    // the failure would trip the breaker; isolated first, it must stay isolated
    const { breaker } = setup({ strategy: { type: 'consecutive', threshold: 1 } });
    let hold: { dispose(): void } | undefined;
    breaker.onFailure(() => (hold ??= breaker.isolate()));
    await failTimes(breaker, 1);
    assert.equal(breaker.state, 'isolated');
    hold!.dispose();
    assert.equal(breaker.state, 'half-open');
  });
});

describe('circuitBreaker leaks', () => {
  it('leaves no timer, no signal listener and no subscription behind', async () => {
    const { clock, breaker } = setup({ halfOpenPermits: 2, slowCallDurationMs: 50 });
    const controller = new AbortController();
    const subs = [breaker.onSuccess(() => {}), breaker.onFailure(() => {}), breaker.onStateChange(() => {})];
    let successes = 0;
    const counted = breaker.onSuccess(() => successes++);
    for (let i = 0; i < 50; i++) {
      await breaker.execute(ok, { signal: controller.signal });
      await assert.rejects(breaker.execute(boom, { signal: controller.signal }));
    }
    await breaker.execute(ok);
    await failTimes(breaker, 3);
    await assert.rejects(breaker.execute(ok, { signal: controller.signal }), CircuitOpenError);
    clock.advance(5_000);
    await Promise.all([breaker.execute(ok), breaker.execute(ok)]);
    assert.equal(breaker.state, 'closed');
    assert.equal(TimerQueue.for(clock).size, 0, 'nothing queued to wake the breaker');
    clock.advance(10_000); // the shared timer, armed for the probes' timeout, lapses
    assert.equal(clock.pendingTimers, 0);
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    for (const s of subs) s.dispose();
    counted.dispose();
    const before = successes;
    await breaker.execute(ok);
    assert.equal(successes, before, 'a disposed listener is not called');
  });
});
