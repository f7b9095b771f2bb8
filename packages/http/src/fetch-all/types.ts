/**
 * The public shapes of `fetchAll`: one result per URL, live counters, breaker events.
 */
import type { Subscribe } from '@bulwark/core';
import type { FetchErrorCode } from './errors.js';

/** The outcome for one input URL. Fields that do not apply are `undefined` (left out by `JSON.stringify`). */
export interface FetchResult {
  /** Position of the URL in the input (0-based). */
  readonly index: number;
  /** The URL as given. */
  readonly url: string;
  /** `host[:port]` of the URL (`''` when it is not a valid URL). */
  readonly host: string;
  /** True when a response with a status below 400 arrived. */
  readonly ok: boolean;
  /** The last HTTP status received, if any. */
  readonly status: number | undefined;
  /** Body bytes received in the last attempt. */
  readonly bytes: number;
  /**
   * From the first attempt's start to the outcome, in ms: retries and backoff included, time queued for
   * a concurrency slot before the first attempt not. 0 when no request was sent.
   */
  readonly durationMs: number;
  /** Requests sent for this URL (0 when none was: invalid URL, open breaker, aborted while queued). */
  readonly attempts: number;
  /**
   * Why it failed; `undefined` when `ok`. The failure of the last request sent for the URL; when none was
   * sent: `INVALID_URL`, `CIRCUIT_OPEN` (its host's breaker was open) or `ABORTED`. A run's abort wins:
   * a URL still in progress then is `ABORTED`.
   */
  readonly errorCode: FetchErrorCode | undefined;
  /** A one-line description of the failure; `undefined` when `ok`. */
  readonly error: string | undefined;
  /** The body, only with `keepBody: true`. */
  readonly body: Buffer | undefined;
}

/** Emitted when a host's circuit breaker changes state. */
export interface HostBreakerEvent {
  /** `host[:port]`. */
  readonly host: string;
  /** The origin the breaker guards (`http://host:port`). */
  readonly origin: string;
  readonly from: string;
  readonly to: string;
}

/** Counters of a run, readable at any time (e.g. for a progress bar). */
export interface FetchAllStats {
  /** URLs taken from the input. */
  readonly read: number;
  /** Results produced (consumed or waiting to be). */
  readonly completed: number;
  /** Results with `ok: true`. */
  readonly ok: number;
  /** Requests on the wire now. */
  readonly inFlight: number;
  /**
   * Retries sent (granted by the budget and gone out; a retry that its host's opening breaker cut short
   * during its backoff is not counted).
   */
  readonly retries: number;
  /** Retries the budget refused. */
  readonly retriesDenied: number;
  /** Hedged requests sent (`hedge`: a second request for a URL whose first was slow; not retries). */
  readonly hedges: number;
  /**
   * Attempts the hosts' adaptive throttles rejected locally (`adaptiveThrottle`): never sent, because the
   * host has been refusing requests. A URL whose first attempt was one fails with `THROTTLED`.
   */
  readonly throttled: number;
  /** `host[:port]` → times its breaker opened (only hosts whose breaker opened). */
  readonly breakerTrips: ReadonlyMap<string, number>;
  /** URLs waiting for their host's breaker to let requests through again (see `maxWaitMs`). */
  readonly waiting: number;
}

/** What `fetchAll` returns: an async iterable of results (single use), with live counters. */
export interface FetchAllRun extends AsyncIterableIterator<FetchResult> {
  readonly stats: FetchAllStats;
  /** Breaker state changes per host (subscribe before iterating to see them all). */
  readonly onBreakerStateChange: Subscribe<HostBreakerEvent>;
}
