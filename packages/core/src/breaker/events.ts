/**
 * The circuit breaker's state names, transition reasons, event payloads and metrics view.
 */
import type { CircuitRejectReason } from '../errors.js';
import type { Outcome } from '../policy.js';
import type { TripReason, WindowMetrics } from './detector.js';
import type { CircuitTrip } from './snapshot.js';

export type CircuitState = 'closed' | 'open' | 'half-open' | 'isolated';

/** Why the breaker changed state. */
export type CircuitTransitionReason =
  | TripReason
  /** open → half-open: the open duration passed. */
  | 'open-elapsed'
  /** half-open → closed: every probe settled and the failure and slow rates stayed under their thresholds. */
  | 'probes-passed'
  /** half-open → open: enough probes failed that the round could no longer pass. */
  | 'probes-failed'
  /** half-open → open: enough probes were slow that the round could no longer pass. */
  | 'probes-slow'
  /** half-open → open: a probe did not settle within `halfOpenTimeoutMs`. */
  | 'half-open-timeout'
  /** → isolated: the first `isolate()` handle was taken. */
  | 'isolated'
  /** isolated → half-open: the last `isolate()` handle was disposed. */
  | 'released'
  /** closed → open: `open()` by hand (an operator, or another instance: see `by`). */
  | 'manual-open'
  /** open or half-open → closed: `close()` by hand. */
  | 'manual-close'
  /** any state but isolated → closed: `reset()` by hand (closed → closed included). */
  | 'reset';

interface EventBase {
  readonly name: string;
  /** The operation key of the call (`execute(fn, { key })`). */
  readonly key: string | undefined;
}

export interface CircuitStateChangeEvent {
  readonly name: string;
  readonly from: CircuitState;
  readonly to: CircuitState;
  readonly reason: CircuitTransitionReason;
  /** The generation the breaker is now in (bumped by every transition). */
  readonly generation: number;
  /** When opening: how long it stays open (after backoff). */
  readonly openDurationMs: number | undefined;
  /** A change by hand (`open()`, `close()`, `reset()`): who made it, as given. */
  readonly by: string | undefined;
  /** A change by hand: why, as given. */
  readonly note: string | undefined;
  /** When the failure-detection window tripped the breaker (closed → open): what it held at that moment. */
  readonly window: WindowMetrics | undefined;
}

/** A call the breaker judged a success. `durationMs` is measured only when needed (see the module doc). */
export interface CircuitSuccessEvent extends EventBase {
  readonly durationMs: number | undefined;
  /** True for a half-open probe. */
  readonly probe: boolean;
}

/** A call the breaker judged a failure: an error, or a value classified `failure`. */
export type CircuitFailureEvent = Outcome &
  EventBase & { readonly durationMs: number | undefined; readonly probe: boolean };

export interface CircuitSlowCallEvent extends EventBase {
  readonly durationMs: number;
  readonly slowCallDurationMs: number;
  /** Whether the slow call also failed. */
  readonly failed: boolean;
  readonly probe: boolean;
}

export interface CircuitRejectEvent extends EventBase {
  readonly reason: CircuitRejectReason;
  readonly retryAfterMs: number;
  /** False in `metrics-only` mode: the call ran anyway. */
  readonly enforced: boolean;
}

/** Why an outcome was neither a success nor a failure. */
export type CircuitIgnoreReason =
  /** The context the breaker received was aborted when the call failed (the caller's own abort). */
  | 'aborted'
  /** The breaker changed state while the call ran (its generation is no longer current). */
  | 'stale'
  /** The classifier said `rejected` or `ignore` (by default: an inner breaker's, bulkhead's or rate limiter's rejection, an invalid option). */
  | 'classified';

export type CircuitIgnoredEvent = Outcome & EventBase & { readonly reason: CircuitIgnoreReason };

/** A point-in-time view of the breaker. */
export interface CircuitBreakerMetrics {
  readonly state: CircuitState;
  readonly generation: number;
  /** Open: ms until probes are admitted. 0 otherwise. */
  readonly openRemainingMs: number;
  /** Failed probe rounds in a row (the open-duration backoff level). */
  readonly backoffLevel: number;
  readonly window: WindowMetrics;
  /** Half-open: the probe round so far. */
  readonly probes:
    | {
        readonly permits: number;
        readonly inFlight: number;
        readonly settled: number;
        readonly failures: number;
        readonly slowCalls: number;
      }
    | undefined;
  /** While not closed: why it last opened from closed (the window that tripped it, or who opened it). */
  readonly trip: CircuitTrip | undefined;
}
