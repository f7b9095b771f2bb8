/**
 * hedge: when an attempt is slow, start another one; the first success wins and the others are cancelled.
 *
 * The tail-latency cure of "The Tail at Scale" (Dean and Barroso): most slow answers are slow by bad
 * luck (a GC pause, a busy replica, a lost packet), so a second attempt started after the usual latency
 * usually answers long before the first would have. It runs the operation more than once at the same
 * time, so it is only for **idempotent** operations, and the factory says so: `idempotent: true` is
 * required (or a predicate deciding per call, e.g. by HTTP method).
 *
 * - Delay: fixed (`delayMs`), or adaptive (the default): the `percentile` (0.95) of the latencies of
 *   recent successful attempts, kept within [`minDelayMs`, `maxDelayMs`]. Until `minSamples` latencies
 *   were seen, nothing is hedged (no data, no idea what "slow" is).
 * - Winning: an attempt whose outcome the classifier (shared with retry and the breaker) calls `success`
 *   settles the call; every other attempt's signal is aborted with {@link HedgeCancelledError}, so its
 *   work stops and a breaker inside does not count it. An attempt that fails while others run is
 *   forgotten; when the last one in flight fails, the call fails with its outcome (retrying is retry's
 *   job: put retry outside hedge).
 * - Budget: each call deposits into a {@link RetryBudget} and each hedge withdraws from it; with the
 *   default budget (ratio 0.1, no floor) hedges are at most 10 % extra attempts over any 10 s. Share a
 *   budget with retry to cap both kinds of extra load together.
 * - Deadline: no hedge starts once the delay would reach the call's deadline.
 *
 * Cost: a call that is not hedged (its first attempt answers before the delay) makes an abort scope for
 * the attempt, an entry in the clock's shared timer queue (no timer of its own), a promise and reads the
 * clock twice. A call declared not idempotent runs the operation directly.
 */
import type { Clock } from './clock.js';
import { errorVerdictOf, judgesValues, valueVerdictOf, type ClassifyFn, type Verdict } from './classify.js';
import { classify } from './classify.js';
import { Context, ScopeContext, type CallContext, type Operation } from './context.js';
import { HedgeCancelledError, InvalidOptionError, withoutStack } from './errors.js';
import { EventEmitter, type Subscribe } from './events.js';
import * as check from './options.js';
import { BasePolicy, forwardsContext, invoke } from './policy.js';
import { capturingPromise, takeReject, takeResolve } from './promise.js';
import { retryBudget, type RetryBudget } from './retry-budget.js';
import { TimerQueue, type TimerEntry } from './timer-queue.js';
import { LatencyWindow } from './hedge/latency.js';

export interface HedgeOptions {
  /**
   * Required: hedging runs the operation more than once at the same time, so say that it may. `true`
   * for every call, or a predicate deciding per call (a call it rejects runs once, unhedged).
   */
  idempotent: true | ((ctx: CallContext) => boolean);
  /** A fixed delay before each hedge, in ms (≥ 0). Excludes the adaptive options below. @default adaptive */
  delayMs?: number;
  /** Adaptive delay: the latency percentile (0 < p < 1) after which an attempt counts as slow. @default 0.95 */
  percentile?: number;
  /** Adaptive delay: the shortest delay, in ms (≥ 0). @default 1 */
  minDelayMs?: number;
  /** Adaptive delay: the longest delay, in ms (≥ minDelayMs). @default 5_000 */
  maxDelayMs?: number;
  /** Adaptive delay: latencies needed in the window before hedging starts (≥ 1). @default 20 */
  minSamples?: number;
  /** Adaptive delay: how much latency history counts, in ms (the last half to whole of it). @default 30_000 */
  windowMs?: number;
  /** Hedges per call at most (attempts = 1 + maxHedges), each `delay` after the previous one. @default 1 */
  maxHedges?: number;
  /**
   * Caps hedges across calls: every call deposits, every hedge withdraws (see {@link retryBudget}).
   * @default retryBudget({ ratio: 0.1, minRetriesPerSecond: 0 }) — at most 10 % extra attempts
   */
  budget?: RetryBudget;
  /** What a success is (the first `success` verdict wins). @default classify */
  classify?: ClassifyFn;
  /** Name used in events. @default 'hedge' */
  name?: string;
  /** @default systemClock */
  clock?: Clock;
}

/** The defaults of {@link HedgeOptions}. */
export const HEDGE_DEFAULTS = Object.freeze({
  percentile: 0.95,
  minDelayMs: 1,
  maxDelayMs: 5_000,
  minSamples: 20,
  windowMs: 30_000,
  maxHedges: 1,
  /** The default budget's ratio (its floor is 0). */
  budgetRatio: 0.1,
  classify: classify as ClassifyFn,
  name: 'hedge',
});

