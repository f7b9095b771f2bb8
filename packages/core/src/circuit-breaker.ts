/**
 * circuitBreaker: stops calling a dependency that keeps failing, and probes it before trusting it again.
 *
 * States: `closed` (calls pass; a strategy in breaker/ watches failures and slow calls), `open` (calls are
 * rejected at once with {@link CircuitOpenError}), `half-open` (up to `halfOpenPermits` probe calls pass;
 * every other caller is rejected at once, nobody waits), `isolated` (forced open while any
 * {@link CircuitBreakerPolicy.isolate} handle is held).
 *
 * - No timers at all. open → half-open happens lazily, on the next call or `state` read once the open
 *   duration has passed; a probe that has not settled within `halfOpenTimeoutMs` is noticed the same way.
 * - Every transition bumps a generation counter; a call records its outcome only if the generation it was
 *   admitted in is still current, so a late result from before a transition cannot move the new state.
 * - A caller's abort never counts: when the call fails after the context this breaker received was
 *   aborted, the outcome is ignored. A TimeoutError from a timeout *inside* the breaker does count.
 *
 * Cost while closed: one `async` frame per call; the clock is read only when a slow-call threshold is set,
 * someone listens to `onSuccess`/`onFailure`, or the time window needs it. A rejection returns
 * `Promise.reject` of an error built without a stack trace.
 */
import { CircuitOpenError, BulkheadRejectedError, type CircuitRejectReason } from './errors.js';
import type { CallContext, Operation } from './context.js';
import { EventEmitter, type Disposable, type Subscribe } from './events.js';
import * as check from './options.js';
import { BasePolicy, invoke, type Outcome } from './policy.js';
import { ConsecutiveDetector } from './breaker/consecutive.js';
import { CountWindow } from './breaker/count-window.js';
import { TimeWindow } from './breaker/time-window.js';
import {
  FAILURE,
  SLOW,
  type FailureDetector,
  type TripReason,
  type WindowMetrics,
} from './breaker/detector.js';
import {
  CIRCUIT_BREAKER_DEFAULTS as D,
  OPTION_KEYS,
  resolveBackoff,
  resolveStrategy,
  type CircuitBreakerMode,
  type CircuitBreakerOptions,
  type CircuitBreakerStrategy,
} from './breaker/options.js';
import { parseSnapshot, type CircuitBreakerSnapshot } from './breaker/snapshot.js';

export type CircuitState = 'closed' | 'open' | 'half-open' | 'isolated';

/** Why the breaker changed state. */
export type CircuitTransitionReason =
  | TripReason
  /** open → half-open: the open duration passed. */
  | 'open-elapsed'
  /** half-open → closed: every probe settled and the failure and slow rates stayed under their thresholds. */
  | 'probes-passed'
  /** half-open → open: enough probes failed that the round could no longer pass. */
  | 'probes-failed'
  /** half-open → open: enough probes were slow that the round could no longer pass. */
  | 'probes-slow'
  /** half-open → open: a probe did not settle within `halfOpenTimeoutMs`. */
  | 'half-open-timeout'
  /** → isolated: the first `isolate()` handle was taken. */
  | 'isolated'
  /** isolated → half-open: the last `isolate()` handle was disposed. */
  | 'released';

interface EventBase {
  readonly name: string;
  /** The operation key of the call (`execute(fn, { key })`). */
  readonly key: string | undefined;
}

export interface CircuitStateChangeEvent {
  readonly name: string;
  readonly from: CircuitState;
  readonly to: CircuitState;
  readonly reason: CircuitTransitionReason;
  /** The generation the breaker is now in (bumped by every transition). */
  readonly generation: number;
  /** When opening: how long it stays open (after backoff). */
  readonly openDurationMs: number | undefined;
}

/** A call the breaker judged a success. `durationMs` is measured only when needed (see the module doc). */
export interface CircuitSuccessEvent extends EventBase {
  readonly durationMs: number | undefined;
  /** True for a half-open probe. */
  readonly probe: boolean;
}

