import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.js';
import { InvalidOptionError } from './errors.js';
import {
  circuitBreaker,
  type CircuitBreakerOptions,
  type CircuitBreakerSnapshot,
} from './circuit-breaker.js';

const boom = () => Promise.reject(new Error('boom'));
const ok = () => 'ok';

/** Through JSON, as a snapshot travels between processes. */
const wire = (s: CircuitBreakerSnapshot): CircuitBreakerSnapshot => JSON.parse(JSON.stringify(s));

function isInitialStateError(e: unknown): boolean {
  return e instanceof InvalidOptionError && e.option === 'circuitBreaker.initialState';
}

describe('circuitBreaker toJSON / initialState', () => {
  it('round-trips a closed breaker with its count window', async () => {
    const clock = new FakeClock();
    const options: CircuitBreakerOptions = { clock, strategy: { type: 'count', size: 5, minimumCalls: 4 } };
    const a = circuitBreaker(options);
    await a.execute(ok);
    await assert.rejects(a.execute(boom));
    await assert.rejects(a.execute(boom));
    const snap = a.toJSON();
    assert.equal(snap.version, 1);
    assert.equal(snap.state, 'closed');
    assert.equal(snap.openRemainingMs, 0);
    assert.deepEqual(snap.window, { type: 'count', outcomes: [0, 1, 1] });
    const b = circuitBreaker({ ...options, clock: new FakeClock(123_456), initialState: wire(snap) });
    assert.deepEqual(b.metrics.window, a.metrics.window);
    await b.execute(ok); // 2 of 4 failed: the restored window trips the rate at the 4th call
    assert.equal(b.state, 'open');
  });

  it('round-trips an open breaker: remaining open time and backoff level, in another clock', async () => {
    const clock = new FakeClock();
    const options: CircuitBreakerOptions = {
      clock,
      strategy: { type: 'consecutive', threshold: 1 },
      halfOpenPermits: 1,
      openDurationMs: 10_000,
    };
    const a = circuitBreaker(options);
    await assert.rejects(a.execute(boom));
    clock.advance(10_000);
    await assert.rejects(a.execute(boom)); // failed probe: level 1, open for 20 s
    clock.advance(5_000);
    const snap = wire(a.toJSON());
    assert.equal(snap.state, 'open');
    assert.equal(snap.openRemainingMs, 15_000);
    assert.equal(snap.backoffLevel, 1);
    assert.ok(Math.abs(snap.savedAtEpochMs - Date.now()) < 60_000);

    const other = new FakeClock(987_654);
    const b = circuitBreaker({ ...options, clock: other, initialState: snap });
    assert.equal(b.state, 'open');
    // a few real milliseconds may pass between export and restore: allow one second of slack
    other.advance(14_000);
    assert.equal(b.state, 'open');
    other.advance(1_001);
    assert.equal(b.state, 'half-open');
    await assert.rejects(b.execute(boom)); // failed probe continues the backoff: 10 s × 2² = 40 s
    assert.equal(b.metrics.backoffLevel, 2);
    assert.equal(b.metrics.openRemainingMs, 40_000);
  });

  it('subtracts the wall-clock time that passed since the export', () => {
    const snap: CircuitBreakerSnapshot = {
      version: 1,
      state: 'open',
      savedAtEpochMs: Date.now() - 3_000,
      openRemainingMs: 5_000,
      backoffLevel: 0,
      window: { type: 'consecutive', consecutiveFailures: 0, consecutiveSlowCalls: 0 },
    };
    const clock = new FakeClock();
    const b = circuitBreaker({ clock, openDurationMs: 5_000, initialState: snap });
    const left = b.metrics.openRemainingMs;
    assert.ok(left <= 2_000 && left > 1_000, `expected about 2000 ms left, got ${left}`);
    const expired = circuitBreaker({ clock, initialState: { ...snap, savedAtEpochMs: Date.now() - 60_000 } });
    assert.equal(expired.state, 'half-open');
  });

  it('never stays open longer than its own configuration would (a corrupt or foreign remaining time)', () => {
    const clock = new FakeClock();
    const b = circuitBreaker({
      clock,
      openDurationMs: 1_000,
      openDurationBackoff: { multiplier: 2, maxOpenDurationMs: 8_000 },
      initialState: {
        version: 1,
        state: 'open',
        savedAtEpochMs: Date.now(),
        openRemainingMs: 1e12,
        backoffLevel: 1,
        window: { type: 'time', buckets: [] },
      },
    });
    assert.ok(b.metrics.openRemainingMs <= 2_000);
  });

  it('exports half-open and isolated as open with no time left: the restored breaker probes first', async () => {
    const clock = new FakeClock();
    const a = circuitBreaker({ clock, strategy: { type: 'consecutive', threshold: 1 } });
    const hold = a.isolate();
    const isolated = a.toJSON();
    assert.equal(isolated.state, 'open');
    assert.equal(isolated.openRemainingMs, 0);
    hold.dispose();
    assert.equal(a.state, 'half-open');
    assert.equal(a.toJSON().state, 'open');
    const b = circuitBreaker({ clock, initialState: wire(isolated) });
    assert.equal(b.state, 'half-open');
  });

  it('round-trips the time window through another process clock', async () => {
    const clock = new FakeClock(50_000);
    const strategy = { type: 'time', windowMs: 10_000, buckets: 10, minimumCalls: 5 } as const;
    const a = circuitBreaker({ clock, strategy });
    for (let i = 0; i < 4; i++) {
      await assert.rejects(a.execute(boom));
      clock.advance(1_000);
    }
    const b = circuitBreaker({ clock: new FakeClock(0), strategy, initialState: wire(a.toJSON()) });
    assert.deepEqual(b.metrics.window, a.metrics.window);
    await assert.rejects(b.execute(boom)); // 5 of 5: opens
    assert.equal(b.state, 'open');
  });

  it('a snapshot of another strategy type restores the state but starts with an empty window', async () => {
    const clock = new FakeClock();
    const a = circuitBreaker({ clock, strategy: { type: 'count', size: 10 } });
    await assert.rejects(a.execute(boom));
    const b = circuitBreaker({
      clock,
      strategy: { type: 'consecutive', threshold: 5 },
      initialState: wire(a.toJSON()),
    });
    assert.deepEqual(b.metrics.window, {
      type: 'consecutive',
      consecutiveFailures: 0,
      consecutiveSlowCalls: 0,
    });
  });

  it('rejects a malformed snapshot, naming circuitBreaker.initialState and what is wrong', () => {
    const good: CircuitBreakerSnapshot = {
      version: 1,
      state: 'closed',
      savedAtEpochMs: 1,
      openRemainingMs: 0,
      backoffLevel: 0,
      window: { type: 'count', outcomes: [0, 1, 2, 3] },
    };
    assert.equal(circuitBreaker({ initialState: good }).state, 'closed');
    const broken: [unknown, RegExp][] = [
      [null, /an object/],
      ['{}', /an object/],
      [{ ...good, version: 2 }, /version/],
      [{ ...good, state: 'half-open' }, /state/],
      [{ ...good, savedAtEpochMs: 'yesterday' }, /savedAtEpochMs/],
      [{ ...good, openRemainingMs: -1 }, /openRemainingMs/],
      [{ ...good, openRemainingMs: null }, /openRemainingMs/],
      [{ ...good, backoffLevel: 1.5 }, /backoffLevel/],
      [{ ...good, window: { type: 'count', outcomes: [4] } }, /window/],
      [{ ...good, window: { type: 'time', buckets: [[0, 1, 2, 0]] } }, /window/],
      [
        { ...good, window: { type: 'consecutive', consecutiveFailures: -1, consecutiveSlowCalls: 0 } },
        /window/,
      ],
      [{ ...good, window: { type: 'ring' } }, /window/],
      [{ ...good, extra: true }, /unknown field "extra"/],
    ];
    for (const [initialState, message] of broken) {
      assert.throws(
        () => circuitBreaker({ initialState: initialState as CircuitBreakerSnapshot }),
        (e: unknown) => isInitialStateError(e) && message.test((e as Error).message),
        JSON.stringify(initialState),
      );
    }
  });
});
