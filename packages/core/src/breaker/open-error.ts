/**
 * The breaker's rejections, built for the hot path: an open breaker rejects every call, so building the
 * error is most of what a rejection costs.
 *
 * `new CircuitOpenError(...)` goes through the `Error` constructor, which costs ~0.4–0.7 µs here even with
 * `Error.stackTraceLimit = 0` (an engine call that captures and installs a stack), and more under load:
 * measured beside cockatiel on this machine, that alone moved an open-breaker rejection from ~0.27 to
 * ~0.39 of cockatiel's cost. So the error is made from the class's prototype instead, with the same own
 * fields a constructed one has plus `message` and `stack` (the one header line a stackless error has):
 * `instanceof CircuitOpenError` / `BulwarkError` / `Error`, `name`, `code`, `message`, `stack`,
 * `retryAfterMs`, `reason`, `breakerName`, `String(e)` and `util.inspect(e)` all match, and Node reports
 * it like any error when nobody handles it (it has an own `stack`). What differs, and only for engine
 * brand checks: `util.types.isNativeError(e)` and `Error.isError(e)` (Node 24) are false,
 * `Object.prototype.toString.call(e)` is `[object Object]`, and `message` / `stack` are enumerable (so
 * `JSON.stringify(e)` includes them). open-error.test.ts pins the equivalence with the constructor.
 */
import { CircuitOpenError, type CircuitRejectReason } from '../errors.js';

type Writable<T> = { -readonly [K in keyof T]: T[K] };

/** The message `new CircuitOpenError(retryAfterMs, reason, breakerName)` would have. */
function message(retryAfterMs: number, reason: CircuitRejectReason, breakerName: string): string {
  const circuit = breakerName ? `Circuit "${breakerName}" ` : 'Circuit ';
  if (reason === 'isolated') return `${circuit}is isolated (forced open)`;
  if (reason === 'half-open-full') {
    return `${circuit}is half-open and all probe permits are taken; retry after ${retryAfterMs} ms`;
  }
  return `${circuit}is open; retry after ${retryAfterMs} ms`;
}

/** A {@link CircuitOpenError} made without the `Error` constructor (see the module doc). */
export function openError(
  retryAfterMs: number,
  reason: CircuitRejectReason,
  breakerName: string,
): CircuitOpenError {
  const e = Object.create(CircuitOpenError.prototype) as Writable<CircuitOpenError>;
  // the same properties, in the same order, every time: one object shape
  e.retryAfterMs = retryAfterMs;
  e.reason = reason;
  e.breakerName = breakerName;
  e.name = 'CircuitOpenError';
  e.code = 'BULWARK_ERR_CIRCUIT_OPEN';
  e.message = message(retryAfterMs, reason, breakerName);
  e.stack = `CircuitOpenError: ${e.message}`;
  return e;
}
