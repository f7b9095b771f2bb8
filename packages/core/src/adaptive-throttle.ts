/**
 * adaptiveThrottle: client-side adaptive throttling (Google SRE book, "Handling Overload").
 *
 * Each key (an origin, a host, a backend) keeps two counts over a sliding window: `requests`, the calls
 * the application tried (those rejected here included), and `accepts`, the calls the dependency
 * accepted. When the dependency starts refusing, accepts fall behind requests, and once requests exceed
 * `k × accepts` the throttle rejects new calls **locally**, before they cost the dependency anything,
 * with probability
 *
 *     p = max(0, (requests − k × accepts) / (requests + 1))
 *
 * so that the requests reaching an overloaded dependency settle at about `k` times what it accepts. As it
 * recovers, accepts catch up and p falls to 0 by itself. `k = 2` (the book's choice) lets through twice
 * what is accepted: a little waste, and quick to notice recovery; a lower `k` is more aggressive.
 *
 * - What counts as accepted is the classifier's call (shared with retry and the breaker): a `success`
 *   verdict is an accept (a 404 is: the dependency answered), a `failure` is a refusal (a 503, a 429, a
 *   reset, a timeout). `rejected` and `ignore` outcomes (a local rejection inside, an open breaker) and a
 *   caller's abort are not counted at all.
 * - A window with fewer than `minimumRequests` requests never throttles, so one early failure of a
 *   quiet client cannot turn it away (the book's formula alone rejects half the calls after one refusal).
 * - p never exceeds `maxRejectionProbability` (0.9): the calls still let through are the probes that see
 *   the dependency heal, so a client is not cut off for a whole window after an outage ends.
 * - Keyed: one window per key (`keyOf`, by default the call's `key`), at most `maxKeys` kept (the least
 *   recently used is forgotten beyond it).
 * - `random` is injectable (`seededRandom(seed)` for a reproducible run).
 *
 * A local rejection is a {@link ThrottledError} (code `BULWARK_ERR_THROTTLED`, verdict `rejected`: a
 * breaker outside does not count it). Cost: a `Map` lookup and a bucket update per call; no timer.
 */
import type { RandomSource } from './backoff/backoff.js';
import {
  classify,
  errorVerdictOf,
  judgesValues,
  valueVerdictOf,
  type ClassifyFn,
  type Verdict,
} from './classify.js';
import type { Clock } from './clock.js';
import type { CallContext, Operation } from './context.js';
import { InvalidOptionError, ThrottledError, withoutStack } from './errors.js';
import { EventEmitter, type Subscribe } from './events.js';
import * as check from './options.js';
import { BasePolicy, forwardsContext, INLINE, invoke, type InlineStage } from './policy.js';

export interface AdaptiveThrottleOptions {
  /** Requests allowed per accept before throttling starts (≥ 1). @default 2 */
  k?: number;
  /** The sliding window, in ms (counted in 10 buckets; it covers `windowMs` to 1.1 × `windowMs`). @default 30_000 */
  windowMs?: number;
  /** Requests the window must hold before it throttles (an integer ≥ 0). @default 20 */
  minimumRequests?: number;
  /**
   * The rejection probability never goes above this (in [0, 1]): the calls still let through are the
   * probes that see the dependency heal — at 1, a dependency that refused everything stays cut off for a
   * whole window after it recovers, because nothing reaches it to be accepted (Envoy's admission control
   * caps it the same way). @default 0.9
   */
  maxRejectionProbability?: number;
  /** The key of a call (one window per key). @default (ctx) => ctx.key ?? '' */
  keyOf?: (ctx: CallContext) => string;
  /** Keys kept at most; beyond it the least recently used key's window is forgotten. @default 1_000 */
  maxKeys?: number;
  /** What an accept is: a `success` verdict. @default classify */
  classify?: ClassifyFn;
  /** Uniform random numbers in [0, 1) (`seededRandom(seed)` for a reproducible run). @default Math.random */
  random?: RandomSource;
  /** Name used in events. @default 'adaptiveThrottle' */
  name?: string;
  /** @default systemClock */
  clock?: Clock;
}

/** The defaults of {@link AdaptiveThrottleOptions}. */
export const ADAPTIVE_THROTTLE_DEFAULTS = Object.freeze({
  k: 2,
  windowMs: 30_000,
  minimumRequests: 20,
  maxRejectionProbability: 0.9,
  maxKeys: 1_000,
  classify: classify as ClassifyFn,
  random: Math.random as RandomSource,
  name: 'adaptiveThrottle',
});

const KEYS = [
  'k',
  'windowMs',
  'minimumRequests',
  'maxRejectionProbability',
  'keyOf',
  'maxKeys',
  'classify',
  'random',
  'name',
  'clock',
] as const;

