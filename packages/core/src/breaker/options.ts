/**
 * The options of `circuitBreaker`, their defaults (declared once, here) and their validation.
 *
 * Why these defaults (see docs/circuit-breaker.md for the long version):
 * - A time window (30 s in 10 buckets, like Polly's 30 s sampling duration): a count window never forgets,
 *   so at low traffic a failure from an hour ago still weighs; a time window does, and costs no timer.
 * - `minimumCalls` 20 (Hystrix's request-volume threshold): never 0, so one early failure cannot open the
 *   breaker (opossum#288); far below resilience4j's and Polly's 100, which low-traffic services never reach.
 * - `failureRateThreshold` 0.5 (resilience4j, Hystrix).
 * - `openDurationMs` 5 s (Polly, Hystrix) growing ×2 per failed probe round up to 60 s (resilience4j's
 *   fixed wait): a short blip heals in seconds, a lasting outage is probed less and less often.
 * - `halfOpenPermits` 3: one probe is a coin flip (one lucky success closes the breaker onto a sick
 *   dependency, one unlucky failure keeps a healed one out for another open period); 3 is the smallest
 *   majority vote, and far less load on a recovering dependency than resilience4j's 10.
 * - `halfOpenTimeoutMs` 10 s (opossum's per-call timeout bounds its probe): probes that have not settled
 *   by then count as a failed round, so a hung probe cannot keep the breaker half-open (resilience4j#903).
 */
import type { Clock } from '../clock.js';
import { InvalidOptionError } from '../errors.js';
import { reportListenerError } from '../events.js';
import * as check from '../options.js';
import { classify, judgesValues, type ClassifyFn } from '../classify.js';
import { ConsecutiveDetector } from './consecutive.js';
import { CountWindow } from './count-window.js';
import type { FailureDetector } from './detector.js';
import { parseSnapshot, type CircuitBreakerSnapshot } from './snapshot.js';
import { TimeWindow } from './time-window.js';

/** Opens on the `threshold`-th failure in a row, or the `threshold`-th slow call in a row. */
export interface ConsecutiveStrategy {
  readonly type: 'consecutive';
  /** Failures (or slow calls) in a row that open the breaker. An integer ≥ 1. */
  readonly threshold: number;
}

/** Judges the last `size` calls. */
export interface CountStrategy {
  readonly type: 'count';
  /** Calls in the window. An integer ≥ 1. */
  readonly size: number;
  /** Calls the window must hold before a rate can open the breaker (≤ `size`). @default min(20, size) */
  readonly minimumCalls?: number;
}

/** Judges the calls of the last `windowMs`, counted in `buckets` slices. */
export interface TimeStrategy {
  readonly type: 'time';
  /** Length of the window in ms. */
  readonly windowMs: number;
  /** Slices of the window (the window slides one slice at a time). @default 10 */
  readonly buckets?: number;
  /** Calls the window must hold before a rate can open the breaker. @default 20 */
  readonly minimumCalls?: number;
}

export type CircuitBreakerStrategy = ConsecutiveStrategy | CountStrategy | TimeStrategy;

/**
 * `enabled`: the breaker works. `disabled`: every call passes (isolation included) and nothing is recorded
 * or emitted. `metrics-only` (shadow mode): the breaker records, changes state and emits events as if
 * enabled, but never rejects: a call it would have rejected runs anyway, unrecorded, after an `onReject`
 * event with `enforced: false` — so thresholds can be tried on live traffic before they are enforced.
 */
export type CircuitBreakerMode = 'enabled' | 'disabled' | 'metrics-only';

/**
 * How the open duration grows across failed probe rounds. `level` is 0 when the breaker opens from
 * closed and grows by one per failed (or timed-out) half-open round; a close resets it. As an object:
 * `min(maxOpenDurationMs, openDurationMs × multiplier^level)`. As a function: returns the duration in ms
 * for a level (a result that is not a finite number ≥ 0 falls back to `openDurationMs`, and so does a
 * throw, which goes to the listener-error handler).
 */
export type OpenDurationBackoff =
  { readonly multiplier: number; readonly maxOpenDurationMs: number } | ((level: number) => number);

