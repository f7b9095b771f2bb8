/**
 * circuitBreaker: stops calling a dependency that keeps failing, and probes it before trusting it again.
 *
 * States: `closed` (calls pass; a strategy in breaker/ watches failures and slow calls), `open` (calls are
 * rejected at once with {@link CircuitOpenError}), `half-open` (up to `halfOpenPermits` probe calls pass;
 * every other caller is rejected at once, nobody waits), `isolated` (forced open while any
 * {@link CircuitBreakerPolicy.isolate} handle is held).
 *
 * - No timer per breaker. open → half-open happens on the next call or `state` read once the open
 *   duration has passed, and also when it is due, through one unref'd timer shared by every breaker on
 *   the same clock (`TimerQueue`): metrics and `onStateChange` see the change without traffic. A probe
 *   that has not settled within `halfOpenTimeoutMs` is noticed the same ways.
 * - By hand: `open()` (an operator, or another instance of the service: the breaker then keeps its own
 *   probe schedule), `close()`, `reset()`, `isolate()`; events say who (`by`) and why (`note`).
 * - Every transition bumps a generation counter; a call records its outcome only if the generation it was
 *   admitted in is still current, so a late result from before a transition cannot move the new state.
 * - What counts is the classifier's call (classify.ts, shared with retry): `failure` and `success`
 *   verdicts are recorded, `rejected` and `ignore` are not (by default: an inner breaker's or bulkhead's
 *   rejection, a rate limit, an invalid option).
 * - A caller's abort never counts: when the call fails after the context this breaker received was
 *   aborted, the outcome is ignored. A TimeoutError from a timeout *inside* the breaker does count.
 *
 * Cost while closed: one `then` on the operation's promise per call (no `async` frame; none inside a
 * pipeline); a value is classified only when a rule looks at values; the clock is read only when a
 * slow-call threshold is set, someone listens to `onSuccess`/`onFailure`, or the time window needs it. A
 * rejection is `Promise.reject` of a {@link CircuitOpenError} made without a stack trace.
 */
import { errorVerdictOf, valueVerdictOf, type ClassifyFn, type Verdict } from './classify.js';
import { CircuitOpenError, withoutStack, type CircuitRejectReason } from './errors.js';
import type { CallContext, Operation } from './context.js';
import { EventEmitter, type Disposable, type Subscribe } from './events.js';
import * as check from './options.js';
import { TimerQueue, type TimerEntry } from './timer-queue.js';
import {
  BasePolicy,
  DECLINE,
  forwardsContext,
  INLINE,
  invoke,
  type InlineStage,
  type Outcome,
} from './policy.js';
import { FAILURE, SLOW, type FailureDetector, type WindowMetrics } from './breaker/detector.js';
import {
  createDetector,
  resolveOptions,
  type CircuitBreakerMode,
  type CircuitBreakerOptions,
  type CircuitBreakerStrategy,
} from './breaker/options.js';
import type { CircuitBreakerSnapshot, CircuitTrip } from './breaker/snapshot.js';
import { ProbeRound } from './breaker/half-open.js';
import type {
  CircuitBreakerMetrics,
  CircuitFailureEvent,
  CircuitIgnoredEvent,
  CircuitIgnoreReason,
  CircuitRejectEvent,
  CircuitSlowCallEvent,
  CircuitState,
  CircuitStateChangeEvent,
  CircuitSuccessEvent,
  CircuitTransitionReason,
} from './breaker/events.js';

const CLOSED = 0;
const OPEN = 1;
const HALF_OPEN = 2;
const ISOLATED = 3;
const STATES: readonly CircuitState[] = ['closed', 'open', 'half-open', 'isolated'];
/** `slot` of a call admitted while closed (probes carry their permit's index). */
const NOT_A_PROBE = ProbeRound.NONE;

/** Who changed the state by hand, and why (carried by the `onStateChange` event and the trip record). */
export interface CircuitControl {
  /** Who: an operator, a tool, `fleet:<instance>`. */
  readonly by?: string;
  /** Why, in words. */
  readonly note?: string;
}

/** Options of {@link CircuitBreakerPolicy.open}. */
export interface CircuitOpenOptions extends CircuitControl {
  /** How long to stay open, in ms (> 0). @default the breaker's own open duration (with its backoff) */
  readonly openDurationMs?: number;
}

