// The breaker by hand (open / close / reset, with who and why), the trip record, and the shared wheel that
// makes due transitions visible without traffic.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { FakeClock } from './clock.js';
import { TimerQueue } from './timer-queue.js';
import { circuitBreaker, type CircuitStateChangeEvent } from './circuit-breaker.js';
import { CircuitOpenError, InvalidOptionError } from './errors.js';

const fail = () => Promise.reject(new Error('down'));
const ok = () => 'up';

function setup(options: Parameters<typeof circuitBreaker>[0] = {}) {
  const clock = new FakeClock();
  const breaker = circuitBreaker({ clock, strategy: { type: 'consecutive', threshold: 2 }, ...options });
  const changes: CircuitStateChangeEvent[] = [];
  breaker.onStateChange((e) => changes.push(e));
  return { clock, breaker, changes };
}

describe('circuitBreaker by hand', () => {
  it('open(): a closed breaker opens as if it had tripped, with who and why, and keeps its own probe schedule', async () => {
    const { clock, breaker, changes } = setup({ openDurationMs: 1_000 });
    assert.equal(breaker.open({ by: 'fleet:instance-7', note: 'failure-rate 0.62 over 40 calls' }), true);
    assert.equal(breaker.state, 'open');
    assert.deepEqual(
      { ...changes[0] },
      {
        name: 'circuitBreaker',
        from: 'closed',
        to: 'open',
        reason: 'manual-open',
        generation: 1,
        openDurationMs: 1_000,
        by: 'fleet:instance-7',
        note: 'failure-rate 0.62 over 40 calls',
        window: undefined,
      },
    );
    await assert.rejects(
      breaker.execute(ok),
      (e) => e instanceof CircuitOpenError && e.retryAfterMs === 1_000,
    );
    assert.equal(breaker.open({ by: 'fleet:instance-8' }), false, 'already open: its schedule stands');
    clock.advance(1_000);
    assert.equal(breaker.state, 'half-open', 'its own open duration, then its own probes');
    assert.equal(breaker.open(), false, 'half-open: probing on its own schedule');
    for (let i = 0; i < 3; i++) assert.equal(await breaker.execute(ok), 'up');
    assert.equal(breaker.state, 'closed');
  });

  it('open({ openDurationMs }) sets how long; the backoff level is unchanged', () => {
    const { clock, breaker } = setup();
    breaker.open({ openDurationMs: 250 });
    assert.equal(breaker.metrics.openRemainingMs, 250);
    assert.equal(breaker.metrics.backoffLevel, 0);
    clock.advance(250);
    assert.equal(breaker.state, 'half-open');
  });

  it('close(): an open or half-open breaker closes, empty window, backoff level 0', async () => {
    const { clock, breaker, changes } = setup({ openDurationMs: 100 });
    assert.equal(breaker.close({ by: 'alice' }), false, 'closed already');
    for (let i = 0; i < 2; i++) await breaker.execute(fail).catch(() => {});
    clock.advance(100);
    await breaker.execute(fail).catch(() => {}); // one probe of three failed: still half-open
    assert.equal(breaker.state, 'half-open');
    assert.equal(breaker.close({ by: 'alice', note: 'validator fixed, INC-42' }), true);
    assert.equal(breaker.state, 'closed');
    const last = changes.at(-1)!;
    assert.equal(last.reason, 'manual-close');
    assert.equal(last.by, 'alice');
    assert.equal(last.note, 'validator fixed, INC-42');
    assert.equal(breaker.metrics.backoffLevel, 0);
    assert.deepEqual(breaker.metrics.window, {
      type: 'consecutive',
      consecutiveFailures: 0,
      consecutiveSlowCalls: 0,
    });
    assert.equal(breaker.metrics.trip, undefined);
    assert.equal(TimerQueue.for(clock).size, 0, 'nothing left to wake it for');
  });

  it('reset(): back to a fresh closed breaker from any state, closed included (calls in flight go stale)', async () => {
    const { breaker, changes } = setup();
    await breaker.execute(fail).catch(() => {});
    let release!: () => void;
    const inFlight = breaker.execute(() => new Promise<void>((r) => (release = r)).then(fail));
    assert.equal(breaker.reset({ by: 'ops', note: 'after the deploy' }), true);
    assert.deepEqual(
      [changes.at(-1)!.from, changes.at(-1)!.to, changes.at(-1)!.reason, changes.at(-1)!.by],
      ['closed', 'closed', 'reset', 'ops'],
    );
    assert.deepEqual(breaker.metrics.window, {
      type: 'consecutive',
      consecutiveFailures: 0,
      consecutiveSlowCalls: 0,
    });
    release();
    await inFlight.catch(() => {});
    assert.deepEqual(
      breaker.metrics.window,
      { type: 'consecutive', consecutiveFailures: 0, consecutiveSlowCalls: 0 },
      'the call from before the reset is stale',
    );
    breaker.open();
    assert.equal(breaker.reset(), true);
    assert.equal(breaker.state, 'closed');
  });

  it('isolation wins: open, close and reset do nothing while an isolate() handle is held', () => {
    const { breaker } = setup();
    const handle = breaker.isolate();
    assert.equal(breaker.close({ by: 'alice' }), false);
    assert.equal(breaker.reset(), false);
    assert.equal(breaker.open(), false);
    assert.equal(breaker.state, 'isolated');
    handle.dispose();
    assert.equal(breaker.state, 'half-open');
  });

  it('validates what it is given', () => {
    const { breaker } = setup();
    const bad: [() => unknown, string][] = [
      [() => breaker.open({ by: 7 } as never), 'circuitBreaker.open.by'],
      [() => breaker.open({ openDurationMs: 0 }), 'circuitBreaker.open.openDurationMs'],
      [() => breaker.open({ openDurationMs: Infinity }), 'circuitBreaker.open.openDurationMs'],
      [() => breaker.close({ reason: 'x' } as never), 'circuitBreaker.close.reason'],
      [() => breaker.reset('now' as never), 'circuitBreaker.reset'],
      [() => breaker.close({ note: null } as never), 'circuitBreaker.close.note'],
    ];
    for (const [call, option] of bad) {
      assert.throws(call, (e) => e instanceof InvalidOptionError && e.option === option, option);
    }
    assert.equal(breaker.state, 'closed');
  });
});

