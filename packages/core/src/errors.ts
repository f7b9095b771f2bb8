/**
 * One error family. Every error is a real `Error` with a literal `name`, a stable `code` (`BULWARK_ERR_*`,
 * listed in docs/errors.md and checked against it by a test) and structured fields.
 *
 * Recognised across duplicate installs: two copies of @bulwark/core in one process (a dependency that
 * bundles its own) each have their own classes, so a bare `instanceof` would miss the other copy's
 * errors. Every Bulwark error carries the `Symbol.for('bulwark.error')` brand (on its prototype), and
 * `instanceof` / `.is()` on these classes accept a branded error of the same `code` from any copy, as
 * undici does with its `Symbol.for('undici.error.…')` brands.
 */
import type { CorruptSnapshot } from './snapshot/format.js';

/** The brand every Bulwark error carries, whatever copy of the package made it. */
const BRAND = Symbol.for('bulwark.error');

/** True when `value` carries the brand of Bulwark's errors (made by this copy of the package or another). */
export function isBranded(value: object): boolean {
  return (value as Record<symbol, unknown>)[BRAND] === true;
}

/** Any class of the family (for {@link BulwarkError.is}). */
type ErrorClass<E> = abstract new (...args: never[]) => E;

/** True when `value` is an instance of `cls`, made by this copy of the package or another. */
function isInstance(cls: ErrorClass<unknown>, value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (Object.prototype.isPrototypeOf.call(cls.prototype, value)) return true;
  if ((value as Record<symbol, unknown>)[BRAND] !== true) return false;
  if (cls === BulwarkError) return true;
  // a concrete class: its code, which another copy's class of the same name shares
  if (Object.hasOwn(cls, 'code'))
    return (value as { code?: unknown }).code === (cls as { code?: unknown }).code;
  // a family without a code of its own (e.g. @bulwark/http's HttpError): by class name along the chain
  for (let p: unknown = Object.getPrototypeOf(value); p !== null; p = Object.getPrototypeOf(p)) {
    const ctor = Object.hasOwn(p as object, 'constructor')
      ? (p as { constructor: unknown }).constructor
      : undefined;
    if (typeof ctor === 'function' && ctor.name === cls.name) return true;
  }
  return false;
}

export abstract class BulwarkError extends Error {
  /** Stable machine-readable code, e.g. `BULWARK_ERR_TIMEOUT`. */
  abstract readonly code: string;

  /** `error instanceof TimeoutError` also holds for a `TimeoutError` from another copy of the package. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return isInstance(this as unknown as ErrorClass<unknown>, value);
  }

  /**
   * The same test as `instanceof`, as a type guard that reads well in a predicate:
   * `BulwarkError.is(e)`, `CircuitOpenError.is(e)`.
   */
  static is<E>(this: ErrorClass<E>, value: unknown): value is E {
    return isInstance(this, value);
  }

  static {
    // on the prototype: every instance carries it at no cost per error
    Object.defineProperty(this.prototype, BRAND, { value: true });
  }
}

/** An option passed to a factory is invalid. Thrown at construction, never per call. */
export class InvalidOptionError extends BulwarkError {
  static readonly code = 'BULWARK_ERR_INVALID_OPTION';
  override readonly name = 'InvalidOptionError';
  readonly code = InvalidOptionError.code;
  constructor(
    /** Dotted path of the option, e.g. `circuitBreaker.openDurationMs`. */
    readonly option: string,
    readonly received: unknown,
    /** What is allowed, in words. */
    readonly expected: string,
  ) {
    super(`Invalid option ${option}: expected ${expected}, received ${describe(received)}`);
  }
}

/** Why a circuit breaker rejected a call without running it. */
export type CircuitRejectReason = 'open' | 'half-open-full' | 'isolated';

/** The circuit breaker rejected the call without running it. */
export class CircuitOpenError extends BulwarkError {
  static readonly code = 'BULWARK_ERR_CIRCUIT_OPEN';
  override readonly name = 'CircuitOpenError';
  readonly code = CircuitOpenError.code;
  constructor(
    /** How long until the breaker may admit a call again (0 when unknown but worth retrying soon). */
    readonly retryAfterMs: number,
    readonly reason: CircuitRejectReason = 'open',
    readonly breakerName = '',
  ) {
    super(
      reason === 'isolated'
        ? `Circuit ${breakerName ? `"${breakerName}" ` : ''}is isolated (forced open)`
        : reason === 'half-open-full'
          ? `Circuit ${breakerName ? `"${breakerName}" ` : ''}is half-open and all probe permits are taken; retry after ${retryAfterMs} ms`
          : `Circuit ${breakerName ? `"${breakerName}" ` : ''}is open; retry after ${retryAfterMs} ms`,
    );
  }
}

