/**
 * A sliding-window latency histogram for hedge's adaptive delay: "how long do attempts that succeed take,
 * at the p-th percentile, lately?"
 *
 * Log-linear buckets, 8 per doubling (each ~9 % wide) from 1/16 ms to ~70 min, so a percentile is exact
 * to within one bucket (the upper bound of the bucket it falls in is returned, erring towards a later
 * hedge). The window is two halves of `windowMs / 2`: samples land in the current half; when it is over,
 * it becomes the previous half and the older one is dropped, so the estimate covers between `windowMs / 2`
 * and `windowMs` of history. No timer: halves turn over lazily, on the next sample or read. Recording is
 * O(1); a percentile is a scan of 209 counters, which {@link LatencyWindow.percentile} callers cache.
 */

/** Buckets per doubling of latency. */
const PER_DOUBLING = 8;
/** Upper bound of bucket 0, in ms. */
const MIN_MS = 1 / 16;
/** Doublings covered above MIN_MS (2^26 / 16 ms ≈ 70 min). */
const DOUBLINGS = 26;
export const BUCKETS = 1 + PER_DOUBLING * DOUBLINGS;

/** The bucket of a latency. */
export function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const i = Math.ceil(PER_DOUBLING * Math.log2(ms / MIN_MS));
  return i >= BUCKETS ? BUCKETS - 1 : i;
}

/** The upper bound of bucket `i`, in ms. */
export function upperBound(i: number): number {
  return MIN_MS * 2 ** (i / PER_DOUBLING);
}

export class LatencyWindow {
  readonly halfMs: number;
  #current = new Uint32Array(BUCKETS);
  #previous = new Uint32Array(BUCKETS);
  #currentCount = 0;
  #previousCount = 0;
  /** Number of the current half: floor(now / halfMs). */
  #half = -Infinity;

  constructor(windowMs: number) {
    this.halfMs = windowMs / 2;
  }

  /** Samples in the window. */
  count(now: number): number {
    this.#turn(now);
    return this.#currentCount + this.#previousCount;
  }

  record(ms: number, now: number): void {
    this.#turn(now);
    this.#current[bucketOf(ms)]!++;
    this.#currentCount++;
  }

  /** The `p`-quantile (0 < p ≤ 1) of the window's samples, or undefined when it holds fewer than `min`. */
  percentile(p: number, min: number, now: number): number | undefined {
    this.#turn(now);
    const total = this.#currentCount + this.#previousCount;
    if (total === 0 || total < min) return undefined;
    const target = Math.max(1, Math.ceil(p * total));
    const current = this.#current;
    const previous = this.#previous;
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += current[i]! + previous[i]!;
      if (seen >= target) return upperBound(i);
    }
    return upperBound(BUCKETS - 1);
  }

  #turn(now: number): void {
    const half = Math.floor(now / this.halfMs);
    const passed = half - this.#half;
    if (passed <= 0) return;
    this.#half = half;
    if (passed === 1) {
      const old = this.#previous;
      this.#previous = this.#current;
      this.#previousCount = this.#currentCount;
      old.fill(0);
      this.#current = old;
    } else {
      this.#previous.fill(0);
      this.#current.fill(0);
      this.#previousCount = 0;
    }
    this.#currentCount = 0;
  }
}
