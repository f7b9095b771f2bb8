/**
 * The options of `fetchAll`, their defaults (declared once, here) and their validation.
 */
import {
  EXPONENTIAL_BACKOFF_DEFAULTS,
  InvalidOptionError,
  type AdaptiveThrottleOptions,
  type Clock,
  type HedgeOptions,
} from '@bulwark/core';
import { checks, MAX_TIMER_MS } from '@bulwark/core/internal';
import type { Dispatcher } from 'undici';
import {
  resolveDeadlineHeader,
  type DeadlineHeaderOption,
  type ResolvedDeadlineHeader,
} from './deadline-header.js';
import { resolveTls, type TlsOptions } from './options.js';
import {
  resolveHedge,
  resolveThrottle,
  type ResolvedHedge,
  type ResolvedThrottle,
} from './policy-options.js';

export interface FetchAllOptions {
  /** Requests in flight at once, over all hosts (an integer ≥ 1). @default 50 */
  concurrency?: number;
  /**
   * Requests in flight at once to one origin (scheme, host and port); also undici's connection limit per
   * origin. Capped at `concurrency`. An origin that has not answered yet (and again after its breaker
   * opened) gets at most `breakerFailures` until one of its requests succeeds. @default 10
   */
  perHostConcurrency?: number;
  /**
   * Time allowed per attempt, in ms: connect, headers and the whole body. 5 s: long enough for a slow
   * server's answer, short enough that a dead host's one timeout is small against a bulk run. @default 5_000
   */
  timeoutMs?: number;
  /**
   * Retries per URL after its first attempt, for network errors, timeouts, 408/425/429/500/502/503/504,
   * within the shared retry budget. @default 2
   */
  retries?: number;
  /**
   * Retries allowed across the whole run, per URL started, in a sliding 10 s window (0.1 = at most one
   * retry per ten URLs, plus the floor). @default 0.1
   */
  retryBudgetRatio?: number;
  /** The budget's floor: retries allowed per second of window even without traffic. @default 10 */
  retryBudgetMinPerSecond?: number;
  /**
   * Scale of the first backoff before a retry, in ms (exponential with decorrelated jitter), at most 30_000
   * (core `retry`'s longest delay). @default 100
   */
  retryInitialDelayMs?: number;
  /** The longest `Retry-After` honoured, in ms; a longer one ends the URL's retries. @default 5_000 */
  maxRetryAfterMs?: number;
  /**
   * Consecutive failures (network errors, timeouts, 408, 425, 429, 5xx) after which a host's circuit breaker opens
   * and its remaining URLs fail fast with `CIRCUIT_OPEN`: those waiting for a slot at once, those read while
   * it is open on admission; its retries waiting out a backoff end then too. Also the most requests in flight
   * to a host that has not answered yet, so a dead host's first wave of failures opens its breaker in one
   * timeout while holding few of the `concurrency` slots. @default 5
   */
  breakerFailures?: number;
  /**
   * How long an open breaker fails fast before it lets probes through (3 at a time), in ms; doubles per
   * failed probe round up to 60 s (core `circuitBreaker` defaults). @default 5_000
   */
  breakerOpenMs?: number;
  /**
   * URLs refused by their host's open breaker wait for it: when it lets probes through, they go (three
   * first, the rest once it closes). They wait for free while other URLs are still in progress; once
   * nothing else is left, the run waits at most `maxWaitMs` more for their hosts, then they fail with
   * `CIRCUIT_OPEN` (their probes in flight too). `0`: a dead host never makes the run longer. At most
   * `readAhead` URLs wait outside the read-ahead window; more fail at once when `maxWaitMs` is 0, and
   * otherwise wait inside it (the input pauses once it is full of them: that counts as nothing else left,
   * so the wait stays bounded by `maxWaitMs`). @default 0
   */
  maxWaitMs?: number;
  /** Requests started per second per origin (fractional allowed; `Infinity`: no limit). @default Infinity */
  ratePerHost?: number;
  /**
   * URLs read from the input beyond `concurrency`: waiting for their host's slot, between retries, or
   * finished and not yet consumed. Bounds memory (each costs its URL and ~200 bytes). A black-holed
   * host's URLs wait in this window until its breaker opens (one `timeoutMs`): a window smaller than the
   * URLs it receives meanwhile stalls the input behind that host until then; once it is open they leave at
   * once. @default 1000
   */
  readAhead?: number;
  /** Headers sent with every request. @default none */
  headers?: Readonly<Record<string, string>>;
  /** Keep each response body in `result.body` (otherwise it is only counted). @default false */
  keepBody?: boolean;
  /** Abort a transfer beyond this many body bytes (`BODY_TOO_LARGE`). @default Infinity */
  maxBodyBytes?: number;
  /**
   * Aborting it aborts every request in flight; the iteration then rejects with `signal.reason`. The run's
   * listener on it is removed when the run ends (one long-lived signal may serve many runs).
   */
  signal?: AbortSignal;
  /**
   * The undici dispatcher to send through (it is not closed). @default a new `Agent` with
   * `connections: perHostConcurrency`, destroyed when the run ends
   */
  dispatcher?: Dispatcher;
  /**
   * TLS settings of the default dispatcher: `ca` (PEM certificates to trust), `rejectUnauthorized: false`
   * (no certificate check). @default the system's trust store, certificates checked
   */
  tls?: TlsOptions;
  /** The clock of every timeout, backoff, breaker, pace and wait (tests inject core's `FakeClock`). @default systemClock */
  clock?: Clock;
  /**
   * Send each attempt's budget in the `bulwark-timeout-ms` header (@bulwark/core's
   * `formatDeadlineHeader`, the same code path as the client's option of the same name): what is left of
   * the attempt's `timeoutMs` when it is sent, minus `allowanceMs` for the hop. An attempt with no budget
   * left beyond the allowance is not sent (`TIMEOUT`). `false`: no header. @default true ({ allowanceMs: 5 })
   */
  deadlineHeader?: DeadlineHeaderOption;
  /**
   * Client-side adaptive throttling per host (core's `adaptiveThrottle`, the SRE book's "Handling
   * Overload"): once a host refuses requests (5xx, 408/425/429, network errors, timeouts), attempts to it
   * are rejected locally with probability max(0, (requests − k·accepts) / (requests + 1)) over the
   * window, so what reaches it settles at about `k` times what it accepts. A rejected attempt is not sent,
   * does not count against the breaker and is not retried: the URL fails with `THROTTLED` (or, on a retry,
   * with its last request's failure). Core's option names, merged over `ADAPTIVE_THROTTLE_DEFAULTS`:
   * `k`, `windowMs`, `minimumRequests`, `random`. `false`: off.
   * @default on: { k: 2, windowMs: 30_000, minimumRequests: 20 }
   */
  adaptiveThrottle?: false | Partial<AdaptiveThrottleOptions>;
  /**
   * Hedging per host (core's `hedge`; GET is idempotent): when an attempt is slow, send a second request
   * for the URL; the first success wins and the other is aborted on the wire. Core's option names, merged
   * over `HEDGE_DEFAULTS`: `delayMs` (fixed) or the adaptive `percentile`, `minDelayMs`, `maxDelayMs`,
   * `minSamples`, `windowMs`; `maxHedges`; `budget` (default: hedges ≤ 10 % extra requests per host). A
   * hedge does not take a concurrency slot of its own (the budget bounds them). @default false (off)
   */
  hedge?: false | Partial<HedgeOptions>;
}

