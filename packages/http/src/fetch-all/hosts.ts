/**
 * An origin's state in a `fetchAll` run (its breaker, policies, slots, and the URLs waiting for it), the
 * signal its retries sleep on, and why a URL's wait for its host ended.
 */
import { setMaxListeners } from 'node:events';
import type {
  CircuitBreakerPolicy,
  CircuitOpenError,
  ClockTimer,
  ExecuteOptions,
  Policy,
} from '@bulwark/core';
import type { Item } from './item.js';
import type { HostSlots } from './slots.js';

/** Most idle origin states kept (breaker, slots); beyond it idle ones with a closed breaker are dropped. */
export const MAX_IDLE_HOSTS = 1000;

/**
 * Why a URL's retry was cut short: its host's breaker opened (the reason a host's signal is aborted with).
 * Never reported as such: the URL reports the failure of its last request (or `CIRCUIT_OPEN`).
 */
export class HostTripped {}
export const HOST_TRIPPED = new HostTripped();

/**
 * Why a probe in flight was abandoned: nothing else was left to do and the wait for its host was over
 * (`maxWaitMs`). Reported as `CIRCUIT_OPEN` (or the failure of the URL's last request).
 */
export class GaveUp {
  /** Not retried (core retry's default reads this). */
  readonly retryable = false;
}
export const GAVE_UP = new GaveUp();

export interface Host {
  readonly host: string;
  readonly breaker: CircuitBreakerPolicy;
  /** slots → [hedge] → [adaptive throttle] → breaker → timeout: a later attempt (a retry). */
  readonly policy: Policy;
  /** The same without the slots: a first attempt, which already holds its slot. */
  readonly inner: Policy;
  readonly slots: HostSlots;
  readonly breakerIsClosed: () => boolean;
  readonly breakerIsOpen: () => boolean;
  /** URLs of this origin admitted and not settled. */
  active: number;
  /**
   * The signal `retry` gets for this host's URLs (it listens only while a backoff sleeps). Aborted with
   * {@link HOST_TRIPPED} when the breaker opens, and replaced; aborted with the run's reason by the run's abort.
   */
  controller: AbortController;
  execOptions: ExecuteOptions;
  /** While open: ms until the breaker lets probes through (the breaker's own count), for `retryAfterMs`. */
  readonly openRemainingMs: () => number;
  /** The last `CircuitOpenError` made for this host's URLs (shared while its `retryAfterMs` is the same). */
  openError: CircuitOpenError | undefined;
  /** URLs refused by its open breaker, waiting for it to half-open (FIFO). */
  readonly parked: Item[];
  /** Wakes the parked URLs when the breaker's open time is over. */
  wake: ClockTimer | undefined;
}

export function hostSignal(): { controller: AbortController; execOptions: ExecuteOptions } {
  const controller = new AbortController();
  // every retry of the host sleeping in a backoff listens on it
  setMaxListeners(0, controller.signal);
  return { controller, execOptions: { signal: controller.signal } };
}
