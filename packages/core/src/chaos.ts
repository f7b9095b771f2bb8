/**
 * Chaos policies: inject faults, latency or made-up outcomes into calls, in production code, to rehearse
 * an outage (a game day) and check that the breakers, fallbacks, alerts and runbooks do what they should
 * (Polly's Simmy strategies, for JavaScript).
 *
 * - `chaos.fault({ rate, fault })`: fails the call with `fault` (by default a {@link ChaosFaultError})
 *   instead of running the operation. The classifier sees an ordinary failure: a breaker counts it.
 * - `chaos.latency({ rate, latencyMs })`: waits `latencyMs` before running the operation (the wait ends
 *   early, with the abort's reason, when the call is aborted or its deadline passes).
 * - `chaos.outcome({ rate, outcome })`: answers with `outcome(ctx)` instead of running the operation.
 *
 * Each injects into a share `rate` (0 … 1, or a function of the call) of the calls, decided with `random`
 * (`seededRandom(seed)` replays a run exactly). `policy.enabled` is the switch, changeable at any time
 * (`enabled: false` at construction to build it off); `when(ctx)` narrows it per call (a shared game-day
 * flag, one key). Every injection emits `onInject`.
 *
 * Off costs nothing measurable: `run` checks one boolean and calls the operation; inside a pipeline the
 * stage is entered inline and its exit does nothing (the benchmark "chaos off" keeps it so).
 */
import type { RandomSource } from './backoff/backoff.js';
import type { Clock } from './clock.js';
import { Context, type CallContext, type Operation } from './context.js';
import { ChaosFaultError, InvalidOptionError } from './errors.js';
import { EventEmitter, type Subscribe } from './events.js';
import * as check from './options.js';
import { BasePolicy, DECLINE, forwardsContext, INLINE, invoke, type InlineStage } from './policy.js';
import { capturingPromise, takeReject, takeResolve } from './promise.js';
import { TimerQueue, type TimerEntry } from './timer-queue.js';

export type ChaosKind = 'fault' | 'latency' | 'outcome';

/** The options every chaos policy takes. */
export interface ChaosOptions {
  /**
   * The share of calls to inject into, 0 … 1, or a function of the call returning it (any other answer —
   * `2`, `'1'`, `NaN` — fails the call with `InvalidOptionError`). Required.
   */
  rate: number | ((ctx: CallContext) => number);
  /** Whether the policy starts on; `policy.enabled` changes it at run time. @default true */
  enabled?: boolean;
  /** Injects only into the calls it accepts (checked only while enabled). @default every call */
  when?: (ctx: CallContext) => boolean;
  /** Uniform random numbers in [0, 1) (`seededRandom(seed)` for a replayable run). @default Math.random */
  random?: RandomSource;
  /** Name used in events and in the default fault. @default 'chaos' */
  name?: string;
  /** @default systemClock */
  clock?: Clock;
}

export interface ChaosFaultOptions extends ChaosOptions {
  /**
   * What the call fails with: an `Error`, or a function of the call making a fresh one each time (the
   * same `Error` object thrown again and again keeps its first stack). A function that returns `undefined`
   * or `null` fails the call with `InvalidOptionError` naming `chaos.fault.fault`.
   * @default () => new ChaosFaultError(name)
   */
  fault?: Error | ((ctx: CallContext) => unknown);
}

export interface ChaosLatencyOptions extends ChaosOptions {
  /** How long to wait before running the operation, in ms (0 … 2^31 − 1), or a function of the call. Required. */
  latencyMs: number | ((ctx: CallContext) => number);
}

export interface ChaosOutcomeOptions<T = unknown> extends ChaosOptions {
  /** The answer instead of the operation's (a value or a promise). Required. */
  outcome: (ctx: CallContext) => T | PromiseLike<T>;
}

/** The defaults of {@link ChaosOptions}. */
export const CHAOS_DEFAULTS = Object.freeze({
  enabled: true,
  random: Math.random as RandomSource,
  name: 'chaos',
});

const BASE_KEYS = ['rate', 'enabled', 'when', 'random', 'name', 'clock'] as const;

export interface ChaosInjectEvent {
  readonly name: string;
  readonly key: string | undefined;
  readonly kind: ChaosKind;
  /** `latency`: the delay injected, in ms. */
  readonly latencyMs: number | undefined;
}