const ADAPTIVE_KEYS = ['percentile', 'minDelayMs', 'maxDelayMs', 'minSamples', 'windowMs'] as const;
const KEYS = [
  'idempotent',
  'delayMs',
  ...ADAPTIVE_KEYS,
  'maxHedges',
  'budget',
  'classify',
  'name',
  'clock',
] as const;

/** Why a hedge was not started when it was due. */
export type HedgeSkipReason = 'budget' | 'deadline';

interface HedgeEventBase {
  readonly name: string;
  readonly key: string | undefined;
}

/**
 * What a hedged call did. `started`: attempt `attempt` (2, 3, …) began `delayMs` after the previous one;
 * `won`: attempt `attempt` (1 = the first) succeeded first, of `attempts` started; `cancelled`: attempt
 * `attempt` lost and was aborted; `skipped`: attempt `attempt` was due but not started (`reason`).
 * Calls whose first attempt answered before the delay emit nothing.
 */
export type HedgeEvent =
  | (HedgeEventBase & { readonly type: 'started'; readonly attempt: number; readonly delayMs: number })
  | (HedgeEventBase & { readonly type: 'won'; readonly attempt: number; readonly attempts: number })
  | (HedgeEventBase & { readonly type: 'cancelled'; readonly attempt: number })
  | (HedgeEventBase & {
      readonly type: 'skipped';
      readonly attempt: number;
      readonly reason: HedgeSkipReason;
    });

/** An attempt of a hedged call: its own abort scope (so it can be cancelled alone) and when it began. */
class Attempt extends ScopeContext {
  declare readonly index: number;
  declare readonly start: number;
  declare settled: boolean;

  constructor(parent: Context, index: number, start: number) {
    super(parent, Infinity);
    this.index = index;
    this.start = start;
    this.settled = false;
  }
}

export class HedgePolicy extends BasePolicy {
  readonly name: string;
  /** The fixed delay, or undefined when adaptive. */
  readonly delayMs: number | undefined;
  readonly percentile: number;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly minSamples: number;
  readonly windowMs: number;
  readonly maxHedges: number;
  readonly budget: RetryBudget;
  readonly #idempotent: ((ctx: CallContext) => boolean) | undefined;
  readonly #classify: ClassifyFn;
  readonly #judgesValues: boolean;
  readonly #latencies: LatencyWindow;
  readonly #plan: Plan;
  /** The adaptive delay, recomputed every few samples (undefined: still warming up). */
  #cachedDelay: number | undefined = undefined;
  #samplesSinceCompute = 0;
  #stale = false;
  readonly #onHedge = new EventEmitter<HedgeEvent>();
  /** Hedges started, won, cancelled and skipped. */
  readonly onHedge: Subscribe<HedgeEvent> = this.#onHedge.subscribe;

