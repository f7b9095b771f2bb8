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
import { isWindowSnapshot, type WindowSnapshot } from './detector.js';

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
}

const OPTION = 'circuitBreaker.initialState';
const KEYS = ['version', 'state', 'savedAtEpochMs', 'openRemainingMs', 'backoffLevel', 'window'];

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
  return value as CircuitBreakerSnapshot;
}