/** Buckets per window; the ring holds one more (the current, partly elapsed bucket), as retryBudget. */
const BUCKETS = 10;
const SLOTS = BUCKETS + 1;

export interface ThrottleRejectEvent {
  readonly name: string;
  readonly key: string;
  /** Always `'throttled'` (the `reason` label a metrics adapter uses for rejections). */
  readonly reason: 'throttled';
  /** The rejection probability the call met. */
  readonly probability: number;
}

/** One key's window, for metrics. */
export interface ThrottleStats {
  readonly requests: number;
  readonly accepts: number;
  /** The probability a call made now is rejected locally. */
  readonly probability: number;
}

/** One key's counts: a ring of buckets, and its place in the keys' least-recently-used list. */
class KeyWindow {
  readonly key: string;
  readonly requests = new Uint32Array(SLOTS);
  readonly accepts = new Uint32Array(SLOTS);
  head = 0;
  /** Absolute number of the current bucket. */
  bucket: number;
  requestSum = 0;
  acceptSum = 0;
  older: KeyWindow | undefined = undefined;
  younger: KeyWindow | undefined = undefined;

  constructor(key: string, bucket: number) {
    this.key = key;
    this.bucket = bucket;
  }

  /** Drops the buckets that left the window. */
  advance(bucket: number): void {
    const passed = bucket - this.bucket;
    if (passed <= 0) return;
    this.bucket = bucket;
    if (passed >= SLOTS) {
      this.requests.fill(0);
      this.accepts.fill(0);
      this.requestSum = this.acceptSum = 0;
      return;
    }
    for (let i = 0; i < passed; i++) {
      const h = (this.head = this.head + 1 === SLOTS ? 0 : this.head + 1);
      this.requestSum -= this.requests[h]!;
      this.acceptSum -= this.accepts[h]!;
      this.requests[h] = this.accepts[h] = 0;
    }
  }

  count(accepted: boolean): void {
    this.requests[this.head]!++;
    this.requestSum++;
    if (accepted) {
      this.accepts[this.head]!++;
      this.acceptSum++;
    }
  }
}

export class AdaptiveThrottlePolicy extends BasePolicy {
  readonly k: number;
  readonly windowMs: number;
  readonly minimumRequests: number;
  readonly maxRejectionProbability: number;
  readonly maxKeys: number;
  readonly name: string;
  readonly #keyOf: ((ctx: CallContext) => string) | undefined;
  readonly #classify: ClassifyFn;
  readonly #judgesValues: boolean;
  readonly #random: RandomSource;
  readonly #bucketMs: number;
  readonly #windows = new Map<string, KeyWindow>();
  #oldest: KeyWindow | undefined = undefined;
  #youngest: KeyWindow | undefined = undefined;
  readonly #onReject = new EventEmitter<ThrottleRejectEvent>();
  /** Every call rejected locally. */
  readonly onReject: Subscribe<ThrottleRejectEvent> = this.#onReject.subscribe;

  constructor(options?: AdaptiveThrottleOptions) {
    const o = check.optionsObject('adaptiveThrottle', options);
    check.knownKeys('adaptiveThrottle', o, KEYS);
    super(check.clock('adaptiveThrottle.clock', o.clock));
    const D = ADAPTIVE_THROTTLE_DEFAULTS;
    this.k = check.number('adaptiveThrottle.k', o.k ?? D.k, { min: 1 });
    this.windowMs = check.positiveMs('adaptiveThrottle.windowMs', o.windowMs ?? D.windowMs);
    this.minimumRequests = check.number(
      'adaptiveThrottle.minimumRequests',
      o.minimumRequests ?? D.minimumRequests,
      { min: 0, integer: true },
    );
    this.maxRejectionProbability = check.number(
      'adaptiveThrottle.maxRejectionProbability',
      o.maxRejectionProbability ?? D.maxRejectionProbability,
      { min: 0, max: 1 },
    );
    this.maxKeys = check.positiveInteger('adaptiveThrottle.maxKeys', o.maxKeys ?? D.maxKeys);
    this.#keyOf =
      o.keyOf === undefined
        ? undefined
        : check.fn<(ctx: CallContext) => string>('adaptiveThrottle.keyOf', o.keyOf);
    this.#classify = check.fn<ClassifyFn>('adaptiveThrottle.classify', o.classify ?? D.classify);
    this.#judgesValues = judgesValues(this.#classify);
    this.#random = check.fn<RandomSource>('adaptiveThrottle.random', o.random ?? D.random);
    this.name = check.string('adaptiveThrottle.name', o.name ?? D.name);
    this.#bucketMs = this.windowMs / BUCKETS;
  }

  /** Keys with a window now. */
  get size(): number {
    return this.#windows.size;
  }