const CONTROL_KEYS = ['by', 'note'] as const;
const OPEN_KEYS = ['by', 'note', 'openDurationMs'] as const;

/** Checks the options of `open()` / `close()` / `reset()`. */
function control(method: string, value: unknown, keys: readonly string[]): CircuitOpenOptions {
  const o = check.optionsObject(`circuitBreaker.${method}`, value as CircuitOpenOptions | undefined);
  check.knownKeys(`circuitBreaker.${method}`, o, keys);
  if (o.by !== undefined) check.string(`circuitBreaker.${method}.by`, o.by);
  if (o.note !== undefined) check.string(`circuitBreaker.${method}.note`, o.note);
  if (o.openDurationMs !== undefined)
    check.positiveMs(`circuitBreaker.${method}.openDurationMs`, o.openDurationMs);
  return o;
}

/** The breaker's entry in its clock's shared timer queue: wakes it when a transition is due. */
class Wake implements TimerEntry {
  declare timerAt: number;
  declare timerIndex: number;
  declare timerKeepAlive: boolean;
  declare timerSeq: number;
  declare readonly onTimer: (now: number) => void;

  constructor(onTimer: (now: number) => void) {
    this.timerAt = Infinity;
    this.timerIndex = -1;
    this.timerKeepAlive = false;
    this.timerSeq = 0;
    this.onTimer = onTimer;
  }
}

/** A call admitted inline while closed whose duration is measured: its generation and start time. */
class Measured {
  declare readonly generation: number;
  declare readonly start: number;