/** A wait injected by `chaos.latency`: an entry in the clock's shared timer queue. */
class Delay implements TimerEntry {
  declare timerAt: number;
  declare timerIndex: number;
  declare timerKeepAlive: boolean;
  declare timerSeq: number;
  readonly promise: Promise<void>;
  readonly #resolve: (value: unknown) => void;
  readonly #reject: (error: unknown) => void;
  readonly #queue: TimerQueue;
  #unlisten: (() => void) | undefined = undefined;

  constructor(queue: TimerQueue, ctx: Context, ms: number) {
    this.timerAt = Infinity;
    this.timerIndex = -1;
    this.timerKeepAlive = true;
    this.timerSeq = 0;
    this.promise = capturingPromise<void>();
    this.#resolve = takeResolve();
    this.#reject = takeReject();
    this.#queue = queue;
    queue.add(this, queue.clock.now() + ms, true);
    if (ctx.abortable) this.#unlisten = ctx.listen(this.#onAbort);
  }

  onTimer(): void {
    this.#stopListening();
    this.#resolve(undefined);
  }

  readonly #onAbort = (reason: unknown): void => {
    this.#unlisten = undefined;
    this.#queue.remove(this);
    this.#reject(reason);
  };

  #stopListening(): void {
    const unlisten = this.#unlisten;
    if (unlisten !== undefined) {
      this.#unlisten = undefined;
      unlisten();
    }
  }
}

export class ChaosPolicy extends BasePolicy {
  readonly kind: ChaosKind;
  readonly name: string;
  #enabled: boolean;
  readonly #rate: number | ((ctx: CallContext) => number);
  readonly #when: ((ctx: CallContext) => boolean) | undefined;
  readonly #random: RandomSource;
  readonly #fault: unknown;
  readonly #latencyMs: number | ((ctx: CallContext) => number) | undefined;
  readonly #outcome: ((ctx: CallContext) => unknown) | undefined;
  readonly #queue: TimerQueue;
  /** Set by the inline stage when it declined to inject: the `run` that follows at once injects. */
  #injectNext = false;
  readonly #onInject = new EventEmitter<ChaosInjectEvent>();
  /** Every injection. */
  readonly onInject: Subscribe<ChaosInjectEvent> = this.#onInject.subscribe;

  /** Use `chaos.fault`, `chaos.latency` or `chaos.outcome`. */
  constructor(kind: ChaosKind, options: ChaosOptions & Record<string, unknown>) {
    const factory = `chaos.${kind}`;
    const o = check.optionsObject(factory, options, true);
    const extra = kind === 'fault' ? 'fault' : kind === 'latency' ? 'latencyMs' : 'outcome';
    check.knownKeys(factory, o, [...BASE_KEYS, extra]);
    super(check.clock(`${factory}.clock`, o.clock));
    this.kind = kind;
    this.#rate =
      typeof o.rate === 'function'
        ? (o.rate as (ctx: CallContext) => number)
        : check.ratio(`${factory}.rate`, o.rate);
    this.#enabled = check.boolean(`${factory}.enabled`, o.enabled ?? CHAOS_DEFAULTS.enabled);
    this.#when =
      o.when === undefined ? undefined : check.fn<(ctx: CallContext) => boolean>(`${factory}.when`, o.when);
    this.#random = check.fn<RandomSource>(`${factory}.random`, o.random ?? CHAOS_DEFAULTS.random);
    this.name = check.string(`${factory}.name`, o.name ?? CHAOS_DEFAULTS.name);
    if (o.fault !== undefined && typeof o.fault !== 'function' && !(o.fault instanceof Error)) {
      throw new InvalidOptionError(
        `${factory}.fault`,
        o.fault,
        'an Error, or a function of the call returning one',
      );
    }
    this.#fault = o.fault;
    if (kind === 'latency') {
      const l = o.latencyMs;
      this.#latencyMs =
        typeof l === 'function'
          ? (l as (ctx: CallContext) => number)
          : check.timerMs(`${factory}.latencyMs`, l, { min: 0 });
    }
    if (kind === 'outcome')
      this.#outcome = check.fn<(ctx: CallContext) => unknown>(`${factory}.outcome`, o.outcome);
    this.#queue = TimerQueue.for(this.clock);
  }