  /** The probability that a call for `key` made now is rejected locally. */
  probability(key = ''): number {
    const w = this.#windows.get(key);
    if (w === undefined) return 0;
    w.advance(Math.floor(this.clock.now() / this.#bucketMs));
    return this.#probability(w);
  }

  /** The window of `key` (zeros for a key never seen). */
  stats(key = ''): ThrottleStats {
    const w = this.#windows.get(key);
    if (w === undefined) return { requests: 0, accepts: 0, probability: 0 };
    w.advance(Math.floor(this.clock.now() / this.#bucketMs));
    return { requests: w.requestSum, accepts: w.acceptSum, probability: this.#probability(w) };
  }

  run<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    let w: KeyWindow;
    try {
      w = this.#admit(ctx);
    } catch (error) {
      return Promise.reject(error);
    }
    return invoke(fn, ctx).then(
      (value) => {
        this.#settle(w, true, value, ctx);
        return value;
      },
      (error: unknown) => {
        this.#settle(w, false, error, ctx);
        throw error;
      },
    );
  }

  /** Inside a pipeline: admitted calls run inline; a local rejection fails the call from `enter`. */
  [INLINE](): InlineStage {
    return {
      scopes: false,
      detaches: false,
      enter: (ctx) => this.#admit(ctx),
      exit: (ctx, token, ok, result) => {
        this.#settle(token as KeyWindow, ok, result, ctx);
        return undefined;
      },
    };
  }

  /** Rolls the dice; throws {@link ThrottledError} for a local rejection, else returns the key's window. */
  #admit(ctx: CallContext): KeyWindow {
    const key = this.#keyOf === undefined ? (ctx.key ?? '') : this.#keyOf(ctx);
    const w = this.#window(key);
    const p = this.#probability(w);
    if (p > 0 && this.#roll() < p) {
      w.count(false);
      if (this.#onReject.active)
        this.#onReject.emit({ name: this.name, key, reason: 'throttled', probability: p });
      throw withoutStack(() => new ThrottledError(p, key));
    }
    return w;
  }

  /** Counts an admitted call's outcome: an accept, a refusal, or nothing. */
  #settle(w: KeyWindow, ok: boolean, result: unknown, ctx: CallContext): void {
    let verdict: Verdict;
    if (ok) verdict = this.#judgesValues ? valueVerdictOf(this.#classify, result, ctx) : 'success';
    else verdict = errorVerdictOf(this.#classify, result, ctx);
    if (verdict === 'rejected' || verdict === 'ignore') return;
    if (verdict === 'failure' && ctx.aborted) return; // the caller's own abort says nothing
    w.advance(Math.floor(this.clock.now() / this.#bucketMs));
    w.count(verdict === 'success');
  }

  /** One draw of `random`, checked: a number in [0, 1), else the call fails naming the option. */
  #roll(): number {
    const x = this.#random();
    if (typeof x === 'number' && x >= 0 && x < 1) return x;
    throw new InvalidOptionError('adaptiveThrottle.random', x, 'a function returning numbers in [0, 1)');
  }

  #probability(w: KeyWindow): number {
    const requests = w.requestSum;
    if (requests < this.minimumRequests) return 0;
    const p = (requests - this.k * w.acceptSum) / (requests + 1);
    return p > 0 ? Math.min(p, this.maxRejectionProbability) : 0;
  }

  /** The key's window, brought up to date and made the most recently used. */
  #window(key: string): KeyWindow {
    const bucket = Math.floor(this.clock.now() / this.#bucketMs);
    let w = this.#windows.get(key);
    if (w === undefined) {
      if (this.#windows.size >= this.maxKeys) this.#evict();
      w = new KeyWindow(key, bucket);
      this.#windows.set(key, w);
      this.#append(w);
      return w;
    }
    w.advance(bucket);
    if (w !== this.#youngest) {
      this.#unlink(w);
      this.#append(w);
    }
    return w;
  }

  #evict(): void {
    const oldest = this.#oldest!;
    this.#unlink(oldest);
    this.#windows.delete(oldest.key);
  }

  #append(w: KeyWindow): void {
    const youngest = this.#youngest;
    w.older = youngest;
    w.younger = undefined;
    if (youngest === undefined) this.#oldest = w;
    else youngest.younger = w;
    this.#youngest = w;
  }

  #unlink(w: KeyWindow): void {
    const { older, younger } = w;
    if (older === undefined) this.#oldest = younger;
    else older.younger = younger;
    if (younger === undefined) this.#youngest = older;
    else younger.older = older;
    w.older = w.younger = undefined;
  }
}

forwardsContext(AdaptiveThrottlePolicy);

/** Creates an {@link AdaptiveThrottlePolicy}. */
export function adaptiveThrottle(options?: AdaptiveThrottleOptions): AdaptiveThrottlePolicy {
  return new AdaptiveThrottlePolicy(options);
}