/** A call the breaker judged a failure: an error, or a value `isFailure` rejected. */
export type CircuitFailureEvent = Outcome &
  EventBase & { readonly durationMs: number | undefined; readonly probe: boolean };

export interface CircuitSlowCallEvent extends EventBase {
  readonly durationMs: number;
  readonly slowCallDurationMs: number;
  /** Whether the slow call also failed. */
  readonly failed: boolean;
  readonly probe: boolean;
}

export interface CircuitRejectEvent extends EventBase {
  readonly reason: CircuitRejectReason;
  readonly retryAfterMs: number;
  /** False in `metrics-only` mode: the call ran anyway. */
  readonly enforced: boolean;
}

/** Why an outcome was neither a success nor a failure. */
export type CircuitIgnoreReason =
  /** The context the breaker received was aborted when the call failed (the caller's own abort). */
  | 'aborted'
  /** The breaker changed state while the call ran (its generation is no longer current). */
  | 'stale'
  /** `isFailure` returned `'ignore'` (by default: a CircuitOpenError or BulkheadRejectedError from inside). */
  | 'predicate';

export type CircuitIgnoredEvent = Outcome & EventBase & { readonly reason: CircuitIgnoreReason };

/** A point-in-time view of the breaker. */
export interface CircuitBreakerMetrics {
  readonly state: CircuitState;
  readonly generation: number;
  /** Open: ms until probes are admitted. 0 otherwise. */
  readonly openRemainingMs: number;
  /** Failed probe rounds in a row (the open-duration backoff level). */
  readonly backoffLevel: number;
  readonly window: WindowMetrics;
  /** Half-open: the probe round so far. */
  readonly probes:
    | {
        readonly permits: number;
        readonly inFlight: number;
        readonly settled: number;
        readonly failures: number;
        readonly slowCalls: number;
      }
    | undefined;
}

/**
 * The default `isFailure`: every error is a failure, except a {@link CircuitOpenError} (an inner breaker)
 * and a {@link BulkheadRejectedError} (an inner bulkhead), which never reached the dependency and are
 * ignored. A value is a success.
 */
export function defaultIsFailure(outcome: Outcome): boolean | 'ignore' {
  if (outcome.ok) return false;
  return isLocalRejection(outcome.error) ? 'ignore' : true;
}

function isLocalRejection(error: unknown): boolean {
  return error instanceof CircuitOpenError || error instanceof BulkheadRejectedError;
}

const CLOSED = 0;
const OPEN = 1;
const HALF_OPEN = 2;
const ISOLATED = 3;
const STATES: readonly CircuitState[] = ['closed', 'open', 'half-open', 'isolated'];
/** `slot` of a call admitted while closed (probes carry their permit's index). */
const NOT_A_PROBE = -1;

/** Builds the rejection without capturing a stack (~4 µs saved; it would only point into Bulwark). */
function openError(retryAfterMs: number, reason: CircuitRejectReason, name: string): CircuitOpenError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new CircuitOpenError(retryAfterMs, reason, name);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

export class CircuitBreakerPolicy extends BasePolicy {
  readonly name: string;
  readonly mode: CircuitBreakerMode;
  /** The failure-detection strategy, with every default filled in. */
  readonly strategy: Readonly<Required<CircuitBreakerStrategy>>;
  readonly failureRateThreshold: number;
  readonly slowCallDurationMs: number;
  readonly slowCallRateThreshold: number;
  readonly openDurationMs: number;
  readonly halfOpenPermits: number;
  readonly halfOpenTimeoutMs: number;

