/**
 * What a backoff is: a factory of per-call delay sequences.
 *
 * A retry policy calls {@link Backoff.start} only when a call first fails, so a call that succeeds at
 * once allocates no backoff state. Each sequence belongs to one call; {@link BackoffSequence.next}
 * returns the delay before the next retry (the first call gives the delay before attempt 2).
 */

/** The delays of one call's retries, in order. */
export interface BackoffSequence {
  /** Delay in ms before the next retry: finite and ≥ 0. */
  next(): number;
}

/** Makes a fresh {@link BackoffSequence} per call. Implementations must be safe to share across calls. */
export interface Backoff {
  start(): BackoffSequence;
}

/** A source of uniform random numbers in [0, 1) (injectable, so tests are deterministic). */
export type RandomSource = () => number;
