/**
 * retryBudget: a cap on retries across calls, so that retries cannot multiply an outage.
 *
 * Within a sliding window of `windowMs`, retries may not exceed `ratio` × the requests (first attempts)
 * seen in the window, plus a floor of `minRetriesPerSecond` × the window length in seconds, so a service
 * with little traffic can still retry. This is Finagle's `RetryBudget` (20 % of requests + 10 retries/s,
 * deposits expiring after 10 s — the defaults here), Envoy's `retry_budget` and gRPC's retry throttling in
 * spirit. One budget can be shared by many calls and many retry policies (pass the same object as
 * `retry({ budget })`): then the whole client, not each call, is held to the ratio.
 *
 * The window is a ring of time buckets (`windowMs / 10` wide) on the injected clock: no timers; each
 * operation first drops the buckets that have left the window (O(1) amortised). The window holds the
 * current bucket and the 10 before it, so it always covers at least `windowMs` (at most 1.1 × windowMs):
 * a retry is never forgotten early, so over any stretch of T seconds retries stay within
 * `ratio × requests + minRetriesPerSecond × T` (plus one window's floor at the start).
 */
import type { Clock } from './clock.js';
import * as check from './options.js';

export interface RetryBudgetOptions {
  /** Retries allowed per request in the window (0.2 = one retry per five requests). @default 0.2 */
  ratio?: number;
  /** Retries allowed per second of window even without requests (the floor). @default 10 */
  minRetriesPerSecond?: number;
  /** Length of the sliding window, in ms. @default 10_000 */
  windowMs?: number;
  /** @default systemClock */
  clock?: Clock;
}

/** The defaults of {@link RetryBudgetOptions}. */
export const RETRY_BUDGET_DEFAULTS = Object.freeze({ ratio: 0.2, minRetriesPerSecond: 10, windowMs: 10_000 });
const KEYS = ['ratio', 'minRetriesPerSecond', 'windowMs', 'clock'] as const;

/** Buckets per `windowMs`; the ring holds one more (the current, partly elapsed bucket). */
const BUCKETS = 10;
const SLOTS = BUCKETS + 1;

/** The state of a budget, for metrics. */
export interface RetryBudgetSnapshot {
  /** Retries that would be allowed right now. */
  readonly available: number;
  /** Requests (first attempts) in the window. */
  readonly requests: number;
  /** Retries granted in the window. */
  readonly retries: number;
  /** Requests since the budget was created. */
  readonly totalRequests: number;
  /** Retries granted since the budget was created. */
  readonly totalRetries: number;
  /** Retries refused since the budget was created. */
  readonly totalRejected: number;
}

export class RetryBudget {
  readonly ratio: number;
  readonly minRetriesPerSecond: number;
  readonly windowMs: number;
  readonly clock: Clock;
  /** Retries the floor alone allows per window. */
  readonly #reserve: number;
  readonly #bucketMs: number;
  readonly #requests = new Float64Array(SLOTS);
  readonly #retries = new Float64Array(SLOTS);
  /** Index of the current bucket in the ring. */
  #head = 0;
  /** Absolute number of the current bucket: floor(now / bucketMs). */
  #bucket: number;
  #requestSum = 0;
  #retrySum = 0;
  #totalRequests = 0;
  #totalRetries = 0;
  #totalRejected = 0;

  constructor(options?: RetryBudgetOptions) {
    const o = check.optionsObject('retryBudget', options);
    check.knownKeys('retryBudget', o, KEYS);
    this.clock = check.clock('retryBudget.clock', o.clock);
    this.ratio = check.number('retryBudget.ratio', o.ratio ?? RETRY_BUDGET_DEFAULTS.ratio, { min: 0 });
    this.minRetriesPerSecond = check.number(
      'retryBudget.minRetriesPerSecond',
      o.minRetriesPerSecond ?? RETRY_BUDGET_DEFAULTS.minRetriesPerSecond,
      { min: 0 },
    );
    this.windowMs = check.number('retryBudget.windowMs', o.windowMs ?? RETRY_BUDGET_DEFAULTS.windowMs, {
      above: 0,
    });
    this.#reserve = (this.minRetriesPerSecond * this.windowMs) / 1000;
    this.#bucketMs = this.windowMs / BUCKETS;
    this.#bucket = Math.floor(this.clock.now() / this.#bucketMs);
  }

  /** Records a request (a first attempt). Retry policies call this once per call. */
  deposit(): void {
    this.#advance();
    this.#requests[this.#head]! += 1;
    this.#requestSum += 1;
    this.#totalRequests++;
  }

  /** Takes one retry from the budget: true if allowed (and recorded), false if the budget is spent. */
  tryWithdraw(): boolean {
    this.#advance();
    if (this.#retrySum + 1 > this.ratio * this.#requestSum + this.#reserve) {
      this.#totalRejected++;
      return false;
    }
    this.#retries[this.#head]! += 1;
    this.#retrySum += 1;
    this.#totalRetries++;
    return true;
  }

  /** Retries that would be allowed right now. */
  get available(): number {
    this.#advance();
    return Math.max(0, Math.floor(this.ratio * this.#requestSum + this.#reserve - this.#retrySum));
  }

  /** Requests (first attempts) in the window. */
  get requests(): number {
    this.#advance();
    return this.#requestSum;
  }

  /** Retries granted in the window. */
  get retries(): number {
    this.#advance();
    return this.#retrySum;
  }

  get totalRequests(): number {
    return this.#totalRequests;
  }

  get totalRetries(): number {
    return this.#totalRetries;
  }

  get totalRejected(): number {
    return this.#totalRejected;
  }

  /** Everything above in one object (for a metrics exporter or a health endpoint). */
  toJSON(): RetryBudgetSnapshot {
    return {
      available: this.available,
      requests: this.#requestSum,
      retries: this.#retrySum,
      totalRequests: this.#totalRequests,
      totalRetries: this.#totalRetries,
      totalRejected: this.#totalRejected,
    };
  }

  /** Drops the buckets that have left the window. */
  #advance(): void {
    const bucket = Math.floor(this.clock.now() / this.#bucketMs);
    const passed = bucket - this.#bucket;
    if (passed <= 0) return; // same bucket (or a clock that went backwards: keep counting here)
    this.#bucket = bucket;
    if (passed >= SLOTS) {
      this.#requests.fill(0);
      this.#retries.fill(0);
      this.#requestSum = 0;
      this.#retrySum = 0;
      this.#head = (this.#head + passed) % SLOTS;
      return;
    }
    for (let i = 0; i < passed; i++) {
      this.#head = (this.#head + 1) % SLOTS;
      this.#requestSum -= this.#requests[this.#head]!;
      this.#retrySum -= this.#retries[this.#head]!;
      this.#requests[this.#head] = 0;
      this.#retries[this.#head] = 0;
    }
  }
}

/** Creates a {@link RetryBudget}; share it between calls and policies with `retry({ budget })`. */
export function retryBudget(options?: RetryBudgetOptions): RetryBudget {
  return new RetryBudget(options);
}