  constructor(options: HedgeOptions) {
    const o = check.optionsObject('hedge', options, true);
    check.knownKeys('hedge', o, KEYS);
    super(check.clock('hedge.clock', o.clock));
    const D = HEDGE_DEFAULTS;
    if (o.idempotent !== true && typeof o.idempotent !== 'function') {
      throw new InvalidOptionError(
        'hedge.idempotent',
        o.idempotent,
        'true, or a function (ctx) => boolean: hedging runs the operation more than once at a time, so it is only for idempotent operations',
      );
    }
    this.#idempotent = o.idempotent === true ? undefined : o.idempotent;
    if (o.delayMs !== undefined) {
      const conflict = ADAPTIVE_KEYS.find((k) => o[k] !== undefined);
      if (conflict !== undefined) {
        throw new InvalidOptionError(
          `hedge.${conflict}`,
          o[conflict],
          'no value when hedge.delayMs is given',
        );
      }
      this.delayMs = check.timerMs('hedge.delayMs', o.delayMs, { min: 0 });
    } else {
      this.delayMs = undefined;
    }
    this.percentile = check.number('hedge.percentile', o.percentile ?? D.percentile, { above: 0, max: 1 });
    if (this.percentile === 1) throw new InvalidOptionError('hedge.percentile', 1, 'a number > 0 and < 1');
    this.minDelayMs = check.timerMs('hedge.minDelayMs', o.minDelayMs ?? D.minDelayMs, { min: 0 });
    this.maxDelayMs = check.timerMs(
      'hedge.maxDelayMs',
      o.maxDelayMs ?? Math.max(D.maxDelayMs, this.minDelayMs),
      {
        min: this.minDelayMs,
      },
    );
    this.minSamples = check.positiveInteger('hedge.minSamples', o.minSamples ?? D.minSamples);
    this.windowMs = check.positiveMs('hedge.windowMs', o.windowMs ?? D.windowMs);
    this.maxHedges = check.number('hedge.maxHedges', o.maxHedges ?? D.maxHedges, {
      min: 0,
      max: 16,
      integer: true,
    });
    if (
      o.budget !== undefined &&
      (typeof o.budget !== 'object' ||
        typeof o.budget.tryWithdraw !== 'function' ||
        typeof o.budget.deposit !== 'function')
    ) {
      throw new InvalidOptionError('hedge.budget', o.budget, 'a RetryBudget (from retryBudget())');
    }
    this.budget =
      o.budget ?? retryBudget({ ratio: D.budgetRatio, minRetriesPerSecond: 0, clock: this.clock });
    this.#classify = check.fn<ClassifyFn>('hedge.classify', o.classify ?? D.classify);
    this.#judgesValues = judgesValues(this.#classify);
    this.name = check.string('hedge.name', o.name ?? D.name);
    this.#latencies = new LatencyWindow(this.windowMs);
    this.#plan = Object.freeze({
      name: this.name,
      clock: this.clock,
      maxHedges: this.maxHedges,
      budget: this.budget,
      queue: TimerQueue.for(this.clock),
      events: this.#onHedge,
      verdict: (ok: boolean, result: unknown, ctx: CallContext) => this.#verdict(ok, result, ctx),
      record: (ms: number) => this.#record(ms),
      delay: (now: number) => this.#delay(now),
    });
  }

  /** The delay a call started now would wait before its first hedge, or undefined while warming up. */
  get currentDelayMs(): number | undefined {
    return this.#delay(this.clock.now());
  }

  run<T>(fn: Operation<T>, parent: CallContext): Promise<T> {
    const ctx = Context.from(parent, this.clock);
    if (ctx.aborted) return Promise.reject(ctx.reason);
    if (this.#idempotent !== undefined && !this.#idempotent(ctx)) return invoke(fn, ctx);
    this.budget.deposit();
    const now = this.clock.now();
    const delay = this.maxHedges === 0 ? undefined : this.#delay(now);
    if (delay === undefined) {
      // warming up (or no hedges): one attempt, timed so the estimate can learn
      return invoke(fn, ctx).then((value) => {
        this.#record(this.clock.now() - now);
        return value;
      });
    }
    return new HedgeCall<T>(this.#plan, fn, ctx, now, delay).promise;
  }

  /** The verdict on an attempt's outcome (may throw: a classifier bug). */
  #verdict(ok: boolean, result: unknown, ctx: CallContext): Verdict {
    if (ok) return this.#judgesValues ? valueVerdictOf(this.#classify, result, ctx) : 'success';
    return errorVerdictOf(this.#classify, result, ctx);
  }

  #record(ms: number): void {
    if (this.delayMs !== undefined) return;
    this.#latencies.record(ms, this.clock.now());
    // recompute after every 16 samples (and at each sample while warming up)
    if (++this.#samplesSinceCompute >= 16 || this.#cachedDelay === undefined) this.#stale = true;
  }

  #delay(now: number): number | undefined {
    if (this.delayMs !== undefined) return this.delayMs;
    if (this.#stale) {
      this.#stale = false;
      this.#samplesSinceCompute = 0;
      const p = this.#latencies.percentile(this.percentile, this.minSamples, now);
      this.#cachedDelay =
        p === undefined ? undefined : Math.min(this.maxDelayMs, Math.max(this.minDelayMs, p));
    }
    return this.#cachedDelay;
  }
}

/** What a {@link HedgeCall} needs from its policy, resolved once and shared by every call. */
interface Plan {
  readonly name: string;
  readonly clock: Clock;
  readonly maxHedges: number;
  readonly budget: RetryBudget;
  readonly queue: TimerQueue;
  readonly events: EventEmitter<HedgeEvent>;
  /** The verdict on an attempt's outcome (may throw: a classifier bug). */
  readonly verdict: (ok: boolean, result: unknown, ctx: CallContext) => Verdict;
  /** A successful attempt took `ms`. */
  readonly record: (ms: number) => void;
  /** The delay before the next hedge (undefined: do not hedge). */
  readonly delay: (now: number) => number | undefined;
}