  readonly #onStateChange = new EventEmitter<CircuitStateChangeEvent>();
  readonly #onSuccess = new EventEmitter<CircuitSuccessEvent>();
  readonly #onFailure = new EventEmitter<CircuitFailureEvent>();
  readonly #onSlowCall = new EventEmitter<CircuitSlowCallEvent>();
  readonly #onReject = new EventEmitter<CircuitRejectEvent>();
  readonly #onIgnored = new EventEmitter<CircuitIgnoredEvent>();
  /** Every state change (with its reason and the new generation). */
  readonly onStateChange: Subscribe<CircuitStateChangeEvent> = this.#onStateChange.subscribe;
  /** Every call judged a success (probes included). */
  readonly onSuccess: Subscribe<CircuitSuccessEvent> = this.#onSuccess.subscribe;
  /** Every call judged a failure (probes included). */
  readonly onFailure: Subscribe<CircuitFailureEvent> = this.#onFailure.subscribe;
  /** Every recorded call that took at least `slowCallDurationMs`. */
  readonly onSlowCall: Subscribe<CircuitSlowCallEvent> = this.#onSlowCall.subscribe;
  /** Every rejected call (and, in `metrics-only` mode, every call that would have been rejected). */
  readonly onReject: Subscribe<CircuitRejectEvent> = this.#onReject.subscribe;
  /** Every outcome that was neither a success nor a failure. */
  readonly onIgnored: Subscribe<CircuitIgnoredEvent> = this.#onIgnored.subscribe;

  readonly #detector: FailureDetector;
  /** undefined: the default predicate, applied without allocating an Outcome. */
  readonly #isFailure: ((outcome: Outcome) => boolean | 'ignore') | undefined;
  readonly #openDurationFor: (level: number) => number;
  readonly #disabled: boolean;
  readonly #enforced: boolean;
  readonly #slowOn: boolean;

  #state = CLOSED;
  #generation = 0;
  /** Open: when probes may start (clock time). */
  #openUntil = 0;
  /** Failed probe rounds in a row. */
  #level = 0;
  #isolations = 0;
  /** Half-open: admission time of the probe holding each permit (NaN: the permit is free). */
  readonly #probeStarts: number[];
  #probesInFlight = 0;
  #probesSettled = 0;
  #probeFailures = 0;
  #probeSlow = 0;

  constructor(options?: CircuitBreakerOptions) {
    const o = check.optionsObject('circuitBreaker', options);
    check.knownKeys('circuitBreaker', o, OPTION_KEYS);
    super(check.clock('circuitBreaker.clock', o.clock));
    this.name = check.string('circuitBreaker.name', o.name ?? D.name);
    this.mode = check.oneOf('circuitBreaker.mode', o.mode ?? D.mode, ['enabled', 'disabled', 'metrics-only']);
    this.strategy = resolveStrategy(o.strategy ?? D.strategy);
    const rate = { above: 0, max: 1 };
    this.failureRateThreshold = check.number(
      'circuitBreaker.failureRateThreshold',
      o.failureRateThreshold ?? D.failureRateThreshold,
      rate,
    );
    this.slowCallDurationMs = check.positiveMs(
      'circuitBreaker.slowCallDurationMs',
      o.slowCallDurationMs ?? D.slowCallDurationMs,
      true,
    );
    this.slowCallRateThreshold = check.number(
      'circuitBreaker.slowCallRateThreshold',
      o.slowCallRateThreshold ?? D.slowCallRateThreshold,
      rate,
    );
    this.openDurationMs = check.positiveMs(
      'circuitBreaker.openDurationMs',
      o.openDurationMs ?? D.openDurationMs,
    );
    this.#openDurationFor = resolveBackoff(
      o.openDurationBackoff ?? {
        multiplier: D.openDurationBackoff.multiplier,
        maxOpenDurationMs: Math.max(D.openDurationBackoff.maxOpenDurationMs, this.openDurationMs),
      },
      this.openDurationMs,
    );
    this.halfOpenPermits = check.number(
      'circuitBreaker.halfOpenPermits',
      o.halfOpenPermits ?? D.halfOpenPermits,
      {
        min: 1,
        max: 10_000,
        integer: true,
      },
    );
    this.halfOpenTimeoutMs = check.positiveMs(
      'circuitBreaker.halfOpenTimeoutMs',
      o.halfOpenTimeoutMs ?? D.halfOpenTimeoutMs,
      true,
    );
    this.#isFailure =
      o.isFailure === undefined
        ? undefined
        : check.fn<(outcome: Outcome) => boolean | 'ignore'>('circuitBreaker.isFailure', o.isFailure);
    this.#disabled = this.mode === 'disabled';
    this.#enforced = this.mode === 'enabled';
    this.#slowOn = this.slowCallDurationMs !== Infinity;
    this.#probeStarts = new Array<number>(this.halfOpenPermits).fill(NaN);