/** The defaults of {@link FetchAllOptions}. */
export const FETCH_ALL_DEFAULTS = Object.freeze({
  concurrency: 50,
  perHostConcurrency: 10,
  timeoutMs: 5_000,
  retries: 2,
  retryBudgetRatio: 0.1,
  retryBudgetMinPerSecond: 10,
  retryInitialDelayMs: 100,
  maxRetryAfterMs: 5_000,
  breakerFailures: 5,
  breakerOpenMs: 5_000,
  maxWaitMs: 0,
  ratePerHost: Infinity,
  readAhead: 1000,
  keepBody: false,
  maxBodyBytes: Infinity,
});

const KEYS = [
  ...Object.keys(FETCH_ALL_DEFAULTS),
  'headers',
  'signal',
  'dispatcher',
  'tls',
  'clock',
  'deadlineHeader',
  'adaptiveThrottle',
  'hedge',
] as readonly string[];

/** Options after validation and defaults. */
export interface ResolvedFetchAllOptions {
  readonly concurrency: number;
  readonly perHostConcurrency: number;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryBudgetRatio: number;
  readonly retryBudgetMinPerSecond: number;
  readonly retryInitialDelayMs: number;
  readonly maxRetryAfterMs: number;
  readonly breakerFailures: number;
  readonly breakerOpenMs: number;
  readonly maxWaitMs: number;
  readonly ratePerHost: number;
  readonly readAhead: number;
  readonly headers: Readonly<Record<string, string>> | undefined;
  readonly keepBody: boolean;
  readonly maxBodyBytes: number;
  readonly signal: AbortSignal | undefined;
  readonly dispatcher: Dispatcher | undefined;
  readonly tls: TlsOptions;
  readonly clock: Clock;
  /** `false`: no `bulwark-timeout-ms` header. */
  readonly deadlineHeader: ResolvedDeadlineHeader;
  readonly adaptiveThrottle: false | ResolvedThrottle;
  readonly hedge: false | ResolvedHedge;
}

