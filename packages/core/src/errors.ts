/**
 * One error family. Every error has a `name`, a stable `code` (`BULWARK_ERR_*`, listed in
 * docs/errors.md and checked against it by a test) and structured fields.
 */
import type { CorruptSnapshot } from './snapshot/format.js';

export abstract class BulwarkError extends Error {
  /** Stable machine-readable code, e.g. `BULWARK_ERR_TIMEOUT`. */
  abstract readonly code: string;
}

/** An option passed to a factory is invalid. Thrown at construction, never per call. */
export class InvalidOptionError extends BulwarkError {
  override readonly name = 'InvalidOptionError';
  readonly code = 'BULWARK_ERR_INVALID_OPTION';
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
  override readonly name: string = 'CircuitOpenError';
  readonly code: string = 'BULWARK_ERR_CIRCUIT_OPEN';
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
  override readonly name = 'TimeoutError';
  readonly code = 'BULWARK_ERR_TIMEOUT';
  constructor(readonly timeoutMs: number) {
    super(`Operation timed out after ${timeoutMs} ms`);
  }
}

/** The bulkhead had no free slot and its queue was full, or the call waited in the queue too long. */
export class BulkheadRejectedError extends BulwarkError {
  override readonly name = 'BulkheadRejectedError';
  readonly code = 'BULWARK_ERR_BULKHEAD_REJECTED';
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
  override readonly name = 'RateLimitedError';
  readonly code = 'BULWARK_ERR_RATE_LIMITED';
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
  /** Skip reason or failure message (empty when served). */
  readonly reason: string;
  /** The failure (only when `status` is `failed`). */
  readonly error?: unknown;
  /** Time spent in the tier, in ms on the ladder's clock. */
  readonly elapsedMs: number;
}

/** Every tier of a degradation ladder failed or had nothing to offer. `tiers` says what happened at each. */
export class AllSourcesFailedError extends BulwarkError {
  override readonly name = 'AllSourcesFailedError';
  readonly code = 'BULWARK_ERR_ALL_SOURCES_FAILED';
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
  override readonly name = 'SnapshotNotFoundError';
  readonly code = 'BULWARK_ERR_SNAPSHOT_NOT_FOUND';
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
  override readonly name = 'SnapshotCorruptError';
  readonly code = 'BULWARK_ERR_SNAPSHOT_CORRUPT';
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
  override readonly name = 'SnapshotWriteError';
  readonly code = 'BULWARK_ERR_SNAPSHOT_WRITE';
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
 * Builds an error without capturing a stack trace (a stack costs ~4 µs on this class of machine and
 * would only point into Bulwark). Used on hot rejection paths such as an open breaker.
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

/** True when `error` is a Bulwark error with one of the given codes. */
export function isBulwarkError(error: unknown, code?: string): error is BulwarkError {
  return error instanceof BulwarkError && (code === undefined || error.code === code);
}
