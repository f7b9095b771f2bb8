/**
 * rateLimiter: a token bucket per key (`ratePerSecond` tokens added per second, at most `burst` held).
 * A call takes one token or is rejected at once with {@link RateLimitedError} carrying `retryAfterMs`.
 *
 * The key is `ctx.key` (from `execute(fn, { key })`), or what the `keyOf` option returns; without either,
 * every call shares the key `''`. Buckets live in a {@link RateLimitStore}: in memory by default (bounded,
 * no timers, synchronous), or a shared store such as Redis. A synchronous store keeps the limiter
 * synchronous: no extra promise before the operation runs. When an asynchronous store fails (Redis
 * down), `onStoreError` decides: let the call through, reject it, or ask another store.
 *
 * `tryAcquire(key)` takes a token without running anything, for callers that answer a rejection
 * themselves (an HTTP server replying 429 with `Retry-After`).
 */
import type { Clock } from './clock.js';
import { Context, type CallContext, type Operation } from './context.js';
import { InvalidOptionError, RateLimitedError, withoutStack } from './errors.js';
import { EventEmitter, type Subscribe } from './events.js';
import * as check from './options.js';
import { BasePolicy, forwardsContext, invoke } from './policy.js';
import { MemoryRateLimitStore } from './rate-limit/memory-store.js';
import type { RateLimitRule, RateLimitStore, TakeResult } from './rate-limit/store.js';

/** What to do when the store fails: let the call through, reject it, or ask another store. */
export type RateLimitStoreErrorMode = 'allow' | 'deny' | RateLimitStore;

export interface RateLimiterOptions {
  /** Tokens added to each key's bucket per second; may be fractional (0.5 = one every 2 s). Required. */
  ratePerSecond: number;
  /**
   * Bucket capacity: how many calls a key may make at once after being idle (an integer ≥ 1).
   * @default Math.max(1, Math.ceil(ratePerSecond)) — one second's worth
   */
  burst?: number;
  /**
   * Where buckets live. Share one store between limiters only if their keys differ (`keyOf` can prefix).
   * @default memoryRateLimitStore() — a new one per limiter, at most 10 000 keys
   */
  store?: RateLimitStore;
  /**
   * The key of a call.
   * @default (ctx) => ctx.key ?? ''
   */
  keyOf?: (ctx: CallContext) => string;
  /**
   * When the store throws or its promise rejects: `'allow'` lets the call through (fail open), `'deny'`
   * rejects it with {@link RateLimitedError} (`retryAfterMs` = one token's refill time), a store is
   * asked instead (e.g. a per-process `memoryRateLimitStore()` with a share of the limit). Each failure
   * emits `onStoreError`.
   * @default 'allow'
   */
  onStoreError?: RateLimitStoreErrorMode;
  /** Name used in events. @default 'rateLimiter' */
  name?: string;
  /** @default systemClock */
  clock?: Clock;
}

/** The defaults of {@link RateLimiterOptions}. */
export const RATE_LIMITER_DEFAULTS = Object.freeze({ onStoreError: 'allow' as const, name: 'rateLimiter' });
const KEYS = ['ratePerSecond', 'burst', 'store', 'keyOf', 'onStoreError', 'name', 'clock'] as const;

export interface RateLimitRejectEvent {
  readonly name: string;
  readonly key: string;
  readonly retryAfterMs: number;
}

export interface RateLimitStoreErrorEvent {
  readonly name: string;
  readonly key: string;
  readonly error: unknown;
  /** What the limiter did about it. */
  readonly action: 'allow' | 'deny' | 'fallback-store';
}

/** The result used when the store failed and `onStoreError` is `'allow'` (bucket state unknown). */
const ALLOWED_UNKNOWN: TakeResult = Object.freeze({ allowed: true, remaining: 0, retryAfterMs: 0 });

export class RateLimiterPolicy extends BasePolicy {
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly store: RateLimitStore;
  readonly name: string;
  /** The rule passed to the store on every take (frozen). */
  readonly rule: RateLimitRule;
  readonly #keyOf: ((ctx: CallContext) => string) | undefined;
  readonly #onStoreErrorMode: RateLimitStoreErrorMode;
  readonly #onReject = new EventEmitter<RateLimitRejectEvent>();
  readonly #onStoreError = new EventEmitter<RateLimitStoreErrorEvent>();
  /** Subscribe to rejections (from `execute`/`run` and from `tryAcquire`). */
  readonly onReject: Subscribe<RateLimitRejectEvent> = this.#onReject.subscribe;
  /** Subscribe to store failures (each one, with what the limiter did about it). */
  readonly onStoreError: Subscribe<RateLimitStoreErrorEvent> = this.#onStoreError.subscribe;

