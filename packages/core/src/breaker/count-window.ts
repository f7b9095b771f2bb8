/**
 * Count-based sliding window: the outcomes of the last `size` calls in a ring (one byte each), with
 * running totals so recording is O(1). Opens when the window holds at least `minimumCalls` calls and the
 * failure rate or the slow-call rate reaches its threshold (resilience4j's COUNT_BASED window).
 */
import {
  FAILURE,
  SLOW,
  rateTrip,
  type FailureDetector,
  type RateThresholds,
  type TripReason,
  type WindowMetrics,
  type WindowSnapshot,
} from './detector.js';

export class CountWindow implements FailureDetector {
  readonly usesTime = false;
  readonly size: number;
  readonly thresholds: RateThresholds;
  readonly #ring: Uint8Array;
  /** Where the next outcome goes. */
  #pos = 0;
  /** Outcomes held (≤ size). */
  #calls = 0;
  #failures = 0;
  #slow = 0;

  constructor(size: number, thresholds: RateThresholds) {
    this.size = size;
    this.thresholds = thresholds;
    this.#ring = new Uint8Array(size);
  }

  record(flags: number): TripReason | undefined {
    this.#push(flags);
    return rateTrip(this.#calls, this.#failures, this.#slow, this.thresholds);
  }

  #push(flags: number): void {
    const ring = this.#ring;
    const pos = this.#pos;
    if (this.#calls === this.size) {
      const old = ring[pos]!;
      this.#failures -= old & FAILURE;
      this.#slow -= (old & SLOW) >> 1;
    } else {
      this.#calls++;
    }
    ring[pos] = flags;
    this.#failures += flags & FAILURE;
    this.#slow += (flags & SLOW) >> 1;
    this.#pos = pos + 1 === this.size ? 0 : pos + 1;
  }

  reset(): void {
    this.#ring.fill(0);
    this.#pos = this.#calls = this.#failures = this.#slow = 0;
  }

  metrics(): WindowMetrics {
    const calls = this.#calls;
    return {
      type: 'count',
      calls,
      failures: this.#failures,
      slowCalls: this.#slow,
      failureRate: calls === 0 ? 0 : this.#failures / calls,
      slowCallRate: calls === 0 ? 0 : this.#slow / calls,
    };
  }

  toJSON(): WindowSnapshot {
    const outcomes: number[] = [];
    const start = this.#calls === this.size ? this.#pos : 0;
    for (let i = 0; i < this.#calls; i++) outcomes.push(this.#ring[(start + i) % this.size]!);
    return { type: 'count', outcomes };
  }

  restore(snapshot: WindowSnapshot): void {
    this.reset();
    if (snapshot.type !== 'count') return;
    const outcomes = snapshot.outcomes;
    // the newest `size` outcomes fit; pushing does not evaluate the thresholds (the snapshot's state says
    // whether the breaker was open, and a closed breaker's window never held a tripping rate)
    for (let i = Math.max(0, outcomes.length - this.size); i < outcomes.length; i++) this.#push(outcomes[i]!);
  }
}