describe('the trip record', () => {
  it('keeps the window that tripped the breaker: in the open event, metrics and toJSON, until it closes', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({
      clock,
      strategy: { type: 'count', size: 10, minimumCalls: 4 },
      openDurationMs: 100,
      halfOpenPermits: 1,
    });
    const changes: CircuitStateChangeEvent[] = [];
    breaker.onStateChange((e) => changes.push(e));
    await breaker.execute(ok);
    for (let i = 0; i < 3; i++) await breaker.execute(fail).catch(() => {});
    const window = { type: 'count', calls: 4, failures: 3, slowCalls: 0, failureRate: 0.75, slowCallRate: 0 };
    assert.deepEqual(changes[0]!.window, window);
    assert.deepEqual(breaker.metrics.trip, {
      reason: 'failure-rate',
      window,
      atEpochMs: breaker.metrics.trip!.atEpochMs,
      by: undefined,
      note: undefined,
    });
    assert.ok(Math.abs(breaker.metrics.trip!.atEpochMs - Date.now()) < 60_000);
    // a failed probe round reopens it: the record of the first trip stays
    clock.advance(100);
    await breaker.execute(fail).catch(() => {});
    assert.equal(changes.at(-1)!.reason, 'probes-failed');
    assert.equal(changes.at(-1)!.window, undefined);
    assert.deepEqual(breaker.metrics.trip!.window, window);
    const saved = JSON.parse(JSON.stringify(breaker.toJSON())) as ReturnType<typeof breaker.toJSON>;
    assert.deepEqual(saved.trip, {
      reason: 'failure-rate',
      window,
      atEpochMs: breaker.metrics.trip!.atEpochMs,
    });
    // restored elsewhere, it still says why it is open
    const restored = circuitBreaker({ strategy: { type: 'count', size: 10 }, initialState: saved });
    assert.equal(restored.state, 'open');
    assert.deepEqual(restored.metrics.trip!.window, window);
    // closing forgets it
    clock.advance(200);
    await breaker.execute(ok);
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.metrics.trip, undefined);
    assert.equal(breaker.toJSON().trip, undefined);
  });

  it('an initialState with a malformed trip is refused, naming what is wrong', () => {
    const base = {
      version: 1,
      state: 'open',
      savedAtEpochMs: Date.now(),
      openRemainingMs: 100,
      backoffLevel: 0,
      window: { type: 'consecutive', consecutiveFailures: 0, consecutiveSlowCalls: 0 },
    };
    const bad: [unknown, RegExp][] = [
      [{ reason: 'bored', atEpochMs: 1 }, /trip.reason/],
      [{ reason: 'failure-rate', atEpochMs: 'yesterday' }, /trip.atEpochMs/],
      [{ reason: 'failure-rate', atEpochMs: 1, window: { type: 'count', calls: -1 } }, /trip.window/],
      [{ reason: 'manual-open', atEpochMs: 1, by: 5 }, /trip.by/],
      [{ reason: 'manual-open', atEpochMs: 1, extra: true }, /trip.extra/],
      ['tripped', /trip must be an object/],
    ];
    for (const [trip, message] of bad) {
      assert.throws(
        () => circuitBreaker({ initialState: { ...base, trip } as never }),
        (e) => e instanceof InvalidOptionError && message.test(e.message),
        String(message),
      );
    }
  });
});

