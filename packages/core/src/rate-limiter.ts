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
 * With `maxWaitMs`, a call that finds no token waits for one, up to that bound and never past the call's
 * deadline or its abort: waiters queue per key in arrival order (a new call never jumps the queue), and
 * only the first of each key asks the store again, when its token is due (no thundering herd). A caller
 * whose wait would exceed the bound is rejected at once, with the estimated wait as `retryAfterMs`.
 *
 * `tryAcquire(key)` takes a token without running anything, for callers that answer a rejection
 * themselves (an HTTP server replying 429 with `Retry-After`).
 */
import type { Clock } from './clock.js';
import { TimerQueue, type TimerEntry } from './timer-queue.js';
import { capturingPromise, takeReject, takeResolve } from './promise.js';
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
  /**
   * How long a call may wait for a token, in ms (0 … 2^31 − 1), bounded also by the call's deadline. 0
   * rejects at once. Waiters queue per key in arrival order.
   * @default 0
   */
  maxWaitMs?: number;
  /** Name used in events. @default 'rateLimiter' */
  name?: string;
  /** @default systemClock */
  clock?: Clock;
}

/** The defaults of {@link RateLimiterOptions}. */
export const RATE_LIMITER_DEFAULTS = Object.freeze({
  onStoreError: 'allow' as const,
  maxWaitMs: 0,
  name: 'rateLimiter',
});
const KEYS = [
  'ratePerSecond',
  'burst',
  'store',
  'keyOf',
  'onStoreError',
  'maxWaitMs',
  'name',
  'clock',
] as const;

export interface RateLimitRejectEvent {
  readonly name: string;
  readonly key: string;
  readonly retryAfterMs: number;
}

