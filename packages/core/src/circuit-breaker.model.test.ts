/**
 * Model-based test of the circuit breaker (RELIABILITY.md T1.1): fast-check generates command sequences
 * (immediate calls, calls left in flight and settled later, clock advances, isolate / release, open /
 * close / reset by hand) and runs
 * each against the real breaker on a FakeClock and against a small reference model written from the
 * specification: a plain array of recorded outcomes instead of rings and counters, probes as a list.
 * After every command the breaker's state, generation, backoff level, open time left, window contents,
 * probe round and transition events must equal the model's; every call must be admitted or rejected
 * (with the same reason and `retryAfterMs`) exactly as the model says.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FakeClock } from './clock.js';
import { TimerQueue } from './timer-queue.js';
import type { Disposable } from './events.js';
import { CircuitOpenError } from './errors.js';
import {
  circuitBreaker,
  type CircuitBreakerMode,
  type CircuitBreakerPolicy,
  type CircuitBreakerStrategy,
} from './circuit-breaker.js';

const OPEN_MS = 100;
const MAX_OPEN_MS = 800;
const HALF_OPEN_TIMEOUT_MS = 300;
const SLOW_MS = 50;

interface Config {
  strategy: CircuitBreakerStrategy;
  failureRateThreshold: number;
  slowCallRateThreshold: number;
  halfOpenPermits: number;
  mode: CircuitBreakerMode;
}

type State = 'closed' | 'open' | 'half-open' | 'isolated';

interface Recorded {
  at: number;
  failed: boolean;
  slow: boolean;
}

interface Pending {
  id: number;
  /** Generation it was admitted in; undefined: not admitted (metrics-only ran it anyway). */
  gen: number | undefined;
  probe: boolean;
  start: number;
}

/** The reference model: the specification, written as plainly as possible. */
class Model {
  state: State = 'closed';
  gen = 0;
  now = 0;
  openUntil = 0;
  level = 0;
  isolations = 0;
  history: Recorded[] = [];
  probeStarts: { id: number; start: number }[] = [];
  probesSettled = 0;
  probeFailures = 0;
  probeSlow = 0;
  pending: Pending[] = [];
  transitions: string[] = [];
  nextId = 0;
  constructor(readonly config: Config) {}

  duration(level: number): number {
    return Math.min(MAX_OPEN_MS, OPEN_MS * 2 ** level);
  }

  go(to: State, reason: string): void {
    this.transitions.push(`${this.state}>${to}:${reason}`);
    this.state = to;
    this.gen++;
    if (to === 'open' || to === 'closed' || to === 'isolated') this.history = [];
    if (to === 'half-open') {
      this.probeStarts = [];
      this.probesSettled = this.probeFailures = this.probeSlow = 0;
    }
  }

  open(reason: string, level: number, at = this.now): void {
    this.level = level;
    this.openUntil = at + this.duration(level);
    this.go('open', reason);
  }

  /**
   * Applies the transitions due by now, each at the moment it was due (the breaker's shared timer makes
   * them then, not at the next call): a probe round that timed out reopens the breaker from its due time.
   */
  refresh(): void {
    for (;;) {
      if (this.state === 'open' && this.now >= this.openUntil) {
        this.go('half-open', 'open-elapsed');
        continue;
      }
      if (this.state === 'half-open' && this.probeStarts.length > 0) {
        const due = Math.min(...this.probeStarts.map((p) => p.start)) + HALF_OPEN_TIMEOUT_MS;
        if (this.now >= due) {
          this.open('half-open-timeout', this.level + 1, due);
          continue;
        }
      }
      return;
    }
  }

  /** The window the strategy judges. */
  window(): Recorded[] {
    const s = this.config.strategy;
    if (s.type === 'count') return this.history.slice(-s.size);
    if (s.type === 'time') {
      const bucketMs = s.windowMs / s.buckets!;
      const head = Math.floor(this.now / bucketMs);
      return this.history.filter((r) => Math.floor(r.at / bucketMs) > head - s.buckets!);
    }
    return this.history;
  }

  run(key: 'failed' | 'slow'): number {
    let n = 0;
    for (let i = this.history.length - 1; i >= 0 && this.history[i]![key]; i--) n++;
    return n;
  }