  constructor(generation: number, start: number) {
    this.generation = generation;
    this.start = start;
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
  readonly #classify: ClassifyFn;
  /** Whether values are classified (else every value is a success). */
  readonly #judgesValues: boolean;
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
  /** Isolated: the `retryAfterMs` hint (isolation has no known end: the open duration, as a "check back later"). */
  #isolatedRetryAfterMs = 0;
  /** Half-open: the probe round. */
  readonly #probes: ProbeRound;
  /** Why the breaker last opened from closed (kept until it closes). */
  #trip: CircuitTrip | undefined = undefined;
  readonly #queue: TimerQueue;
  readonly #wake: Wake;

  constructor(options?: CircuitBreakerOptions) {
    const o = resolveOptions(options);
    super(o.clock);
    this.name = o.name;
    this.mode = o.mode;
    this.strategy = o.strategy;
    this.failureRateThreshold = o.failureRateThreshold;
    this.slowCallDurationMs = o.slowCallDurationMs;
    this.slowCallRateThreshold = o.slowCallRateThreshold;
    this.openDurationMs = o.openDurationMs;
    this.halfOpenPermits = o.halfOpenPermits;
    this.halfOpenTimeoutMs = o.halfOpenTimeoutMs;
    this.#openDurationFor = o.openDurationFor;
    this.#classify = o.classify;
    this.#judgesValues = o.judgesValues;
    this.#disabled = o.mode === 'disabled';
    this.#enforced = o.mode === 'enabled';
    this.#slowOn = o.slowCallDurationMs !== Infinity;
    this.#probes = new ProbeRound(o.halfOpenPermits, o.failureRateThreshold, o.slowCallRateThreshold);
    this.#detector = createDetector(o);
    this.#queue = TimerQueue.for(this.clock);
    this.#wake = new Wake((now) => {
      this.#refresh(now);
      this.#schedule();
    });
    if (o.initialState !== undefined) this.#restore(o.initialState);
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
      probes: state === HALF_OPEN ? this.#probes.metrics() : undefined,
      trip: this.#trip,
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
        const slot = this.#probes.take(now);
        if (slot !== NOT_A_PROBE) {
          // the first probe in flight: the round's timeout becomes due
          if (this.#wake.timerIndex < 0) this.#schedule();
          return this.#call(fn, ctx, this.#generation, now, slot);
        }
        return this.#reject('half-open-full', 0, fn, ctx);
      }
      case OPEN:
        return this.#reject('open', Math.ceil(this.#openUntil - now), fn, ctx);
      case ISOLATED:
        return this.#reject('isolated', this.#isolatedRetryAfterMs, fn, ctx);
      default: // closed cannot follow a refresh, but stay correct if it ever did
        return this.#call(fn, ctx, this.#generation, now, NOT_A_PROBE);
    }
  }

  /**
   * Inside a pipeline: a call admitted while closed runs inline; its token is the generation it was
   * admitted in, or a {@link Measured} admission when its duration is measured. Anything else (open,
   * half-open, isolated, disabled) goes through `run`.
   */
  [INLINE](): InlineStage {
    return {
      scopes: false,
      detaches: false,
      enter: (): unknown => {
        if (this.#state !== CLOSED || this.#disabled) return DECLINE;
        if (this.#slowOn || this.#onSuccess.active || this.#onFailure.active) {
          return new Measured(this.#generation, this.clock.now());
        }
        return this.#generation;
      },
      exit: (ctx, token, ok, result) => {
        if (typeof token === 'number') this.#settle(ok, result, ctx, token, NaN, NOT_A_PROBE);
        else {
          const admitted = token as Measured;
          this.#settle(ok, result, ctx, admitted.generation, admitted.start, NOT_A_PROBE);
        }
        return undefined;
      },
    };
  }

  /**
   * Forces the breaker open until every handle returned is disposed (handles are counted, so independent
   * owners can isolate and release without coordinating). On the last release the breaker goes half-open:
   * it probes before it trusts the dependency again. `dispose()` is idempotent.
   */
  isolate(): Disposable {
    if (this.#isolations++ === 0) {
      this.#isolatedRetryAfterMs = this.#openDurationFor(this.#level);
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
   * Opens a closed breaker by hand, as if it had tripped (reason `'manual-open'`): it then keeps its own
   * schedule, going half-open after its open duration and probing. For an operator, and for a fleet of
   * instances sharing what they see: when another instance opened its breaker for the same dependency,
   * `open({ by: 'fleet:<instance>', note })` here. Does nothing (returns false) unless closed: an open or
   * half-open breaker already has its schedule, an isolated one is held open.
   */
  open(options?: CircuitOpenOptions): boolean {
    const o = control('open', options, OPEN_KEYS);
    this.#refresh(this.clock.now());
    if (this.#state !== CLOSED) return false;
    this.#open('manual-open', this.clock.now(), this.#level, o, o.openDurationMs);
    return true;
  }

  /**
   * Closes an open or half-open breaker by hand (reason `'manual-close'`): the window starts empty and the
   * open-duration backoff starts again from its first step. Returns false (and does nothing) when the
   * breaker is closed already, or isolated (release the `isolate()` handles instead).
   */
  close(options?: CircuitControl): boolean {
    const o = control('close', options, CONTROL_KEYS);
    this.#refresh(this.clock.now()); // what was due happened first, as for a read of the state
    if (this.#state === CLOSED || this.#state === ISOLATED) return false;
    this.#toClosed('manual-close', o);
    return true;
  }

  /**
   * Resets the breaker to a fresh closed one (reason `'reset'`), whatever its state but isolated: empty
   * window, backoff level 0, no trip record; calls in flight become stale. Always emits `onStateChange`
   * (from `closed` to `closed` when it was closed). Returns false (and does nothing) when isolated.
   */
  reset(options?: CircuitControl): boolean {
    const o = control('reset', options, CONTROL_KEYS);
    if (this.#state === ISOLATED) return false;
    this.#toClosed('reset', o);
    return true;
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
      ...(this.#state !== CLOSED && this.#trip !== undefined ? { trip: this.#trip } : {}),
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
      this.#trip = snapshot.trip;
      this.#schedule();
    }
  }

  #call<T>(fn: Operation<T>, ctx: CallContext, generation: number, start: number, slot: number): Promise<T> {
    return invoke(fn, ctx).then(
      (value) => {
        this.#settle(true, value, ctx, generation, start, slot);
        return value;
      },
      (error: unknown) => {
        this.#settle(false, error, ctx, generation, start, slot);
        throw error;
      },
    );
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
    let verdict: Verdict = 'success';
    if (!ok || this.#judgesValues) {
      try {
        verdict = ok
          ? valueVerdictOf(this.#classify, result, ctx)
          : errorVerdictOf(this.#classify, result, ctx);
      } catch (error) {
        // a throwing classifier is a bug to surface (the call rejects with it), not a verdict
        if (slot !== NOT_A_PROBE) {
          this.#probes.release(slot);
          this.#schedule();
        }
        throw error;
      }
    }
    if (verdict === 'ignore' || verdict === 'rejected') {
      return this.#ignored('classified', ok, result, ctx, slot);
    }
    const failed = verdict === 'failure';
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
    const round = this.#probes.settle(slot, failed, slow);
    if (round === 'probes-passed') this.#close();
    else if (round !== undefined) this.#open(round, now, this.#level + 1);
    else this.#schedule(); // the oldest probe in flight changed (or none is left)
  }

  #ignored(
    reason: CircuitIgnoreReason,
    ok: boolean,
    result: unknown,
    ctx: CallContext,
    slot = NOT_A_PROBE,
  ): void {
    // an ignored probe gives its permit back, so another caller can probe instead
    if (slot !== NOT_A_PROBE && reason !== 'stale') {
      this.#probes.release(slot);
      this.#schedule();
    }
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
    return Promise.reject(withoutStack(() => new CircuitOpenError(retryAfterMs, reason, this.name)));
  }

  /** Applies the transitions that are due at `now` (open → half-open, a probe past its bound → open). */
  #refresh(now: number): void {
    if (this.#state === OPEN) {
      if (now >= this.#openUntil) this.#toHalfOpen('open-elapsed');
    } else if (this.#state === HALF_OPEN && now - this.#probes.oldestStart() >= this.halfOpenTimeoutMs) {
      this.#open('half-open-timeout', now, this.#level + 1);
    }
  }

  #open(
    reason: CircuitTransitionReason,
    now: number,
    level: number,
    by?: CircuitControl,
    openDurationMs?: number,
  ): void {
    let window: WindowMetrics | undefined;
    if (this.#state === CLOSED) {
      // the window that tripped the breaker, kept in the event and the trip record until it closes
      if (reason !== 'manual-open') window = this.#detector.metrics(now);
      this.#trip = {
        reason: reason as CircuitTrip['reason'],
        window,
        atEpochMs: Date.now(),
        by: by?.by,
        note: by?.note,
      };
    }
    this.#level = level;
    const durationMs = openDurationMs ?? this.#openDurationFor(level);
    this.#openUntil = now + durationMs;
    this.#detector.reset();
    this.#transition(OPEN, reason, durationMs, by, window);
  }

  #close(): void {
    this.#toClosed('probes-passed', undefined);
  }

  #toClosed(reason: CircuitTransitionReason, by: CircuitControl | undefined): void {
    this.#level = 0;
    this.#trip = undefined;
    this.#detector.reset();
    this.#transition(CLOSED, reason, undefined, by);
  }

  #toHalfOpen(reason: CircuitTransitionReason): void {
    this.#probes.reset();
    this.#transition(HALF_OPEN, reason, undefined);
  }

  /** Every state change goes through here: state first, then the generation, the wake-up, then the event. */
  #transition(
    to: number,
    reason: CircuitTransitionReason,
    openDurationMs: number | undefined,
    by?: CircuitControl,
    window?: WindowMetrics,
  ): void {
    const from = this.#state;
    this.#state = to;
    const generation = ++this.#generation;
    this.#schedule();
    if (this.#onStateChange.active) {
      this.#onStateChange.emit({
        name: this.name,
        from: STATES[from]!,
        to: STATES[to]!,
        reason,
        generation,
        openDurationMs,
        by: by?.by,
        note: by?.note,
        window,
      });
    }
  }

  /**
   * Keeps the breaker's entry in the shared timer queue at its next due transition: the end of the open
   * duration, or the half-open round's timeout while a probe is in flight; out of the queue otherwise.
   */
  #schedule(): void {
    if (this.#disabled) return;
    let at = Infinity;
    if (this.#state === OPEN) at = this.#openUntil;
    else if (this.#state === HALF_OPEN && this.halfOpenTimeoutMs !== Infinity) {
      at = this.#probes.oldestStart() + this.halfOpenTimeoutMs;
    }
    if (at === Infinity) this.#queue.remove(this.#wake);
    else this.#queue.move(this.#wake, at, false);
  }
}

forwardsContext(CircuitBreakerPolicy);

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
export type { CircuitBreakerSnapshot, CircuitTrip } from './breaker/snapshot.js';
export type { WindowMetrics, WindowSnapshot, TripReason } from './breaker/detector.js';
export type {
  CircuitBreakerMetrics,
  CircuitFailureEvent,
  CircuitIgnoredEvent,
  CircuitIgnoreReason,
  CircuitRejectEvent,
  CircuitSlowCallEvent,
  CircuitState,
  CircuitStateChangeEvent,
  CircuitSuccessEvent,
  CircuitTransitionReason,
} from './breaker/events.js';
