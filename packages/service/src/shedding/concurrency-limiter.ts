/**
 * The admission side of load shedding: counts requests in flight, admits while `inflight < limit`,
 * rejects at once otherwise (no queue: a queued request in an overloaded server only waits to time out),
 * and feeds the limit algorithm one aggregated sample per window, as Netflix's `WindowedLimit` does.
 *
 * Cost per request: `tryAcquire` is a compare and an increment; `release` adds to the window's sums and
 * reads the clock once.
 */
import { InvalidOptionError, type Clock, type Subscribe } from '@bulwark/core';
import { checks, EventEmitter } from '@bulwark/core/internal';
import type { LimitAlgorithm } from './limit-algorithms.js';

export interface ConcurrencyLimiterOptions {
  /** The limit algorithm (`gradient2()`, `aimd()`, `fixed(n)`). Required. */
  algorithm: LimitAlgorithm;
  /** A window closes after at least this long… @default 1000 */
  windowMs?: number;
  /** …and at least this many samples. @default 10 */
  windowMinSamples?: number;
  /** @default systemClock */
  clock?: Clock;
}

export const CONCURRENCY_LIMITER_DEFAULTS = Object.freeze({ windowMs: 1000, windowMinSamples: 10 });

export interface LimitChangeEvent {
  readonly from: number;
  readonly to: number;
  /** The window's average RTT in ms. */
  readonly rttMs: number;
  readonly inflight: number;
}

export class ConcurrencyLimiter {
  readonly algorithm: LimitAlgorithm;
  readonly windowMs: number;
  readonly windowMinSamples: number;
  readonly clock: Clock;
  readonly #onLimitChange = new EventEmitter<LimitChangeEvent>();
  /** Subscribe to changes of the (integer) limit. */
  readonly onLimitChange: Subscribe<LimitChangeEvent> = this.#onLimitChange.subscribe;

  #limit: number;
  #inflight = 0;
  // the open window
  #windowEnd: number;
  #rttSum = 0;
  #samples = 0;
  #maxInflight = 0;
  #dropped = false;

  constructor(options: ConcurrencyLimiterOptions) {
    const o = checks.optionsObject('concurrencyLimiter', options, true);
    checks.knownKeys('concurrencyLimiter', o, ['algorithm', 'windowMs', 'windowMinSamples', 'clock']);
    const algorithm = o.algorithm as Partial<LimitAlgorithm> | undefined;
    if (typeof algorithm?.update !== 'function' || typeof algorithm.limit !== 'number') {
      throw new InvalidOptionError(
        'concurrencyLimiter.algorithm',
        o.algorithm,
        'a LimitAlgorithm (gradient2(), aimd() or fixed(n))',
      );
    }
    this.algorithm = o.algorithm;
    this.windowMs = checks.positiveMs(
      'concurrencyLimiter.windowMs',
      o.windowMs ?? CONCURRENCY_LIMITER_DEFAULTS.windowMs,
    );
    this.windowMinSamples = checks.positiveInteger(
      'concurrencyLimiter.windowMinSamples',
      o.windowMinSamples ?? CONCURRENCY_LIMITER_DEFAULTS.windowMinSamples,
    );
    this.clock = checks.clock('concurrencyLimiter.clock', o.clock);
    this.#limit = Math.max(1, Math.floor(this.algorithm.limit));
    this.#windowEnd = this.clock.now() + this.windowMs;
  }

  /** Requests admitted at once. */
  get limit(): number {
    return this.#limit;
  }

  get inflight(): number {
    return this.#inflight;
  }

  /** Admits a request (true) or refuses it (false). Every admitted request must be released once. */
  tryAcquire(): boolean {
    const inflight = this.#inflight;
    if (inflight >= this.#limit) return false;
    this.#inflight = inflight + 1;
    if (inflight + 1 > this.#maxInflight) this.#maxInflight = inflight + 1;
    return true;
  }

  /**
   * Releases an admitted request and records its round-trip time.
   * @param rttMs how long the request took, in ms
   * @param didDrop the request failed because of overload (timed out, 503 from a handler timeout, …)
   */
  release(rttMs: number, didDrop = false): void {
    this.#inflight--;
    this.#rttSum += rttMs;
    this.#samples++;
    if (didDrop) this.#dropped = true;
    if (this.#samples >= this.windowMinSamples) {
      const now = this.clock.now();
      if (now >= this.#windowEnd) this.#closeWindow(now);
    }
  }

  /** Releases an admitted request that ended without a meaningful time (the client went away). */
  abandon(): void {
    this.#inflight--;
  }

  #closeWindow(now: number): void {
    const rtt = this.#rttSum / this.#samples;
    const inflight = this.#maxInflight;
    const dropped = this.#dropped;
    this.#rttSum = 0;
    this.#samples = 0;
    this.#maxInflight = this.#inflight;
    this.#dropped = false;
    this.#windowEnd = now + this.windowMs;
    const from = this.#limit;
    const to = Math.max(1, Math.floor(this.algorithm.update(rtt, inflight, dropped)));
    this.#limit = to;
    if (to !== from && this.#onLimitChange.active) {
      this.#onLimitChange.emit({ from, to, rttMs: rtt, inflight });
    }
  }
}