  trip(): string | undefined {
    const s = this.config.strategy;
    if (s.type === 'consecutive') {
      if (this.run('failed') >= s.threshold) return 'consecutive-failures';
      if (this.run('slow') >= s.threshold) return 'consecutive-slow-calls';
      return undefined;
    }
    const w = this.window();
    if (w.length < s.minimumCalls!) return undefined;
    if (w.filter((r) => r.failed).length / w.length >= this.config.failureRateThreshold)
      return 'failure-rate';
    if (w.filter((r) => r.slow).length / w.length >= this.config.slowCallRateThreshold)
      return 'slow-call-rate';
    return undefined;
  }

  /** A call arrives: admitted (as a probe or not) or rejected. */
  admit(): { admitted: true; probe: boolean } | { admitted: false; reason: string; retryAfterMs: number } {
    if (this.state === 'isolated')
      return { admitted: false, reason: 'isolated', retryAfterMs: this.duration(this.level) };
    this.refresh();
    if (this.state === 'closed') return { admitted: true, probe: false };
    if (this.state === 'half-open') {
      if (this.probeStarts.length + this.probesSettled < this.config.halfOpenPermits)
        return { admitted: true, probe: true };
      return { admitted: false, reason: 'half-open-full', retryAfterMs: 0 };
    }
    return { admitted: false, reason: 'open', retryAfterMs: Math.ceil(this.openUntil - this.now) };
  }

  start(probe: boolean, admitted: boolean): Pending {
    const p: Pending = { id: this.nextId++, gen: admitted ? this.gen : undefined, probe, start: this.now };
    if (probe) this.probeStarts.push({ id: p.id, start: this.now });
    return p;
  }

  settle(p: Pending, failed: boolean): void {
    if (p.gen === undefined || p.gen !== this.gen) return;
    const slow = this.now - p.start >= SLOW_MS;
    if (!p.probe) {
      this.history.push({ at: this.now, failed, slow });
      const reason = this.trip();
      if (reason !== undefined) this.open(reason, 0);
      return;
    }
    this.probeStarts = this.probeStarts.filter((s) => s.id !== p.id);
    this.probesSettled++;
    if (failed) this.probeFailures++;
    if (slow) this.probeSlow++;
    const n = this.config.halfOpenPermits;
    if (this.probeFailures / n >= this.config.failureRateThreshold)
      this.open('probes-failed', this.level + 1);
    else if (this.probeSlow / n >= this.config.slowCallRateThreshold)
      this.open('probes-slow', this.level + 1);
    else if (this.probesSettled === n) {
      this.level = 0;
      this.go('closed', 'probes-passed');
    }
  }
}

interface Real {
  clock: FakeClock;
  breaker: CircuitBreakerPolicy;
  transitions: string[];
  calls: Map<number, { settle(failed: boolean): Promise<void> }>;
  holds: Disposable[];
}

function expectedWindow(m: Model) {
  const s = m.config.strategy;
  if (s.type === 'consecutive') {
    return { type: 'consecutive', consecutiveFailures: m.run('failed'), consecutiveSlowCalls: m.run('slow') };
  }
  const w = m.window();
  const failures = w.filter((r) => r.failed).length;
  const slowCalls = w.filter((r) => r.slow).length;
  return {
    type: s.type,
    calls: w.length,
    failures,
    slowCalls,
    failureRate: w.length === 0 ? 0 : failures / w.length,
    slowCallRate: w.length === 0 ? 0 : slowCalls / w.length,
  };
}

function compare(m: Model, r: Real): void {
  m.refresh(); // `metrics` applies the due lazy transitions too
  const actual = r.breaker.metrics;
  assert.equal(actual.state, m.state);
  assert.equal(actual.generation, m.gen);
  assert.equal(actual.backoffLevel, m.level);
  assert.equal(actual.openRemainingMs, m.state === 'open' ? m.openUntil - m.now : 0);
  assert.deepEqual(actual.window, expectedWindow(m));
  assert.deepEqual(
    actual.probes,
    m.state === 'half-open'
      ? {
          permits: m.config.halfOpenPermits,
          inFlight: m.probeStarts.length,
          settled: m.probesSettled,
          failures: m.probeFailures,
          slowCalls: m.probeSlow,
        }
      : undefined,
  );
  assert.deepEqual(r.transitions, m.transitions);
  // no timer per breaker: one entry in the clock's shared queue while a transition is due (the end of the
  // open duration, or the half-open round's timeout while a probe is in flight), none otherwise
  // (the clock's one timer may outlive the last entry: it lapses at its due time)
  const due = m.state === 'open' || (m.state === 'half-open' && m.probeStarts.length > 0);
  assert.equal(TimerQueue.for(r.clock).size, due && m.config.mode !== 'disabled' ? 1 : 0);
  assert.ok(r.clock.pendingTimers <= 1);
}

