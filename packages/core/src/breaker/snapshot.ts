/**
 * The exported state of a circuit breaker (`breaker.toJSON()`), and its validation when it comes back
 * as `initialState` — possibly in another process, after `JSON.stringify` / `JSON.parse`.
 *
 * Time on the breaker's clock is only meaningful inside one process (`performance.now()` starts at 0 in
 * each), so an open breaker is stored as the milliseconds it had left plus the wall-clock time of the
 * export; a restore subtracts the wall-clock time that has passed since. A half-open or isolated breaker
 * is stored as open with nothing left: the restored breaker probes on its first call, since the probes
 * in flight and the isolation handles belong to the process that exported it.
 */
import { InvalidOptionError } from '../errors.js';
import { isWindowSnapshot, type TripReason, type WindowMetrics, type WindowSnapshot } from './detector.js';

/** Why a breaker opened from closed: kept while it is not closed (metrics, `toJSON()`, the open event). */
export interface CircuitTrip {
  /** What opened it: the detector (`failure-rate`, `consecutive-failures`, …) or `open()` by hand. */
  readonly reason: TripReason | 'manual-open';
  /** The failure-detection window at the trip (undefined when opened by hand). */
  readonly window: WindowMetrics | undefined;
  /** Wall-clock time of the trip (`Date.now()`). */
  readonly atEpochMs: number;
  /** Opened by hand: who, and why (as given to `open()`). */
  readonly by: string | undefined;
  readonly note: string | undefined;
}

export interface CircuitBreakerSnapshot {
  /** Format version (1). */
  readonly version: 1;
  readonly state: 'closed' | 'open';
  /** Wall-clock time of the export (`Date.now()`). */
  readonly savedAtEpochMs: number;
  /** Open: ms left before the breaker admits probes, as of the export. 0 when closed. */
  readonly openRemainingMs: number;
  /** Failed probe rounds in a row (0 after a close): the open-duration backoff continues from here. */
  readonly backoffLevel: number;
  /** The failure-detection strategy's contents. Restored only into a breaker with the same strategy type. */
  readonly window: WindowSnapshot;
  /** Open: why it opened (the window that tripped it, or who opened it by hand). Absent when closed. */
  readonly trip?: CircuitTrip;
}

const OPTION = 'circuitBreaker.initialState';
const KEYS = ['version', 'state', 'savedAtEpochMs', 'openRemainingMs', 'backoffLevel', 'window', 'trip'];
const TRIP_REASONS = [
  'failure-rate',
  'slow-call-rate',
  'consecutive-failures',
  'consecutive-slow-calls',
  'manual-open',
];

const isCount = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isRate = (v: unknown): boolean => typeof v === 'number' && v >= 0 && v <= 1;

/** Structural check of the window metrics in a trip record. */
function isWindowMetrics(value: unknown): value is WindowMetrics {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  if (v.type === 'consecutive') return isCount(v.consecutiveFailures) && isCount(v.consecutiveSlowCalls);
  return (
    (v.type === 'count' || v.type === 'time') &&
    isCount(v.calls) &&
    isCount(v.failures) &&
    isCount(v.slowCalls) &&
    isRate(v.failureRate) &&
    isRate(v.slowCallRate)
  );
}

/** What is wrong with a trip record, or undefined when it is valid. */
function tripProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'trip must be an object';
  const t = value as Record<string, unknown>;
  for (const key of Object.keys(t)) {
    if (!['reason', 'window', 'atEpochMs', 'by', 'note'].includes(key)) return `unknown field "trip.${key}"`;
  }
  if (!TRIP_REASONS.includes(t.reason as string))
    return `trip.reason must be one of ${TRIP_REASONS.join(', ')}`;
  if (t.window !== undefined && !isWindowMetrics(t.window)) return 'trip.window must be window metrics';
  if (typeof t.atEpochMs !== 'number' || !Number.isFinite(t.atEpochMs))
    return 'trip.atEpochMs must be a finite number';
  if (t.by !== undefined && typeof t.by !== 'string') return 'trip.by must be a string';
  if (t.note !== undefined && typeof t.note !== 'string') return 'trip.note must be a string';
  return undefined;
}

/** Checks an `initialState` and returns it typed, or throws {@link InvalidOptionError} saying what is wrong. */
export function parseSnapshot(value: unknown): CircuitBreakerSnapshot {
  const bad = (what: string): never => {
    throw new InvalidOptionError(OPTION, value, `a snapshot from circuitBreaker.toJSON() (${what})`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('an object');
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) if (!KEYS.includes(key)) bad(`unknown field "${key}"`);
  if (v.version !== 1) bad('version must be 1');
  if (v.state !== 'closed' && v.state !== 'open') bad('state must be "closed" or "open"');
  if (typeof v.savedAtEpochMs !== 'number' || !Number.isFinite(v.savedAtEpochMs)) {
    bad('savedAtEpochMs must be a finite number');
  }
  if (typeof v.openRemainingMs !== 'number' || !Number.isFinite(v.openRemainingMs) || v.openRemainingMs < 0) {
    bad('openRemainingMs must be a finite number >= 0');
  }
  if (typeof v.backoffLevel !== 'number' || !Number.isInteger(v.backoffLevel) || v.backoffLevel < 0) {
    bad('backoffLevel must be an integer >= 0');
  }
  if (!isWindowSnapshot(v.window)) bad('window must be a strategy snapshot');
  if (v.trip !== undefined) {
    const problem = tripProblem(v.trip);
    if (problem !== undefined) bad(problem);
  }
  return value as CircuitBreakerSnapshot;
}