/** The operation did not settle within the time allowed. */
export class TimeoutError extends BulwarkError {
  static readonly code = 'BULWARK_ERR_TIMEOUT';
  override readonly name = 'TimeoutError';
  readonly code = TimeoutError.code;
  constructor(readonly timeoutMs: number) {
    super(`Operation timed out after ${timeoutMs} ms`);
  }
}

/**
 * The call's deadline passed: the caller's own bound (`execute(fn, { deadline | timeoutMs })`, or the
 * ambient deadline of `runWithDeadline`), not a policy's. The operation's signal was aborted with it.
 */
export class DeadlineExceededError extends BulwarkError {
  static readonly code = 'BULWARK_ERR_DEADLINE_EXCEEDED';
  override readonly name = 'DeadlineExceededError';
  readonly code = DeadlineExceededError.code;
  constructor(
    /** The time the call had when it started, in ms (0: the deadline had already passed). */
    readonly budgetMs: number,
  ) {
    super(
      budgetMs > 0
        ? `Deadline exceeded: the call had ${Math.round(budgetMs)} ms`
        : 'Deadline exceeded before the call started',
    );
  }
}

/** A hedged attempt lost: another attempt of the same call succeeded first (the abort reason of the loser). */
export class HedgeCancelledError extends BulwarkError {
  static readonly code = 'BULWARK_ERR_HEDGE_CANCELLED';
  override readonly name = 'HedgeCancelledError';
  readonly code = HedgeCancelledError.code;
  constructor(
    /** The attempt that won (1 = the first). */
    readonly winner: number,
  ) {
    super(`Cancelled: attempt ${winner} of the hedged call succeeded first`);
  }
}

/** Client-side adaptive throttling rejected the call locally: the dependency has been refusing requests. */
export class ThrottledError extends BulwarkError {
  static readonly code = 'BULWARK_ERR_THROTTLED';
  override readonly name = 'ThrottledError';
  readonly code = ThrottledError.code;
  /** No useful wait: the next call may pass (the throttle rejects with a probability). */
  readonly retryAfterMs = 0;
  constructor(
    /** The probability of a local rejection when the call was made. */
    readonly probability: number,
    readonly key = '',
  ) {
    super(
      `Throttled locally${key ? ` for "${key}"` : ''}: the dependency refused too many requests (rejecting ${Math.round(probability * 100)} %)`,
    );
  }
}

/** The fault a `chaos.fault` policy injects when given no error of its own. */
export class ChaosFaultError extends BulwarkError {
  static readonly code = 'BULWARK_ERR_CHAOS_FAULT';
  override readonly name = 'ChaosFaultError';
  readonly code = ChaosFaultError.code;
  constructor(readonly policyName = 'chaos') {
    super(`Fault injected by chaos policy "${policyName}"`);
  }
}

/** The bulkhead had no free slot and its queue was full, or the call waited in the queue too long. */
export class BulkheadRejectedError extends BulwarkError {
  static readonly code = 'BULWARK_ERR_BULKHEAD_REJECTED';
  override readonly name = 'BulkheadRejectedError';
  readonly code = BulkheadRejectedError.code;
  constructor(
    readonly reason: 'queue-full' | 'queue-timeout',
    readonly maxConcurrent: number,
    readonly maxQueue: number,
    /** A hint for when a slot may be free (0 when unknown). */
    readonly retryAfterMs = 0,
  ) {
    super(
      reason === 'queue-full'
        ? `Bulkhead full: ${maxConcurrent} running and ${maxQueue} queued`
        : `Bulkhead queue wait timed out (${maxConcurrent} running)`,
    );
  }
}

/** The rate limiter had no token for this key. */
export class RateLimitedError extends BulwarkError {
  static readonly code = 'BULWARK_ERR_RATE_LIMITED';
  override readonly name = 'RateLimitedError';
  readonly code = RateLimitedError.code;
  constructor(
    readonly retryAfterMs: number,
    readonly key = '',
  ) {
    super(`Rate limit exceeded${key ? ` for "${key}"` : ''}; retry after ${retryAfterMs} ms`);
  }
}