/** A call that settles at once, after `durationMs` of (fake) work. */
class CallCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly failed: boolean,
    readonly durationMs: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const decision = m.admit();
    let ran = false;
    const call = r.breaker.execute(() => {
      ran = true;
      r.clock.advance(this.durationMs);
      return this.failed ? Promise.reject(new Error('down')) : 'up';
    });
    const runs = decision.admitted || m.config.mode === 'metrics-only';
    if (runs) {
      const p = m.start(decision.admitted && decision.probe, decision.admitted);
      m.now += this.durationMs;
      m.refresh(); // the clock moved during the call: what fell due happened then
      if (this.failed) await assert.rejects(call, /down/);
      else assert.equal(await call, 'up');
      m.settle(p, this.failed);
    } else {
      const d = decision as { reason: string; retryAfterMs: number };
      await assert.rejects(
        call,
        (e: unknown) =>
          e instanceof CircuitOpenError && e.reason === d.reason && e.retryAfterMs === d.retryAfterMs,
      );
    }
    assert.equal(ran, runs);
    compare(m, r);
  }
  toString = () => `call(${this.failed ? 'fail' : 'ok'}, ${this.durationMs}ms)`;
}

/** A call left in flight, settled by a later {@link SettleCommand}. */
class StartCommand implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const decision = m.admit();
    let resolve!: (v: string) => void;
    let reject!: (e: unknown) => void;
    const work = new Promise<string>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const call = r.breaker.execute(() => work);
    const runs = decision.admitted || m.config.mode === 'metrics-only';
    if (!runs) {
      await assert.rejects(call, CircuitOpenError);
    } else {
      const p = m.start(decision.admitted && decision.probe, decision.admitted);
      m.pending.push(p);
      r.calls.set(p.id, {
        settle: async (failed) => {
          if (failed) {
            reject(new Error('down'));
            await assert.rejects(call, /down/);
          } else {
            resolve('up');
            assert.equal(await call, 'up');
          }
        },
      });
    }
    compare(m, r);
  }
  toString = () => 'start';
}

class SettleCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly pick: number,
    readonly failed: boolean,
  ) {}
  check = (m: Readonly<Model>) => m.pending.length > 0;
  async run(m: Model, r: Real): Promise<void> {
    const [p] = m.pending.splice(this.pick % m.pending.length, 1);
    await r.calls.get(p!.id)!.settle(this.failed);
    r.calls.delete(p!.id);
    m.settle(p!, this.failed);
    compare(m, r);
  }
  toString = () => `settle(#${this.pick}, ${this.failed ? 'fail' : 'ok'})`;
}

class AdvanceCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    r.clock.advance(this.ms);
    m.now += this.ms;
    m.refresh();
    compare(m, r);
  }
  toString = () => `advance(${this.ms})`;
}

class IsolateCommand implements fc.AsyncCommand<Model, Real> {
  check = (m: Readonly<Model>) => m.isolations < 3;
  async run(m: Model, r: Real): Promise<void> {
    r.holds.push(r.breaker.isolate());
    if (m.isolations++ === 0) m.go('isolated', 'isolated');
    compare(m, r);
  }
  toString = () => 'isolate';
}

class ReleaseCommand implements fc.AsyncCommand<Model, Real> {
  check = (m: Readonly<Model>) => m.isolations > 0;
  async run(m: Model, r: Real): Promise<void> {
    const hold = r.holds.pop()!;
    hold.dispose();
    hold.dispose(); // idempotent
    if (--m.isolations === 0) m.go('half-open', 'released');
    compare(m, r);
  }
  toString = () => 'release';
}