/** One hedged call: its attempts, the pending hedge (an entry in the clock's timer queue) and its promise. */
class HedgeCall<T> implements TimerEntry {
  declare timerAt: number;
  declare timerIndex: number;
  declare timerKeepAlive: boolean;
  declare timerSeq: number;
  readonly promise: Promise<T>;
  readonly #resolve: (value: unknown) => void;
  readonly #reject: (error: unknown) => void;
  readonly #policy: Plan;
  readonly #fn: Operation<T>;
  readonly #ctx: Context;
  readonly #attempts: Attempt[] = [];
  #inFlight = 0;
  #done = false;
  #unlisten: (() => void) | undefined = undefined;

  constructor(policy: Plan, fn: Operation<T>, ctx: Context, now: number, delay: number) {
    this.timerAt = Infinity;
    this.timerIndex = -1;
    this.timerKeepAlive = true;
    this.timerSeq = 0;
    this.promise = capturingPromise<T>();
    this.#resolve = takeResolve();
    this.#reject = takeReject();
    this.#policy = policy;
    this.#fn = fn;
    this.#ctx = ctx;
    if (ctx.abortable) this.#unlisten = ctx.listen((reason) => this.#end(false, reason));
    this.#launch(now);
    this.#schedule(now, delay);
  }

  /** A hedge is due. */
  onTimer(now: number): void {
    if (this.#done) return;
    const policy = this.#policy;
    const attempt = this.#attempts.length + 1;
    if (!policy.budget.tryWithdraw()) {
      this.#emit({ type: 'skipped', attempt, reason: 'budget' });
      return;
    }
    const delay = policy.delay(now) ?? 0;
    this.#launch(now);
    this.#emit({ type: 'started', attempt, delayMs: now - this.#attempts[attempt - 2]!.start });
    if (attempt <= policy.maxHedges) this.#schedule(now, delay);
  }

  /** Queues the next hedge `delay` from now, unless that reaches the call's deadline. */
  #schedule(now: number, delay: number): void {
    const at = now + delay;
    if (at >= this.#ctx.deadline) {
      this.#emit({ type: 'skipped', attempt: this.#attempts.length + 1, reason: 'deadline' });
      return;
    }
    this.#policy.queue.add(this, at, true);
  }

  #launch(now: number): void {
    const attempt = new Attempt(this.#ctx, this.#attempts.length + 1, now);
    this.#attempts.push(attempt);
    this.#inFlight++;
    invoke(this.#fn, attempt).then(
      (value) => this.#settled(attempt, true, value),
      (error: unknown) => this.#settled(attempt, false, error),
    );
  }

  #settled(attempt: Attempt, ok: boolean, result: unknown): void {
    attempt.settled = true;
    attempt.release();
    this.#inFlight--;
    if (this.#done) return;
    let verdict: Verdict;
    try {
      verdict = this.#policy.verdict(ok, result, attempt);
    } catch (error) {
      return this.#end(false, error); // a classifier bug surfaces as the call's error
    }
    if (verdict === 'success') return this.#win(attempt, ok, result);
    // lost an attempt: wait for the others, or fail with this outcome when none is left
    if (this.#inFlight === 0) this.#end(ok, result);
  }

  #win(winner: Attempt, ok: boolean, result: unknown): void {
    const policy = this.#policy;
    const now = policy.clock.now();
    policy.record(now - winner.start);
    const attempts = this.#attempts;
    if (attempts.length > 1) {
      let reason: HedgeCancelledError | undefined;
      for (const attempt of attempts) {
        if (attempt === winner || attempt.settled) continue;
        reason ??= withoutStack(() => new HedgeCancelledError(winner.index));
        attempt.abort(reason);
        this.#emit({ type: 'cancelled', attempt: attempt.index });
      }
      this.#emit({ type: 'won', attempt: winner.index, attempts: attempts.length });
    }
    this.#end(ok, result);
  }

  /** The call is over: stop the pending hedge and listening, settle. */
  #end(ok: boolean, result: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#policy.queue.remove(this);
    const unlisten = this.#unlisten;
    if (unlisten !== undefined) {
      this.#unlisten = undefined;
      unlisten();
    }
    if (ok) this.#resolve(result);
    else this.#reject(result);
  }

  #emit(
    event:
      | { type: 'started'; attempt: number; delayMs: number }
      | { type: 'won'; attempt: number; attempts: number }
      | { type: 'cancelled'; attempt: number }
      | { type: 'skipped'; attempt: number; reason: HedgeSkipReason },
  ): void {
    const events = this.#policy.events;
    if (events.active) events.emit({ name: this.#policy.name, key: this.#ctx.key, ...event });
  }
}

forwardsContext(HedgePolicy);

/** Creates a {@link HedgePolicy}. */
export function hedge(options: HedgeOptions): HedgePolicy {
  return new HedgePolicy(options);
}