export interface CircuitBreakerOptions {
  /** Name used in events and errors. @default 'circuitBreaker' */
  name?: string;
  /**
   * How failures are detected while closed.
   * @default { type: 'time', windowMs: 30_000, buckets: 10, minimumCalls: 20 }
   */
  strategy?: CircuitBreakerStrategy;
  /**
   * Failure rate in (0, 1] at or above which a window opens the breaker; also the rate of failed probes
   * at or above which half-open reopens it (for every strategy).
   * @default 0.5
   */
  failureRateThreshold?: number;
  /** A call taking at least this many ms is slow. `Infinity` turns slow-call detection off. @default Infinity */
  slowCallDurationMs?: number;
  /** Slow-call rate in (0, 1] at or above which a window (or the half-open probes) opens the breaker. @default 1 */
  slowCallRateThreshold?: number;
  /** How long the breaker stays open before it admits probes, in ms. @default 5_000 */
  openDurationMs?: number;
  /**
   * Growth of the open duration across failed probe rounds.
   * @default { multiplier: 2, maxOpenDurationMs: max(60_000, openDurationMs) }
   */
  openDurationBackoff?: OpenDurationBackoff;
  /** Probe calls admitted in half-open; the breaker decides once they have all settled. @default 3 */
  halfOpenPermits?: number;
  /**
   * The longest a probe may stay unsettled, in ms: past it, the next call (or `state` read) reopens the
   * breaker as a failed round. `Infinity` removes the bound (a hung probe then blocks recovery).
   * @default 10_000
   */
  halfOpenTimeoutMs?: number;
  /**
   * What each outcome means (see {@link classify}): `failure` and `success` verdicts are recorded,
   * `rejected` and `ignore` are not. Share one classifier with retry. A caller's own abort is always
   * ignored, whatever the verdict.
   * @default classify — every error is a failure but an inner breaker's, bulkhead's or rate limiter's rejection and an invalid option (ignored) and `retryable: false` (a success); every value a success
   */
  classify?: ClassifyFn;
  /** @default 'enabled' */
  mode?: CircuitBreakerMode;
  /** A snapshot from `toJSON()` to start from (validated). @default a closed breaker with an empty window */
  initialState?: CircuitBreakerSnapshot;
  /** @default systemClock */
  clock?: Clock;
}

/** The defaults of {@link CircuitBreakerOptions}. */
export const CIRCUIT_BREAKER_DEFAULTS = Object.freeze({
  name: 'circuitBreaker',
  strategy: Object.freeze({ type: 'time', windowMs: 30_000, buckets: 10, minimumCalls: 20 }) as TimeStrategy,
  /** Per-strategy defaults when a strategy is given without them. */
  buckets: 10,
  minimumCalls: 20,
  failureRateThreshold: 0.5,
  slowCallDurationMs: Infinity,
  slowCallRateThreshold: 1,
  openDurationMs: 5_000,
  openDurationBackoff: Object.freeze({ multiplier: 2, maxOpenDurationMs: 60_000 }),
  halfOpenPermits: 3,
  halfOpenTimeoutMs: 10_000,
  classify: classify as ClassifyFn,
  mode: 'enabled' as CircuitBreakerMode,
});

export const OPTION_KEYS = [
  'name',
  'strategy',
  'failureRateThreshold',
  'slowCallDurationMs',
  'slowCallRateThreshold',
  'openDurationMs',
  'openDurationBackoff',
  'halfOpenPermits',
  'halfOpenTimeoutMs',
  'classify',
  'mode',
  'initialState',
  'clock',
] as const;

/** Largest count window and bucket count accepted (memory is allocated up front). */
const MAX_SIZE = 1_000_000;
const MAX_BUCKETS = 10_000;

/** Validates and completes a strategy (every field filled in). */
export function resolveStrategy(value: unknown): Required<CircuitBreakerStrategy> {
  const opt = 'circuitBreaker.strategy';
  const s = check.optionsObject(opt, value as CircuitBreakerStrategy | undefined, true);
  const type = check.oneOf(`${opt}.type`, s.type, ['consecutive', 'count', 'time']);
  if (type === 'consecutive') {
    check.knownKeys(opt, s, ['type', 'threshold']);
    const o = s as ConsecutiveStrategy;
    return Object.freeze({ type, threshold: check.positiveInteger(`${opt}.threshold`, o.threshold) });
  }
  if (type === 'count') {
    check.knownKeys(opt, s, ['type', 'size', 'minimumCalls']);
    const o = s as CountStrategy;
    const size = check.number(`${opt}.size`, o.size, { min: 1, max: MAX_SIZE, integer: true });
    const minimumCalls = check.number(
      `${opt}.minimumCalls`,
      o.minimumCalls ?? Math.min(CIRCUIT_BREAKER_DEFAULTS.minimumCalls, size),
      { min: 1, max: size, integer: true },
    );
    return Object.freeze({ type, size, minimumCalls });
  }
  check.knownKeys(opt, s, ['type', 'windowMs', 'buckets', 'minimumCalls']);
  const o = s as TimeStrategy;
  return Object.freeze({
    type,
    windowMs: check.positiveMs(`${opt}.windowMs`, o.windowMs),
    buckets: check.number(`${opt}.buckets`, o.buckets ?? CIRCUIT_BREAKER_DEFAULTS.buckets, {
      min: 1,
      max: MAX_BUCKETS,
      integer: true,
    }),
    minimumCalls: check.positiveInteger(
      `${opt}.minimumCalls`,
      o.minimumCalls ?? CIRCUIT_BREAKER_DEFAULTS.minimumCalls,
    ),
  });
}