/** Core `retry`'s default `maxDelayMs` (30 s): its backoff refuses a larger `initialDelayMs`. */
const MAX_BACKOFF_MS = EXPONENTIAL_BACKOFF_DEFAULTS.maxDelayMs;

/** Validates `options` (throws {@link InvalidOptionError} naming the option) and fills in defaults. */
export function resolveFetchAllOptions(options: FetchAllOptions | undefined): ResolvedFetchAllOptions {
  const o = checks.optionsObject('fetchAll', options);
  checks.knownKeys('fetchAll', o, KEYS);
  const d = FETCH_ALL_DEFAULTS;
  const int = (name: keyof typeof d, min: number, max = Infinity): number =>
    checks.number(`fetchAll.${name}`, o[name as keyof FetchAllOptions] ?? d[name], {
      min,
      max,
      integer: true,
    });
  const concurrency = int('concurrency', 1, 100_000);
  const perHost = int('perHostConcurrency', 1, 100_000);
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidOptionError('fetchAll.signal', signal, 'an AbortSignal');
  }
  const dispatcher = o.dispatcher;
  if (dispatcher !== undefined && typeof (dispatcher as Partial<Dispatcher>).dispatch !== 'function') {
    throw new InvalidOptionError('fetchAll.dispatcher', dispatcher, 'an undici Dispatcher');
  }
  const headers = o.headers;
  if (
    headers !== undefined &&
    (typeof headers !== 'object' ||
      headers === null ||
      Object.values(headers).some((v) => typeof v !== 'string'))
  ) {
    throw new InvalidOptionError('fetchAll.headers', headers, 'an object of string header values');
  }
  return {
    concurrency,
    perHostConcurrency: Math.min(perHost, concurrency),
    timeoutMs: checks.number('fetchAll.timeoutMs', o.timeoutMs ?? d.timeoutMs, {
      above: 0,
      max: MAX_TIMER_MS,
    }),
    retries: int('retries', 0, 100),
    retryBudgetRatio: checks.number('fetchAll.retryBudgetRatio', o.retryBudgetRatio ?? d.retryBudgetRatio, {
      min: 0,
    }),
    retryBudgetMinPerSecond: checks.number(
      'fetchAll.retryBudgetMinPerSecond',
      o.retryBudgetMinPerSecond ?? d.retryBudgetMinPerSecond,
      { min: 0 },
    ),
    retryInitialDelayMs: checks.number(
      'fetchAll.retryInitialDelayMs',
      o.retryInitialDelayMs ?? d.retryInitialDelayMs,
      { min: 0, max: MAX_BACKOFF_MS },
    ),
    maxRetryAfterMs: checks.number('fetchAll.maxRetryAfterMs', o.maxRetryAfterMs ?? d.maxRetryAfterMs, {
      min: 0,
      max: MAX_TIMER_MS,
    }),
    breakerFailures: int('breakerFailures', 1),
    breakerOpenMs: checks.number('fetchAll.breakerOpenMs', o.breakerOpenMs ?? d.breakerOpenMs, {
      above: 0,
      max: MAX_TIMER_MS,
    }),
    maxWaitMs: checks.number('fetchAll.maxWaitMs', o.maxWaitMs ?? d.maxWaitMs, {
      min: 0,
      max: MAX_TIMER_MS,
    }),
    ratePerHost: checks.number('fetchAll.ratePerHost', o.ratePerHost ?? d.ratePerHost, {
      above: 0,
      infinite: true,
    }),
    readAhead: int('readAhead', 0, 10_000_000),
    headers: headers === undefined ? undefined : Object.freeze({ ...headers }),
    keepBody: checks.boolean('fetchAll.keepBody', o.keepBody ?? d.keepBody),
    maxBodyBytes: checks.number('fetchAll.maxBodyBytes', o.maxBodyBytes ?? d.maxBodyBytes, {
      min: 0,
      infinite: true,
    }),
    signal,
    dispatcher,
    tls: resolveTls('fetchAll.tls', o.tls),
    clock: checks.clock('fetchAll.clock', o.clock),
    deadlineHeader: resolveDeadlineHeader('fetchAll.deadlineHeader', o.deadlineHeader),
    adaptiveThrottle: resolveThrottle('fetchAll.adaptiveThrottle', o.adaptiveThrottle),
    hedge: resolveHedge('fetchAll.hedge', o.hedge),
  };
}
