/**
 * The half-open probe round: `permits` probe calls, each holding one permit from admission until it
 * settles (or is ignored and gives the permit back). The round is judged over every permit: it fails as
 * soon as the failed (or slow) probes reach the threshold share of the permits — no later result could
 * bring the rate back under it — and passes once every permit has settled under both thresholds.
 */
import type { CircuitTransitionReason } from './events.js';

export type ProbeVerdict = Extract<
  CircuitTransitionReason,
  'probes-passed' | 'probes-failed' | 'probes-slow'
>;

export class ProbeRound {
  /** The slot of a call that is not a probe. */
  static readonly NONE = -1;
  readonly permits: number;
  readonly failureRateThreshold: number;
  readonly slowCallRateThreshold: number;
  /** Admission time of the probe holding each permit (NaN: the permit is free). */
  readonly #starts: number[];
  #inFlight = 0;
  #settled = 0;
  #failures = 0;
  #slow = 0;

  constructor(permits: number, failureRateThreshold: number, slowCallRateThreshold: number) {
    this.permits = permits;
    this.failureRateThreshold = failureRateThreshold;
    this.slowCallRateThreshold = slowCallRateThreshold;
    this.#starts = new Array<number>(permits).fill(NaN);
  }

  /** Starts a new round. */
  reset(): void {
    this.#starts.fill(NaN);
    this.#inFlight = this.#settled = this.#failures = this.#slow = 0;
  }

  /** Takes a permit for a probe admitted at `now`: its slot, or {@link ProbeRound.NONE} if none is left. */
  take(now: number): number {
    if (this.#inFlight + this.#settled >= this.permits) return ProbeRound.NONE;
    const starts = this.#starts;
    for (let i = 0; i < starts.length; i++) {
      if (Number.isNaN(starts[i])) {
        starts[i] = now;
        this.#inFlight++;
        return i;
      }
    }
    return ProbeRound.NONE;
  }

  /** Gives a permit back without a verdict (the probe's outcome was ignored). */
  release(slot: number): void {
    this.#starts[slot] = NaN;
    this.#inFlight--;
  }

  /** Records a settled probe; returns the round's verdict once it is known. */
  settle(slot: number, failed: boolean, slow: boolean): ProbeVerdict | undefined {
    this.release(slot);
    this.#settled++;
    if (failed) this.#failures++;
    if (slow) this.#slow++;
    if (this.#failures / this.permits >= this.failureRateThreshold) return 'probes-failed';
    if (this.#slow / this.permits >= this.slowCallRateThreshold) return 'probes-slow';
    return this.#settled === this.permits ? 'probes-passed' : undefined;
  }

  /** Admission time of the oldest probe still in flight (`Infinity` when none is). */
  oldestStart(): number {
    let oldest = Infinity;
    if (this.#inFlight > 0) for (const start of this.#starts) if (start < oldest) oldest = start;
    return oldest;
  }

  metrics() {
    return {
      permits: this.permits,
      inFlight: this.#inFlight,
      settled: this.#settled,
      failures: this.#failures,
      slowCalls: this.#slow,
    };
  }
}