  constructor(options: RateLimiterOptions) {
    const o = check.optionsObject('rateLimiter', options, true);
    check.knownKeys('rateLimiter', o, KEYS);
    super(check.clock('rateLimiter.clock', o.clock));
    this.ratePerSecond = check.number('rateLimiter.ratePerSecond', o.ratePerSecond, { above: 0 });
    this.burst = check.positiveInteger(
      'rateLimiter.burst',
      o.burst ?? Math.max(1, Math.ceil(this.ratePerSecond)),
    );
    this.store = o.store === undefined ? new MemoryRateLimitStore() : store('rateLimiter.store', o.store);
    this.#keyOf =
      o.keyOf === undefined
        ? undefined
        : check.fn<(ctx: CallContext) => string>('rateLimiter.keyOf', o.keyOf);
    const mode = o.onStoreError ?? RATE_LIMITER_DEFAULTS.onStoreError;
    this.#onStoreErrorMode =
      typeof mode === 'string'
        ? check.oneOf('rateLimiter.onStoreError', mode, ['allow', 'deny'])
        : store('rateLimiter.onStoreError', mode);
    this.name = check.string('rateLimiter.name', o.name ?? RATE_LIMITER_DEFAULTS.name);
    this.rule = Object.freeze({ ratePerSecond: this.ratePerSecond, burst: this.burst });
  }

  run<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    const key = this.#keyOf === undefined ? (ctx.key ?? '') : this.#keyOf(ctx);
    const result = this.#take(key, 1);
    if (result instanceof Promise) return result.then((r) => this.#afterAsyncTake(r, fn, ctx, key));
    if (result.allowed) return invoke(fn, ctx);
    return Promise.reject(this.#rejection(key, result.retryAfterMs));
  }

  /**
   * Takes `cost` tokens from `key`'s bucket without running anything, and says whether it could.
   * A denial is a result, not an error; a store failure is handled by `onStoreError` (only a failing
   * fallback store rejects). Emits `onReject` when denied. Returns synchronously when the store is synchronous (the in-memory one is).
   */
  tryAcquire(key = '', cost = 1): TakeResult | Promise<TakeResult> {
    if (typeof key !== 'string') throw new TypeError(`rateLimiter.tryAcquire: key must be a string`);
    if (!(cost > 0 && cost <= this.burst)) {
      throw new RangeError(
        `rateLimiter.tryAcquire: cost must be > 0 and <= burst (${this.burst}), got ${cost}`,
      );
    }
    const result = this.#take(key, cost);
    if (result instanceof Promise) return result.then((r) => this.#judged(r, key));
    return this.#judged(result, key);
  }

  #judged(result: TakeResult, key: string): TakeResult {
    if (!result.allowed && this.#onReject.active) {
      this.#onReject.emit({ name: this.name, key, retryAfterMs: result.retryAfterMs });
    }
    return result;
  }

  async #afterAsyncTake<T>(result: TakeResult, fn: Operation<T>, ctx: CallContext, key: string): Promise<T> {
    if (!result.allowed) throw this.#rejection(key, result.retryAfterMs);
    // The caller may have given up (abort, enclosing timeout) while the store answered.
    if (ctx.aborted) throw ctx instanceof Context ? ctx.reason : ctx.signal.reason;
    return invoke(fn, ctx);
  }

  /** Asks the store; a store failure is turned into a decision here, so this never throws. */
  #take(key: string, cost: number): TakeResult | Promise<TakeResult> {
    let result: TakeResult | PromiseLike<TakeResult>;
    try {
      result = this.store.take(key, cost, this.clock.now(), this.rule);
    } catch (error) {
      return this.#storeFailed(error, key, cost);
    }
    if (isPromiseLike(result)) {
      return Promise.resolve(result).then(undefined, (error: unknown) => this.#storeFailed(error, key, cost));
    }
    return result;
  }

  #storeFailed(error: unknown, key: string, cost: number): TakeResult | Promise<TakeResult> {
    const mode = this.#onStoreErrorMode;
    const action = mode === 'allow' || mode === 'deny' ? mode : 'fallback-store';
    if (this.#onStoreError.active) this.#onStoreError.emit({ name: this.name, key, error, action });
    if (mode === 'allow') return ALLOWED_UNKNOWN;
    if (mode === 'deny') {
      return { allowed: false, remaining: 0, retryAfterMs: Math.ceil((cost * 1000) / this.ratePerSecond) };
    }
    // A failing fallback store rejects the call with its own error: there is nothing left to ask.
    try {
      const result = mode.take(key, cost, this.clock.now(), this.rule);
      return isPromiseLike(result) ? Promise.resolve(result) : result;
    } catch (fallbackError) {
      return Promise.reject(fallbackError);
    }
  }

  #rejection(key: string, retryAfterMs: number): RateLimitedError {
    if (this.#onReject.active) this.#onReject.emit({ name: this.name, key, retryAfterMs });
    return withoutStack(() => new RateLimitedError(retryAfterMs, key));
  }
}

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown }).then === 'function';
}

function store(option: string, value: unknown): RateLimitStore {
  if (typeof value !== 'object' || value === null || typeof (value as RateLimitStore).take !== 'function') {
    throw new InvalidOptionError(option, value, 'a RateLimitStore ({ take(key, cost, nowMs, rule) })');
  }
  return value as RateLimitStore;
}

forwardsContext(RateLimiterPolicy);

/** Creates a {@link RateLimiterPolicy}. */
export function rateLimiter(options: RateLimiterOptions): RateLimiterPolicy {
  return new RateLimiterPolicy(options);
}