/** A call that waited got its token. */
export interface RateLimitWaitEvent {
  readonly name: string;
  readonly key: string;
  /** How long it waited, in ms. */
  readonly waitedMs: number;
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
  readonly #onWait = new EventEmitter<RateLimitWaitEvent>();
  /** Subscribe to calls that waited for their token (when they get it). */
  readonly onWait: Subscribe<RateLimitWaitEvent> = this.#onWait.subscribe;
  readonly maxWaitMs: number;
  /** Keys with calls waiting (only with `maxWaitMs`). */
  readonly #waits = new Map<string, KeyWaiters>();
  readonly #queue: TimerQueue;

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
    this.maxWaitMs = check.timerMs('rateLimiter.maxWaitMs', o.maxWaitMs ?? RATE_LIMITER_DEFAULTS.maxWaitMs, {
      min: 0,
    });
    this.name = check.string('rateLimiter.name', o.name ?? RATE_LIMITER_DEFAULTS.name);
    this.rule = Object.freeze({ ratePerSecond: this.ratePerSecond, burst: this.burst });
    this.#queue = TimerQueue.for(this.clock);
  }

  /** Calls waiting for a token now (all keys). */
  get waiting(): number {
    let n = 0;
    for (const q of this.#waits.values()) n += q.count;
    return n;
  }

  run<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    const key = this.#keyOf === undefined ? (ctx.key ?? '') : this.#keyOf(ctx);
    if (this.maxWaitMs > 0 && this.#waits.size > 0) {
      // calls already wait for this key: queue behind them, never take their token
      const queue = this.#waits.get(key);
      if (queue !== undefined) return this.#wait(queue, key, fn, ctx, 0) as Promise<T>;
    }
    const result = this.#take(key, 1);
    if (result instanceof Promise) return result.then((r) => this.#afterAsyncTake(r, fn, ctx, key));
    if (result.allowed) return invoke(fn, ctx);
    if (this.maxWaitMs > 0) return this.#wait(undefined, key, fn, ctx, result.retryAfterMs) as Promise<T>;
    return Promise.reject(this.#rejection(key, result.retryAfterMs));
  }

  /**
   * A call found no token: waits in its key's queue if its turn can come within `maxWaitMs` and before its
   * deadline, else is rejected at once. `retryAfterMs`: the store's answer for a call arriving at an
   * empty queue (its token is due then); behind others, the estimate is their tokens' refill time too.
   */
  #wait(
    existing: KeyWaiters | undefined,
    key: string,
    fn: Operation<unknown>,
    parent: CallContext,
    retryAfterMs: number,
  ): Promise<unknown> {
    const ctx = Context.from(parent, this.clock);
    if (ctx.aborted) return Promise.reject(ctx.reason);
    const perToken = 1000 / this.ratePerSecond;
    const estimate = existing === undefined ? retryAfterMs : Math.ceil((existing.count + 1) * perToken);
    const bound = Math.min(this.maxWaitMs, ctx.remainingMs());
    if (estimate > bound) return Promise.reject(this.#rejection(key, estimate));
    const now = this.clock.now();
    let queue = existing;
    if (queue === undefined) {
      queue = new KeyWaiters(key, (q) => this.#poll(q));
      this.#waits.set(key, queue);
      this.#queue.add(queue, now + retryAfterMs, true);
    }
    const waiter = new Waiter(fn, parent, now, (w) => this.#expire(w));
    queue.push(waiter);
    // its own bound: the call's deadline, when nearer, ends the wait by itself (as the caller's abort)
    this.#queue.add(waiter, now + this.maxWaitMs, true);
    if (ctx.abortable) waiter.unlisten = ctx.listen((reason) => this.#leave(waiter, false, reason));
    return waiter.promise;
  }

  /** The first waiter's token is due: ask the store (for each waiter in turn while tokens are there). */
  #poll(queue: KeyWaiters): void {
    while (queue.head !== undefined) {
      const result = this.#take(queue.key, 1);
      if (result instanceof Promise) {
        queue.polling = true;
        result.then(
          (r) => {
            queue.polling = false;
            if (this.#granted(queue, r)) this.#poll(queue);
          },
          (error: unknown) => {
            // a failing fallback store: the first waiter fails with its error, the next one tries
            queue.polling = false;
            const head = queue.head;
            if (head !== undefined) this.#leave(head, false, error);
            if (queue.head !== undefined) this.#poll(queue);
          },
        );
        return;
      }
      if (!this.#granted(queue, result)) return;
    }
  }

  /** The store answered a poll: the first waiter runs (true: try the next) or waits `retryAfterMs` more. */
  #granted(queue: KeyWaiters, result: TakeResult): boolean {
    const head = queue.head;
    if (head === undefined) return false; // it left while an asynchronous store answered: the token is lost
    if (!result.allowed) {
      this.#queue.move(queue, this.clock.now() + Math.max(1, result.retryAfterMs), true);
      return false;
    }
    if (this.#onWait.active) {
      this.#onWait.emit({ name: this.name, key: queue.key, waitedMs: this.clock.now() - head.since });
    }
    this.#leave(head, true, undefined);
    return true;
  }

  /** A waiter's bound passed before its turn came. */
  #expire(waiter: Waiter): void {
    const now = this.clock.now();
    if (waiter.ctx.deadline <= now && waiter.ctx instanceof Context) {
      waiter.ctx.expireDue(now); // the caller's deadline, due now too, goes first
      if (waiter.queue === undefined) return;
    }
    const queue = waiter.queue!;
    let ahead = 0;
    for (let w = queue.head; w !== undefined && w !== waiter; w = w.next) ahead++;
    const retryAfterMs = Math.ceil((ahead + 1) * (1000 / this.ratePerSecond));
    this.#leave(waiter, false, this.#rejection(queue.key, retryAfterMs));
  }

  /** A waiter leaves its queue: to run (`run`), or rejected with `error`. */
  #leave(waiter: Waiter, run: boolean, error: unknown): void {
    const queue = waiter.queue;
    if (queue === undefined) return;
    queue.remove(waiter);
    this.#queue.remove(waiter);
    const unlisten = waiter.unlisten;
    if (unlisten !== undefined) {
      waiter.unlisten = undefined;
      unlisten();
    }
    if (queue.head === undefined) {
      this.#waits.delete(queue.key);
      this.#queue.remove(queue);
    }
    if (run) waiter.resolve(invoke(waiter.fn, waiter.ctx));
    else waiter.reject(error);
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
    if (!result.allowed) {
      if (this.maxWaitMs === 0) throw this.#rejection(key, result.retryAfterMs);
      // calls may have started waiting for this key while the store answered: queue behind them
      return this.#wait(this.#waits.get(key), key, fn, ctx, result.retryAfterMs) as Promise<T>;
    }
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

/** A call waiting for a token: its place in its key's queue and in the clock's timer queue (its bound). */
class Waiter implements TimerEntry {
  declare timerAt: number;
  declare timerIndex: number;
  declare timerKeepAlive: boolean;
  declare timerSeq: number;
  declare readonly fn: Operation<unknown>;
  /** The context the operation will see (the one passed to `run`). */
  declare readonly ctx: CallContext;
  /** When it started waiting. */
  declare readonly since: number;
  declare readonly promise: Promise<unknown>;
  declare readonly resolve: (value: unknown) => void;
  declare readonly reject: (error: unknown) => void;
  declare readonly onTimer: () => void;
  declare queue: KeyWaiters | undefined;
  declare next: Waiter | undefined;
  declare prev: Waiter | undefined;
  declare unlisten: (() => void) | undefined;

  constructor(fn: Operation<unknown>, ctx: CallContext, since: number, expire: (w: Waiter) => void) {
    this.timerAt = Infinity;
    this.timerIndex = -1;
    this.timerKeepAlive = true;
    this.timerSeq = 0;
    this.fn = fn;
    this.ctx = ctx;
    this.since = since;
    this.promise = capturingPromise();
    this.resolve = takeResolve();
    this.reject = takeReject();
    this.onTimer = () => expire(this);
    this.queue = undefined;
    this.next = undefined;
    this.prev = undefined;
    this.unlisten = undefined;
  }
}

/** One key's waiters, in arrival order; its timer-queue entry is when the first one's token is due. */
class KeyWaiters implements TimerEntry {
  declare timerAt: number;
  declare timerIndex: number;
  declare timerKeepAlive: boolean;
  declare timerSeq: number;
  declare readonly key: string;
  declare readonly onTimer: () => void;
  declare head: Waiter | undefined;
  declare tail: Waiter | undefined;
  declare count: number;
  /** An asynchronous store is being asked for the first waiter. */
  declare polling: boolean;

  constructor(key: string, poll: (q: KeyWaiters) => void) {
    this.timerAt = Infinity;
    this.timerIndex = -1;
    this.timerKeepAlive = true;
    this.timerSeq = 0;
    this.key = key;
    this.onTimer = () => {
      if (!this.polling) poll(this);
    };
    this.head = undefined;
    this.tail = undefined;
    this.count = 0;
    this.polling = false;
  }

  push(w: Waiter): void {
    w.queue = this;
    w.prev = this.tail;
    if (this.tail === undefined) this.head = w;
    else this.tail.next = w;
    this.tail = w;
    this.count++;
  }

  remove(w: Waiter): void {
    if (w.prev !== undefined) w.prev.next = w.next;
    else this.head = w.next;
    if (w.next !== undefined) w.next.prev = w.prev;
    else this.tail = w.prev;
    w.prev = w.next = undefined;
    w.queue = undefined;
    this.count--;
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
