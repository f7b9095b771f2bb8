/**
 * Time-based sliding window as a bucketed ring: `buckets` counters, each covering `windowMs / buckets`
 * of clock time. The bucket of a call is `floor(now / bucketMs)`; there is no timer. When time moves on,
 * the buckets that fell out of the window are zeroed lazily, on the next record or read (at most
 * `buckets` of them, however long the breaker sat idle). Running totals make recording O(1) amortised.
 *
 * The window therefore covers the current, partial bucket plus the `buckets - 1` before it: between
 * `windowMs - bucketMs` and `windowMs` of history (cockatiel's SamplingBreaker, Polly, resilience4j's
 * TIME_BASED window work the same way).
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

export class TimeWindow implements FailureDetector {
  readonly usesTime = true;
  readonly windowMs: number;
  readonly buckets: number;
  readonly bucketMs: number;
  readonly thresholds: RateThresholds;
  readonly #calls: Uint32Array;
  readonly #failures: Uint32Array;
  readonly #slow: Uint32Array;
  /** Number of the newest bucket (`floor(time / bucketMs)`); the ring holds head-buckets+1 … head. */
  #head = -Infinity;
  #totalCalls = 0;
  #totalFailures = 0;
  #totalSlow = 0;

  constructor(windowMs: number, buckets: number, thresholds: RateThresholds) {
    this.windowMs = windowMs;
    this.buckets = buckets;
    this.bucketMs = windowMs / buckets;
    this.thresholds = thresholds;
    this.#calls = new Uint32Array(buckets);
    this.#failures = new Uint32Array(buckets);
    this.#slow = new Uint32Array(buckets);
  }

  #slot(epoch: number): number {
    const i = epoch % this.buckets;
    return i < 0 ? i + this.buckets : i;
  }

  /** Moves the head to the bucket of `now`, zeroing the buckets that left the window. */
  #advance(now: number): number {
    const epoch = Math.floor(now / this.bucketMs);
    const head = this.#head;
    if (epoch <= head) return this.#slot(head); // same bucket (a clock never goes back; if one did, count it here)
    if (epoch - head >= this.buckets) {
      this.#calls.fill(0);
      this.#failures.fill(0);
      this.#slow.fill(0);
      this.#totalCalls = this.#totalFailures = this.#totalSlow = 0;
    } else {
      for (let e = head + 1; e <= epoch; e++) {
        const i = this.#slot(e);
        this.#totalCalls -= this.#calls[i]!;
        this.#totalFailures -= this.#failures[i]!;
        this.#totalSlow -= this.#slow[i]!;
        this.#calls[i] = this.#failures[i] = this.#slow[i] = 0;
      }
    }
    this.#head = epoch;
    return this.#slot(epoch);
  }

  record(flags: number, now: number): TripReason | undefined {
    const i = this.#advance(now);
    this.#add(i, 1, flags & FAILURE, (flags & SLOW) >> 1);
    return rateTrip(this.#totalCalls, this.#totalFailures, this.#totalSlow, this.thresholds);
  }

  #add(i: number, calls: number, failures: number, slow: number): void {
    this.#calls[i]! += calls;
    this.#failures[i]! += failures;
    this.#slow[i]! += slow;
    this.#totalCalls += calls;
    this.#totalFailures += failures;
    this.#totalSlow += slow;
  }

  reset(): void {
    this.#calls.fill(0);
    this.#failures.fill(0);
    this.#slow.fill(0);
    this.#totalCalls = this.#totalFailures = this.#totalSlow = 0;
  }

  metrics(now: number): WindowMetrics {
    this.#advance(now);
    const calls = this.#totalCalls;
    return {
      type: 'time',
      calls,
      failures: this.#totalFailures,
      slowCalls: this.#totalSlow,
      failureRate: calls === 0 ? 0 : this.#totalFailures / calls,
      slowCallRate: calls === 0 ? 0 : this.#totalSlow / calls,
    };
  }

  toJSON(now: number): WindowSnapshot {
    this.#advance(now);
    const buckets: [number, number, number, number][] = [];
    for (let k = this.buckets - 1; k >= 0; k--) {
      const epoch = this.#head - k;
      const i = this.#slot(epoch);
      if (this.#calls[i] === 0) continue;
      // the bucket's age is the age of its middle (never in the future for the current, partial bucket):
      // the unbiased guess for when its calls happened, and half a bucket away from any boundary
      const ageMs = Math.max(0, now - (epoch + 0.5) * this.bucketMs);
      buckets.push([ageMs, this.#calls[i]!, this.#failures[i]!, this.#slow[i]!]);
    }
    return { type: 'time', buckets };
  }

  restore(snapshot: WindowSnapshot, elapsedMs: number, now: number): void {
    this.reset();
    const head = Math.floor(now / this.bucketMs);
    this.#head = head;
    if (snapshot.type !== 'time') return;
    for (const [ageMs, calls, failures, slow] of snapshot.buckets) {
      // re-bucket by time: the bucket's calls happened about ageMs + elapsedMs before now
      const epoch = Math.floor((now - ageMs - elapsedMs) / this.bucketMs);
      if (epoch > head || epoch <= head - this.buckets) continue;
      this.#add(this.#slot(epoch), calls, failures, slow);
    }
  }
}