/** What happened at one tier of a degradation ladder (see `degrade`). */
export interface TierReport {
  readonly tier: string;
  readonly status: 'served' | 'skipped' | 'failed';
  /**
   * For programs: the code given to `ctx.skip(code, reason)` when skipped; the failure's string `code`
   * property (e.g. `BULWARK_ERR_TIMEOUT`) when failed and it has one; absent when served.
   */
  readonly code?: string;
  /** For people: skip reason or failure message (empty when served). */
  readonly reason: string;
  /** The failure (only when `status` is `failed`). */
  readonly error?: unknown;
  /** Time spent in the tier, in ms on the ladder's clock. */
  readonly elapsedMs: number;
}

/** Every tier of a degradation ladder failed or had nothing to offer. `tiers` says what happened at each. */
export class AllSourcesFailedError extends BulwarkError {
  static readonly code = 'BULWARK_ERR_ALL_SOURCES_FAILED';
  override readonly name = 'AllSourcesFailedError';
  readonly code = AllSourcesFailedError.code;
  constructor(readonly tiers: readonly TierReport[]) {
    super(
      `All sources failed: ${tiers.map((t) => `${t.tier} ${t.status}${t.reason ? ` (${t.reason})` : ''}`).join('; ')}`,
      { cause: [...tiers].reverse().find((t) => t.status === 'failed')?.error },
    );
  }

  /** The errors of the tiers that failed (skipped tiers have none), in ladder order. */
  get errors(): unknown[] {
    return this.tiers.filter((t) => t.status === 'failed').map((t) => t.error);
  }
}

/** No snapshot exists for this store (no generation file in its directory), or not the one asked for. */
export class SnapshotNotFoundError extends BulwarkError {
  static readonly code = 'BULWARK_ERR_SNAPSHOT_NOT_FOUND';
  override readonly name = 'SnapshotNotFoundError';
  readonly code = SnapshotNotFoundError.code;
  constructor(
    readonly dir: string,
    readonly snapshotName: string,
    /** The generation asked for, when one was. */
    readonly generation?: number,
  ) {
    super(
      generation === undefined
        ? `No snapshot "${snapshotName}" in ${dir}`
        : `No snapshot "${snapshotName}" generation ${generation} in ${dir}`,
    );
  }
}

/** Snapshot files exist but none is intact: the store refuses to return an empty state silently. */
export class SnapshotCorruptError extends BulwarkError {
  static readonly code = 'BULWARK_ERR_SNAPSHOT_CORRUPT';
  override readonly name = 'SnapshotCorruptError';
  readonly code = SnapshotCorruptError.code;
  constructor(
    readonly dir: string,
    readonly snapshotName: string,
    /** Every file that failed verification, newest first (and where it was quarantined). */
    readonly corrupt: readonly CorruptSnapshot[],
  ) {
    super(
      `No intact snapshot "${snapshotName}" in ${dir}: ${corrupt
        .map((c) => `generation ${c.generation} ${c.reason}`)
        .join(', ')}`,
    );
  }
}

/** The step of a snapshot save that failed. */
export type SnapshotWriteStep = 'serialize' | 'open' | 'write' | 'fsync' | 'close' | 'publish' | 'fsync-dir';

/** A snapshot save failed; the temp file was removed and the previous generation is untouched. */
export class SnapshotWriteError extends BulwarkError {
  static readonly code = 'BULWARK_ERR_SNAPSHOT_WRITE';
  override readonly name = 'SnapshotWriteError';
  readonly code = SnapshotWriteError.code;
  constructor(
    /** The file the step worked on. */
    readonly path: string,
    readonly step: SnapshotWriteStep,
    cause: unknown,
  ) {
    const code = (cause as { code?: unknown } | null)?.code;
    super(
      `Snapshot save failed at ${step} of ${path}: ${typeof code === 'string' ? `${code} ` : ''}${
        (cause as Error)?.message ?? String(cause)
      }`,
      { cause },
    );
  }
}

/** Any value → a short description for error messages. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

/**
 * Builds an error without capturing a stack trace (a stack is the dearest part of an error, and on a
 * rejection path it would only point into Bulwark). Used where a policy rejects at once: an open
 * breaker, a full bulkhead, a rate limit, a timeout.
 */
export function withoutStack<T>(make: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