  /** The switch: true while the policy injects (into `rate` of the calls `when` accepts). */
  get enabled(): boolean {
    return this.#enabled;
  }

  set enabled(on: boolean) {
    if (typeof on !== 'boolean')
      throw new TypeError(`${this.name}.enabled must be a boolean, got ${String(on)}`);
    this.#enabled = on;
  }

  run<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    if (this.#injectNext) {
      this.#injectNext = false;
      return this.#inject(fn, ctx);
    }
    if (!this.#enabled) return invoke(fn, ctx);
    let inject: boolean;
    try {
      inject = this.#decide(ctx);
    } catch (error) {
      return Promise.reject(error);
    }
    return inject ? this.#inject(fn, ctx) : invoke(fn, ctx);
  }

  /** Inside a pipeline: off (or not injecting this call), the stage is a no-op; a fault fails from `enter`. */
  [INLINE](): InlineStage {
    return {
      scopes: false,
      detaches: false,
      enter: (ctx) => {
        if (!this.#enabled || !this.#decide(ctx)) return undefined;
        if (this.kind === 'fault') throw this.#faultFor(ctx);
        this.#injectNext = true; // the pipeline calls `run` at once, synchronously
        return DECLINE;
      },
      exit: () => undefined,
    };
  }

  #decide(ctx: CallContext): boolean {
    if (this.#when !== undefined && !this.#when(ctx)) return false;
    const rate = typeof this.#rate === 'number' ? this.#rate : this.#rateOf(ctx);
    return rate > 0 && this.#random() < rate;
  }

  /** A rate function's answer, checked like the `rate` option: a number from 0 to 1, or the call fails. */
  #rateOf(ctx: CallContext): number {
    const rate = (this.#rate as (ctx: CallContext) => unknown)(ctx);
    if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)) {
      throw new InvalidOptionError(
        `chaos.${this.kind}.rate`,
        rate,
        'a number from 0 to 1 (the rate function returned something else)',
      );
    }
    return rate;
  }

  #inject<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    try {
      switch (this.kind) {
        case 'fault':
          return Promise.reject(this.#faultFor(ctx));
        case 'outcome':
          this.#emit(ctx, undefined);
          return invoke(this.#outcome as Operation<T>, ctx);
        default: {
          const l = this.#latencyMs!;
          const raw = typeof l === 'number' ? l : l(ctx);
          const ms = raw >= 0 ? Math.min(raw, 2 ** 31 - 1) : 0; // NaN or negative: no wait
          this.#emit(ctx, ms);
          const outer = Context.from(ctx, this.clock);
          if (outer.aborted) return Promise.reject(outer.reason);
          return new Delay(this.#queue, outer, ms).promise.then(() => invoke(fn, ctx));
        }
      }
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #faultFor(ctx: CallContext): unknown {
    this.#emit(ctx, undefined);
    const fault = this.#fault;
    if (fault === undefined) return new ChaosFaultError(this.name);
    if (typeof fault !== 'function') return fault;
    const made = (fault as (ctx: CallContext) => unknown)(ctx);
    if (made === undefined || made === null) {
      return new InvalidOptionError(
        `chaos.${this.kind}.fault`,
        made,
        'a function returning the error to fail the call with (it returned nothing)',
      );
    }
    return made;
  }

  #emit(ctx: CallContext, latencyMs: number | undefined): void {
    if (this.#onInject.active) {
      this.#onInject.emit({ name: this.name, key: ctx.key, kind: this.kind, latencyMs });
    }
  }
}

forwardsContext(ChaosPolicy);

/** The chaos policies' factories. */
export const chaos = Object.freeze({
  /** Fails a share of the calls with `fault` instead of running them. */
  fault(options: ChaosFaultOptions): ChaosPolicy {
    return new ChaosPolicy('fault', options as ChaosOptions & Record<string, unknown>);
  },
  /** Delays a share of the calls by `latencyMs` before running them. */
  latency(options: ChaosLatencyOptions): ChaosPolicy {
    return new ChaosPolicy('latency', options as unknown as ChaosOptions & Record<string, unknown>);
  },
  /** Answers a share of the calls with `outcome(ctx)` instead of running them. */
  outcome<T>(options: ChaosOutcomeOptions<T>): ChaosPolicy {
    return new ChaosPolicy('outcome', options as unknown as ChaosOptions & Record<string, unknown>);
  },
});