describe('the shared wheel', () => {
  it('a thousand open breakers on one clock use one timer, and each changes when it is due', async () => {
    const clock = new FakeClock();
    const breakers = Array.from({ length: 1_000 }, (_, i) =>
      circuitBreaker({ clock, strategy: { type: 'consecutive', threshold: 1 }, openDurationMs: 100 + i }),
    );
    let halfOpen = 0;
    for (const b of breakers) {
      b.onStateChange((e) => {
        if (e.to === 'half-open') halfOpen++;
      });
      await b.execute(fail).catch(() => {});
    }
    assert.equal(clock.pendingTimers, 1);
    clock.advance(100);
    assert.equal(halfOpen, 1);
    clock.advance(499);
    assert.equal(halfOpen, 500);
    clock.advance(500);
    assert.equal(halfOpen, 1_000);
    assert.equal(clock.pendingTimers, 0);
  });

  it('with the real clock the shared timer never keeps the process alive', async () => {
    // a process whose only work left is an open breaker's wake-up 60 s away exits at once
    const script = `
      import { circuitBreaker } from ${JSON.stringify(new URL('./index.js', import.meta.url).href)};
      const breaker = circuitBreaker({ strategy: { type: 'consecutive', threshold: 1 }, openDurationMs: 60_000 });
      await breaker.execute(() => Promise.reject(new Error('down'))).catch(() => {});
      if (breaker.state !== 'open') process.exit(3);
    `;
    const started = performance.now();
    const { code, signal } = await new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
      const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('exit', (code, signal) => {
        clearTimeout(guard);
        resolve({ code, signal });
      });
    });
    assert.equal(
      signal,
      null,
      `the child did not exit by itself (${Math.round(performance.now() - started)} ms)`,
    );
    assert.equal(code, 0);
  });

  it('a disabled breaker schedules nothing', () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, mode: 'disabled' });
    breaker.open();
    assert.equal(clock.pendingTimers, 0);
  });
});
