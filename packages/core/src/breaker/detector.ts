/**
 * The failure-detection strategies a circuit breaker can use in its closed state. Each one records the
 * outcome of calls (a failure bit and a slow bit) and says when the breaker should open.
 *
 * The strategies are internal: the breaker builds one from its `strategy` option (plain data, so it can
 * be validated, logged and serialised), and no instance is ever shared between two breakers.
 */

/** Outcome bit: the call failed (classified `failure`). */
export const FAILURE = 1;
/** Outcome bit: the call took at least `slowCallDurationMs`. */
export const SLOW = 2;

/** Why a strategy asks the breaker to open. */
export type TripReason =
  'failure-rate' | 'slow-call-rate' | 'consecutive-failures' | 'consecutive-slow-calls';

/** What a strategy currently holds. */
export type WindowMetrics =
  | {
      readonly type: 'consecutive';
      /** Failures in a row (reset by any call that did not fail). */
      readonly consecutiveFailures: number;
      /** Slow calls in a row (reset by any call that was not slow). */
      readonly consecutiveSlowCalls: number;
    }
  | {
      readonly type: 'count' | 'time';
      /** Calls recorded in the window. */
      readonly calls: number;
      readonly failures: number;
      readonly slowCalls: number;
      /** `failures / calls`, 0 for an empty window. */
      readonly failureRate: number;
      /** `slowCalls / calls`, 0 for an empty window. */
      readonly slowCallRate: number;
    };

/** A strategy's contents in a breaker snapshot (see `CircuitBreakerSnapshot.window`). */
export type WindowSnapshot =
  | {
      readonly type: 'consecutive';
      readonly consecutiveFailures: number;
      readonly consecutiveSlowCalls: number;
    }
  /** Outcome bits (1 failure, 2 slow) of the last calls, oldest first. */
  | { readonly type: 'count'; readonly outcomes: readonly number[] }
  /** Non-empty buckets as `[ageMs, calls, failures, slowCalls]`; `ageMs`: how long before the export its middle was. */
  | { readonly type: 'time'; readonly buckets: readonly (readonly [number, number, number, number])[] };

export interface FailureDetector {
  /** True when {@link FailureDetector.record} needs the current time (the time window). */
  readonly usesTime: boolean;
  /** Records one outcome (`FAILURE | SLOW` bits); returns why the breaker should open, if it should. */
  record(flags: number, now: number): TripReason | undefined;
  /** Forgets everything (the breaker opened or closed). */
  reset(): void;
  metrics(now: number): WindowMetrics;
  toJSON(now: number): WindowSnapshot;
  /**
   * Loads a snapshot of the same `type` (validated by {@link isWindowSnapshot}) taken `elapsedMs` ago.
   * Contents that no longer fit (a smaller window, buckets that have expired) are dropped.
   */
  restore(snapshot: WindowSnapshot, elapsedMs: number, now: number): void;
}

/** Rate thresholds shared by the window strategies. */
export interface RateThresholds {
  /** Open when `failures / calls >= failureRateThreshold` (and at least `minimumCalls` were recorded). */
  readonly failureRateThreshold: number;
  /** Open when `slowCalls / calls >= slowCallRateThreshold` (and at least `minimumCalls` were recorded). */
  readonly slowCallRateThreshold: number;
  /** The window must hold at least this many calls before a rate can open the breaker (≥ 1). */
  readonly minimumCalls: number;
}

/** The rate decision of both window strategies (one place, so they cannot disagree). */
export function rateTrip(
  calls: number,
  failures: number,
  slowCalls: number,
  t: RateThresholds,
): TripReason | undefined {
  if (calls < t.minimumCalls) return undefined;
  if (failures / calls >= t.failureRateThreshold) return 'failure-rate';
  if (slowCalls / calls >= t.slowCallRateThreshold) return 'slow-call-rate';
  return undefined;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** Structural check of a window snapshot (from `JSON.parse`, so anything may arrive). */
export function isWindowSnapshot(value: unknown): value is WindowSnapshot {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  switch (v.type) {
    case 'consecutive':
      return isCount(v.consecutiveFailures) && isCount(v.consecutiveSlowCalls);
    case 'count':
      return Array.isArray(v.outcomes) && v.outcomes.every((o) => isCount(o) && o <= (FAILURE | SLOW));
    case 'time':
      return (
        Array.isArray(v.buckets) &&
        v.buckets.every(
          (b: unknown) =>
            Array.isArray(b) &&
            b.length === 4 &&
            typeof b[0] === 'number' &&
            Number.isFinite(b[0]) &&
            b[0] >= 0 &&
            isCount(b[1]) &&
            isCount(b[2]) &&
            isCount(b[3]) &&
            b[2] <= b[1] &&
            b[3] <= b[1],
        )
      );
    default:
      return false;
  }
}