    const s = this.strategy;
    const thresholds = {
      failureRateThreshold: this.failureRateThreshold,
      slowCallRateThreshold: this.slowCallRateThreshold,
      minimumCalls: s.type === 'consecutive' ? 1 : s.minimumCalls,
    };
    this.#detector =
      s.type === 'consecutive'
        ? new ConsecutiveDetector(s.threshold)
        : s.type === 'count'
          ? new CountWindow(s.size, thresholds)
          : new TimeWindow(s.windowMs, s.buckets, thresholds);

    if (o.initialState !== undefined) this.#restore(parseSnapshot(o.initialState));
  }

  /** The current state (applying a due open → half-open or half-open → open transition first). */
  get state(): CircuitState {
    if (this.#state === OPEN || this.#state === HALF_OPEN) this.#refresh(this.clock.now());
    return STATES[this.#state]!;
  }

  get metrics(): CircuitBreakerMetrics {
    const now = this.clock.now();
    this.#refresh(now);
    const state = this.#state;
    return {
      state: STATES[state]!,
      generation: this.#generation,
      openRemainingMs: state === OPEN ? this.#openUntil - now : 0,
      backoffLevel: this.#level,
      window: this.#detector.metrics(now),
      probes:
        state === HALF_OPEN
          ? {
              permits: this.halfOpenPermits,
              inFlight: this.#probesInFlight,
              settled: this.#probesSettled,
              failures: this.#probeFailures,
              slowCalls: this.#probeSlow,
            }
          : undefined,
    };
  }

  run<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    if (this.#disabled) return invoke(fn, ctx);
    if (this.#state === CLOSED) {
      const measure = this.#slowOn || this.#onSuccess.active || this.#onFailure.active;
      return this.#call(fn, ctx, this.#generation, measure ? this.clock.now() : NaN, NOT_A_PROBE);
    }
    const now = this.clock.now();
    this.#refresh(now);
    switch (this.#state) {
      case HALF_OPEN: {
        const slot = this.#takePermit(now);
        if (slot !== NOT_A_PROBE) return this.#call(fn, ctx, this.#generation, now, slot);
        return this.#reject('half-open-full', 0, fn, ctx);
      }
      case OPEN:
        return this.#reject('open', Math.ceil(this.#openUntil - now), fn, ctx);
      case ISOLATED:
        return this.#reject('isolated', this.#openDurationFor(this.#level), fn, ctx);
      default: // closed cannot follow a refresh, but stay correct if it ever did
        return this.#call(fn, ctx, this.#generation, now, NOT_A_PROBE);
    }
  }

  /**
   * Forces the breaker open until every handle returned is disposed (handles are counted, so independent
   * owners can isolate and release without coordinating). On the last release the breaker goes half-open:
   * it probes before it trusts the dependency again. `dispose()` is idempotent.
   */
  isolate(): Disposable {
    if (this.#isolations++ === 0) {
      this.#detector.reset();
      this.#transition(ISOLATED, 'isolated', undefined);
    }
    let held = true;
    return {
      dispose: () => {
        if (!held) return;
        held = false;
        if (--this.#isolations === 0) this.#toHalfOpen('released');
      },
    };
  }

  /**
   * The state as a plain, versioned object, for `initialState` in this or another process (see
   * {@link CircuitBreakerSnapshot}). Half-open and isolated are exported as open with no time left.
   */
  toJSON(): CircuitBreakerSnapshot {
    const now = this.clock.now();
    this.#refresh(now);
    return {
      version: 1,
      state: this.#state === CLOSED ? 'closed' : 'open',
      savedAtEpochMs: Date.now(),
      openRemainingMs: this.#state === OPEN ? Math.max(0, this.#openUntil - now) : 0,
      backoffLevel: this.#level,
      window: this.#detector.toJSON(now),
    };
  }

  #restore(snapshot: CircuitBreakerSnapshot): void {
    const now = this.clock.now();
    const elapsedMs = Math.max(0, Date.now() - snapshot.savedAtEpochMs);
    this.#level = snapshot.backoffLevel;
    if (snapshot.window.type === this.strategy.type) this.#detector.restore(snapshot.window, elapsedMs, now);
    if (snapshot.state === 'open') {
      this.#detector.reset();
      this.#state = OPEN;
      // never longer than this breaker's own configuration would keep it open
      const remaining = Math.min(snapshot.openRemainingMs - elapsedMs, this.#openDurationFor(this.#level));
      this.#openUntil = now + Math.max(0, remaining);
    }
  }

  async #call<T>(
    fn: Operation<T>,
    ctx: CallContext,
    generation: number,
    start: number,
    slot: number,
  ): Promise<T> {
    let value: T;
    try {
      value = await fn(ctx);
    } catch (error) {
      this.#settle(false, error, ctx, generation, start, slot);
      throw error;
    }
    this.#settle(true, value, ctx, generation, start, slot);
    return value;
  }

  #settle(
    ok: boolean,
    result: unknown,
    ctx: CallContext,
    generation: number,
    start: number,
    slot: number,
  ): void {
    if (generation !== this.#generation) return this.#ignored('stale', ok, result, ctx);
    let verdict: boolean | 'ignore';
    if (this.#isFailure === undefined) {
      verdict = ok ? false : isLocalRejection(result) ? 'ignore' : true;
    } else {
      try {
        verdict = this.#isFailure(ok ? { ok: true, value: result } : { ok: false, error: result });
      } catch (error) {
        // a throwing predicate is a bug to surface (the call rejects with it), not a verdict
        if (slot !== NOT_A_PROBE) this.#freePermit(slot);
        throw error;
      }
    }
    if (verdict === 'ignore') return this.#ignored('predicate', ok, result, ctx, slot);
    const failed = verdict === true;
    if (failed && ctx.aborted) return this.#ignored('aborted', ok, result, ctx, slot);

    const measured = start === start; // not NaN
    const now = measured || this.#detector.usesTime ? this.clock.now() : NaN;
    const durationMs = measured ? now - start : undefined;
    const slow = measured && this.#slowOn && now - start >= this.slowCallDurationMs;
    const probe = slot !== NOT_A_PROBE;
    if (failed) {
      if (this.#onFailure.active) {
        const outcome: Outcome = ok ? { ok: true, value: result } : { ok: false, error: result };
        this.#onFailure.emit({ ...outcome, name: this.name, key: ctx.key, durationMs, probe });
      }
    } else if (this.#onSuccess.active) {
      this.#onSuccess.emit({ name: this.name, key: ctx.key, durationMs, probe });
    }
    if (slow && this.#onSlowCall.active) {
      this.#onSlowCall.emit({
        name: this.name,
        key: ctx.key,
        durationMs: durationMs!,
        slowCallDurationMs: this.slowCallDurationMs,
        failed,
        probe,
      });
    }
    if (generation !== this.#generation) return; // a listener changed the state (e.g. isolate())

    if (!probe) {
      const trip = this.#detector.record((failed ? FAILURE : 0) | (slow ? SLOW : 0), now);
      if (trip !== undefined)
        this.#open(trip, measured || this.#detector.usesTime ? now : this.clock.now(), 0);
      return;
    }
    this.#probeStarts[slot] = NaN;
    this.#probesInFlight--;
    this.#probesSettled++;
    if (failed) this.#probeFailures++;
    if (slow) this.#probeSlow++;
    // the rates are over every permit: once they reach a threshold, the round can no longer pass
    const permits = this.halfOpenPermits;
    if (this.#probeFailures / permits >= this.failureRateThreshold)
      this.#open('probes-failed', now, this.#level + 1);
    else if (this.#probeSlow / permits >= this.slowCallRateThreshold)
      this.#open('probes-slow', now, this.#level + 1);
    else if (this.#probesSettled === permits) this.#close();
  }

  #ignored(
    reason: CircuitIgnoreReason,
    ok: boolean,
    result: unknown,
    ctx: CallContext,
    slot = NOT_A_PROBE,
  ): void {
    // an ignored probe gives its permit back, so another caller can probe instead
    if (slot !== NOT_A_PROBE && reason !== 'stale') this.#freePermit(slot);
    if (this.#onIgnored.active) {
      const outcome: Outcome = ok ? { ok: true, value: result } : { ok: false, error: result };
      this.#onIgnored.emit({ ...outcome, name: this.name, key: ctx.key, reason });
    }
  }

  #reject<T>(
    reason: CircuitRejectReason,
    retryAfterMs: number,
    fn: Operation<T>,
    ctx: CallContext,
  ): Promise<T> {
    if (this.#onReject.active) {
      this.#onReject.emit({ name: this.name, key: ctx.key, reason, retryAfterMs, enforced: this.#enforced });
    }
    if (!this.#enforced) return invoke(fn, ctx); // metrics-only: run it, unrecorded
    return Promise.reject(openError(retryAfterMs, reason, this.name));
  }

  /** Applies the transitions that are due at `now` (open → half-open, a probe past its bound → open). */
  #refresh(now: number): void {
    if (this.#state === OPEN) {
      if (now >= this.#openUntil) this.#toHalfOpen('open-elapsed');
    } else if (this.#state === HALF_OPEN && this.#probesInFlight > 0) {
      let oldest = Infinity;
      for (const started of this.#probeStarts) if (started < oldest) oldest = started;
      if (now - oldest >= this.halfOpenTimeoutMs) this.#open('half-open-timeout', now, this.#level + 1);
    }
  }

  #takePermit(now: number): number {
    if (this.#probesInFlight + this.#probesSettled >= this.halfOpenPermits) return NOT_A_PROBE;
    const starts = this.#probeStarts;
    for (let i = 0; i < starts.length; i++) {
      if (starts[i] !== starts[i]) {
        starts[i] = now;
        this.#probesInFlight++;
        return i;
      }
    }
    return NOT_A_PROBE;
  }

  #freePermit(slot: number): void {
    this.#probeStarts[slot] = NaN;
    this.#probesInFlight--;
  }

  #open(reason: CircuitTransitionReason, now: number, level: number): void {
    this.#level = level;
    const durationMs = this.#openDurationFor(level);
    this.#openUntil = now + durationMs;
    this.#detector.reset();
    this.#transition(OPEN, reason, durationMs);
  }

  #close(): void {
    this.#level = 0;
    this.#detector.reset();
    this.#transition(CLOSED, 'probes-passed', undefined);
  }

  #toHalfOpen(reason: CircuitTransitionReason): void {
    this.#probeStarts.fill(NaN);
    this.#probesInFlight = this.#probesSettled = this.#probeFailures = this.#probeSlow = 0;
    this.#transition(HALF_OPEN, reason, undefined);
  }

  /** Every state change goes through here: state first, then the generation, then the event. */
  #transition(to: number, reason: CircuitTransitionReason, openDurationMs: number | undefined): void {
    const from = this.#state;
    this.#state = to;
    const generation = ++this.#generation;
    if (this.#onStateChange.active) {
      this.#onStateChange.emit({
        name: this.name,
        from: STATES[from]!,
        to: STATES[to]!,
        reason,
        generation,
        openDurationMs,
      });
    }
  }
}

/** Creates a {@link CircuitBreakerPolicy}. Every option has a default (see {@link CIRCUIT_BREAKER_DEFAULTS}). */
export function circuitBreaker(options?: CircuitBreakerOptions): CircuitBreakerPolicy {
  return new CircuitBreakerPolicy(options);
}

export { CIRCUIT_BREAKER_DEFAULTS } from './breaker/options.js';
export type {
  CircuitBreakerOptions,
  CircuitBreakerMode,
  CircuitBreakerStrategy,
  ConsecutiveStrategy,
  CountStrategy,
  TimeStrategy,
  OpenDurationBackoff,
} from './breaker/options.js';
export type { CircuitBreakerSnapshot } from './breaker/snapshot.js';
export type { WindowMetrics, WindowSnapshot, TripReason } from './breaker/detector.js';