/** open() / close() / reset() by hand: what each may change is the specification's, written plainly. */
class ByHandCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly action: 'open' | 'close' | 'reset') {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const changed = r.breaker[this.action]({ by: 'model' });
    m.refresh(); // the breaker applies what was due first (a read of its state)
    let expected = false;
    if (this.action === 'open' && m.state === 'closed') {
      m.open('manual-open', m.level);
      expected = true;
    } else if (this.action === 'close' && (m.state === 'open' || m.state === 'half-open')) {
      m.level = 0;
      m.go('closed', 'manual-close');
      expected = true;
    } else if (this.action === 'reset' && m.state !== 'isolated') {
      m.level = 0;
      m.go('closed', 'reset');
      expected = true;
    }
    assert.equal(changed, expected);
    compare(m, r);
  }
  toString = () => `${this.action}()`;
}

const commands = [
  fc.tuple(fc.boolean(), fc.constantFrom(1, SLOW_MS + 10)).map(([failed, ms]) => new CallCommand(failed, ms)),
  fc.tuple(fc.boolean(), fc.constantFrom(1, SLOW_MS + 10)).map(([failed, ms]) => new CallCommand(failed, ms)),
  fc.constant(new StartCommand()),
  fc.tuple(fc.nat(10), fc.boolean()).map(([pick, failed]) => new SettleCommand(pick, failed)),
  fc.integer({ min: 1, max: 350 }).map((ms) => new AdvanceCommand(ms)),
  fc.constant(new IsolateCommand()),
  fc.constant(new ReleaseCommand()),
  fc.constantFrom<'open' | 'close' | 'reset'>('open', 'close', 'reset').map((a) => new ByHandCommand(a)),
];

function configs(strategy: fc.Arbitrary<CircuitBreakerStrategy>): fc.Arbitrary<Config> {
  return fc.record({
    strategy,
    failureRateThreshold: fc.constantFrom(0.25, 0.5, 0.75, 1),
    slowCallRateThreshold: fc.constantFrom(0.5, 1),
    halfOpenPermits: fc.integer({ min: 1, max: 3 }),
    mode: fc.constantFrom<CircuitBreakerMode>('enabled', 'enabled', 'metrics-only'),
  });
}

async function check(strategy: fc.Arbitrary<CircuitBreakerStrategy>, numRuns: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(configs(strategy), fc.commands(commands, { maxCommands: 50 }), async (config, cmds) => {
      const clock = new FakeClock();
      const breaker = circuitBreaker({
        ...config,
        clock,
        openDurationMs: OPEN_MS,
        openDurationBackoff: { multiplier: 2, maxOpenDurationMs: MAX_OPEN_MS },
        halfOpenTimeoutMs: HALF_OPEN_TIMEOUT_MS,
        slowCallDurationMs: SLOW_MS,
      });
      const transitions: string[] = [];
      breaker.onStateChange((e) => transitions.push(`${e.from}>${e.to}:${e.reason}`));
      const real: Real = { clock, breaker, transitions, calls: new Map(), holds: [] };
      await fc.asyncModelRun(() => ({ model: new Model(config), real }), cmds);
    }),
    { numRuns },
  );
}

describe('circuitBreaker model-based (fast-check commands)', () => {
  it('consecutive strategy', async () => {
    await check(
      fc.integer({ min: 1, max: 4 }).map((threshold) => ({ type: 'consecutive', threshold }) as const),
      1000,
    );
  });

  it('count strategy', async () => {
    await check(
      fc
        .integer({ min: 1, max: 6 })
        .chain((size) =>
          fc
            .integer({ min: 1, max: size })
            .map((minimumCalls) => ({ type: 'count', size, minimumCalls }) as const),
        ),
      1000,
    );
  });

  it('time strategy', async () => {
    await check(
      fc
        .record({ buckets: fc.integer({ min: 1, max: 5 }), minimumCalls: fc.integer({ min: 1, max: 5 }) })
        .map(
          ({ buckets, minimumCalls }) => ({ type: 'time', windowMs: 400, buckets, minimumCalls }) as const,
        ),
      500,
    );
  });
});
