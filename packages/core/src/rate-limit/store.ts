/**
 * The store behind a rate limiter: where token buckets live. The in-memory store keeps them in this
 * process; a shared store (Redis, with the bucket update in one Lua script) lets many processes share
 * one limit. docs/rate-limiter.md states the exact semantics an implementation must follow.
 */

/** The limit a bucket follows. Passed on every call, so one store can serve limiters with different rules. */
export interface RateLimitRule {
  /** Tokens added per second (may be fractional, e.g. 0.5 = one every 2 s). Always > 0 and finite. */
  readonly ratePerSecond: number;
  /** Bucket capacity: the most tokens a key can hold, and what a new key starts with. An integer ≥ 1. */
  readonly burst: number;
}

/** What one `take` decided. */
export interface TakeResult {
  /** True when `cost` tokens were taken; false when the bucket had too few (nothing is taken then). */
  readonly allowed: boolean;
  /** Whole tokens left in the bucket after this take (`Math.floor`), ≥ 0. */
  readonly remaining: number;
  /** When denied: ms until `cost` tokens will be there (rounded up). 0 when allowed. */
  readonly retryAfterMs: number;
}

export interface RateLimitStore {
  /**
   * Atomically refills the bucket of `key` for the time since its last update, then takes `cost`
   * tokens if it has them.
   *
   * - `cost` is a finite number with 0 < cost ≤ `rule.burst` (the limiter checks it).
   * - `nowMs` is the limiter's clock (monotonic, this process only: `performance.now()` by default).
   *   A store shared between processes must use its own time source (e.g. Redis `TIME`) instead.
   * - May return a promise (a network store); a rejection is handled by the limiter's `onStoreError`.
   *   A synchronous store should return the result directly, so the limiter stays synchronous too.
   */
  take(key: string, cost: number, nowMs: number, rule: RateLimitRule): TakeResult | PromiseLike<TakeResult>;
}
