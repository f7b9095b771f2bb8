/**
 * Consecutive strategy: opens on the `threshold`-th failure in a row, or the `threshold`-th slow call in a
 * row (when slow-call detection is on). Any call that did not fail ends the failure run; any call that
 * was not slow ends the slow run. Two integers, no clock.
 */
import {
  FAILURE,
  SLOW,
  type FailureDetector,
  type TripReason,
  type WindowMetrics,
  type WindowSnapshot,
} from './detector.js';

export class ConsecutiveDetector implements FailureDetector {
  readonly usesTime = false;
  readonly threshold: number;
  #failures = 0;
  #slow = 0;

  constructor(threshold: number) {
    this.threshold = threshold;
  }

  record(flags: number): TripReason | undefined {
    this.#failures = (flags & FAILURE) !== 0 ? this.#failures + 1 : 0;
    this.#slow = (flags & SLOW) !== 0 ? this.#slow + 1 : 0;
    if (this.#failures >= this.threshold) return 'consecutive-failures';
    if (this.#slow >= this.threshold) return 'consecutive-slow-calls';
    return undefined;
  }

  reset(): void {
    this.#failures = 0;
    this.#slow = 0;
  }

  metrics(): WindowMetrics {
    return { type: 'consecutive', consecutiveFailures: this.#failures, consecutiveSlowCalls: this.#slow };
  }

  toJSON(): WindowSnapshot {
    return { type: 'consecutive', consecutiveFailures: this.#failures, consecutiveSlowCalls: this.#slow };
  }

  restore(snapshot: WindowSnapshot): void {
    if (snapshot.type !== 'consecutive') return;
    // a run at or past the threshold would have opened the breaker: keep it one short
    this.#failures = Math.min(snapshot.consecutiveFailures, this.threshold - 1);
    this.#slow = Math.min(snapshot.consecutiveSlowCalls, this.threshold - 1);
  }
}