/** Validates the backoff and returns `level → open duration in ms`. */
export function resolveBackoff(value: unknown, openDurationMs: number): (level: number) => number {
  const opt = 'circuitBreaker.openDurationBackoff';
  if (typeof value === 'function') {
    const f = value as (level: number) => number;
    return (level) => {
      let ms: unknown;
      try {
        ms = f(level);
      } catch (error) {
        // a bug in the callback must not leave the breaker half-way through a transition
        reportListenerError(error);
        return openDurationMs;
      }
      return typeof ms === 'number' && ms >= 0 && Number.isFinite(ms) ? ms : openDurationMs;
    };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(opt, value, 'a { multiplier, maxOpenDurationMs } object or a function');
  }
  check.knownKeys(opt, value, ['multiplier', 'maxOpenDurationMs']);
  const b = value as { multiplier: unknown; maxOpenDurationMs: unknown };
  const multiplier = check.number(`${opt}.multiplier`, b.multiplier, { min: 1 });
  const max = check.number(`${opt}.maxOpenDurationMs`, b.maxOpenDurationMs, { min: openDurationMs });
  return (level) => Math.min(max, openDurationMs * multiplier ** level);
}

/** Every option validated and completed: the options with their defaults, and what is derived from them. */
export type ResolvedOptions = Readonly<
  Required<Omit<CircuitBreakerOptions, 'strategy' | 'openDurationBackoff' | 'initialState'>>
> & {
  readonly strategy: Readonly<Required<CircuitBreakerStrategy>>;
  /** Open duration in ms for a backoff level (from `openDurationMs` and `openDurationBackoff`). */
  readonly openDurationFor: (level: number) => number;
  /** Whether `classify` looks at values (else every value is a success, with no call). */
  readonly judgesValues: boolean;
  readonly initialState: CircuitBreakerSnapshot | undefined;
};

/** Validates `circuitBreaker(options)` eagerly, naming the first bad option. */
export function resolveOptions(options: CircuitBreakerOptions | undefined): ResolvedOptions {
  const D = CIRCUIT_BREAKER_DEFAULTS;
  const o = check.optionsObject('circuitBreaker', options);
  check.knownKeys('circuitBreaker', o, OPTION_KEYS);
  const rate = { above: 0, max: 1 };
  const openDurationMs = check.positiveMs(
    'circuitBreaker.openDurationMs',
    o.openDurationMs ?? D.openDurationMs,
  );
  const classifyFn = check.fn<ClassifyFn>('circuitBreaker.classify', o.classify ?? D.classify);
  return {
    clock: check.clock('circuitBreaker.clock', o.clock),
    name: check.string('circuitBreaker.name', o.name ?? D.name),
    mode: check.oneOf('circuitBreaker.mode', o.mode ?? D.mode, ['enabled', 'disabled', 'metrics-only']),
    strategy: resolveStrategy(o.strategy ?? D.strategy),
    failureRateThreshold: check.number(
      'circuitBreaker.failureRateThreshold',
      o.failureRateThreshold ?? D.failureRateThreshold,
      rate,
    ),
    slowCallDurationMs: check.positiveMs(
      'circuitBreaker.slowCallDurationMs',
      o.slowCallDurationMs ?? D.slowCallDurationMs,
      true,
    ),
    slowCallRateThreshold: check.number(
      'circuitBreaker.slowCallRateThreshold',
      o.slowCallRateThreshold ?? D.slowCallRateThreshold,
      rate,
    ),
    openDurationMs,
    openDurationFor: resolveBackoff(
      o.openDurationBackoff ?? {
        multiplier: D.openDurationBackoff.multiplier,
        // an explicit open duration longer than the default cap is not an error: the cap follows it
        maxOpenDurationMs: Math.max(D.openDurationBackoff.maxOpenDurationMs, openDurationMs),
      },
      openDurationMs,
    ),
    halfOpenPermits: check.number('circuitBreaker.halfOpenPermits', o.halfOpenPermits ?? D.halfOpenPermits, {
      min: 1,
      max: 10_000,
      integer: true,
    }),
    halfOpenTimeoutMs: check.positiveMs(
      'circuitBreaker.halfOpenTimeoutMs',
      o.halfOpenTimeoutMs ?? D.halfOpenTimeoutMs,
      true,
    ),
    classify: classifyFn,
    judgesValues: judgesValues(classifyFn),
    initialState: o.initialState === undefined ? undefined : parseSnapshot(o.initialState),
  };
}

/** Builds the strategy's detector (a fresh one per breaker: they hold state). */
export function createDetector(o: ResolvedOptions): FailureDetector {
  const s = o.strategy;
  if (s.type === 'consecutive') return new ConsecutiveDetector(s.threshold);
  const thresholds = {
    failureRateThreshold: o.failureRateThreshold,
    slowCallRateThreshold: o.slowCallRateThreshold,
    minimumCalls: s.minimumCalls,
  };
  return s.type === 'count'
    ? new CountWindow(s.size, thresholds)
    : new TimeWindow(s.windowMs, s.buckets, thresholds);
}
