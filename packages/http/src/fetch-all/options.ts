/**
 * The options of `fetchAll`, their defaults (declared once, here) and their validation.
 */
import {
  InvalidOptionError,
  RETRY_DEFAULTS,
  retryBudget,
  type AdaptiveThrottleOptions,
  type RetryBudgetOptions,
  type Clock,
  type HedgeOptions,
} from '@bulwark/core';
import { checks, MAX_TIMER_MS } from '@bulwark/core/internal';
import type { Dispatcher } from 'undici';
import {
  resolveDeadlineHeader,
  type DeadlineHeaderOption,
  type ResolvedDeadlineHeader,
} from '../deadline-header.js';
import { resolveTls, type TlsOptions } from '../tls.js';
import {
  failuresToOpen,
  resolveBreaker,
  resolveHedge,
  resolveRetry,
  resolveThrottle,
  type HttpBreakerOptions,
  type HttpRetryOptions,
  type ResolvedHedge,
  type ResolvedThrottle,
} from '../policy-options.js';

/** fetchAll's retry keys: core's, but `budget` (the run has its own: `retryBudget`). */
const FETCH_ALL_RETRY_KEYS = [
  'maxAttempts',
  'maxRetryAfterMs',
  'initialDelayMs',
  'maxDelayMs',
  'multiplier',
  'jitter',
  'random',
  'backoff',
] as const;

/** `retryBudget`: core's options (but the clock, fetchAll's) over the defaults, validated by core. */
function resolveRetryBudget(
  value: unknown,
  defaults: Readonly<Partial<RetryBudgetOptions>>,
): Readonly<Omit<RetryBudgetOptions, 'clock'>> {
  const o = checks.optionsObject('fetchAll.retryBudget', value as Partial<RetryBudgetOptions> | undefined);
  checks.knownKeys('fetchAll.retryBudget', o, ['ratio', 'minRetriesPerSecond', 'windowMs']);
  const merged = Object.freeze({ ...defaults, ...o });
  try {
    retryBudget(merged);
  } catch (error) {
    if (error instanceof InvalidOptionError && error.option.startsWith('retryBudget.'))
      throw new InvalidOptionError(`fetchAll.${error.option}`, error.received, error.expected);
    throw error;
  }
  return merged;
}

export interface FetchAllOptions {
  /** Requests in flight at once, over all hosts (an integer ≥ 1). @default 50 */
  concurrency?: number;
  /**
   * Requests in flight at once to one origin (scheme, host and port); also undici's connection limit per
   * origin. Capped at `concurrency`. An origin that has not answered yet (and again after its breaker
   * opened) gets at most the failures that open its breaker (`circuitBreaker`) until one of its requests succeeds. @default 10
   */
  perHostConcurrency?: number;
  /**
   * Time allowed per attempt, in ms: connect, headers and the whole body. 5 s: long enough for a slow
   * server's answer, short enough that a dead host's one timeout is small against a bulk run. @default 5_000
   */
  attemptTimeoutMs?: number;
  /**
   * Retries per URL (core's `retry` options, merged over `FETCH_ALL_DEFAULTS.retry`, then core's
   * `RETRY_DEFAULTS`): `maxAttempts` (the first included: 3 = two retries), the backoff
   * (`initialDelayMs`, `maxDelayMs`, `multiplier`, `jitter`, `random`, or a `backoff`) and
   * `maxRetryAfterMs` (a longer `Retry-After` ends the URL's retries). Network errors, timeouts and
   * 408/425/429/500/502/503/504 are retried (the HTTP classification), within the run's `retryBudget`.
   * `name`, `clock`, `classify`, `readRetryAfterMs` and `budget` are fetchAll's and refused. `false`: one
   * attempt per URL. @default { maxAttempts: 3, maxRetryAfterMs: 5_000 } and core's backoff (100 ms initial)
   */
  retry?: false | Partial<HttpRetryOptions>;
  /**
   * The run's retry budget (core's `retryBudget` options over `FETCH_ALL_DEFAULTS.retryBudget`, then
   * core's): `ratio` retries allowed per URL started in a sliding `windowMs` (0.1 = at most one retry per
   * ten URLs), plus `minRetriesPerSecond` even without traffic. @default { ratio: 0.1 } (core: 10/s floor, 10 s window)
   */
  retryBudget?: Partial<Omit<RetryBudgetOptions, 'clock'>>;
  /**
   * A circuit breaker per host (origin): core's `circuitBreaker` options, merged over
   * `FETCH_ALL_DEFAULTS.circuitBreaker`, then core's `CIRCUIT_BREAKER_DEFAULTS`. Failures are the HTTP
   * classification's (network errors, timeouts, 408, 425, 429, 5xx). Once open, the host's remaining URLs
   * fail fast with `CIRCUIT_OPEN`: those waiting for a slot at once, those read while it is open on
   * admission; its retries waiting out a backoff end then too. The failures that open it first (the
   * consecutive `threshold`, or a window's `minimumCalls`) are also the most requests in flight to a host
   * that has not answered yet, so a dead host's first wave of failures opens its breaker in one timeout
   * while holding few of the `concurrency` slots. `halfOpenTimeoutMs` defaults to `attemptTimeoutMs` +
   * 1 s (a probe is bounded by its attempt). `name`, `clock`, `classify` and `initialState` are fetchAll's
   * and refused. `false`: no breaker (core's `mode: 'disabled'`).
   * @default { strategy: { type: 'consecutive', threshold: 5 } } over core's (open 5 s, doubling per failed probe round up to 60 s, 3 probes)
   */
  circuitBreaker?: false | Partial<HttpBreakerOptions>;
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
   * host's URLs wait in this window until its breaker opens (one `attemptTimeoutMs`): a window smaller than the
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
   * the attempt's `attemptTimeoutMs` when it is sent, minus `allowanceMs` for the hop (at least 1). Only a
   * caller's deadline around the run (`runWithDeadline`) with nothing left beyond the allowance keeps an
   * attempt unsent (`TIMEOUT`). `false`: no header. @default true ({ allowanceMs: 5 })
   */
  deadlineHeader?: DeadlineHeaderOption;
  /**
   * Client-side adaptive throttling per host (core's `adaptiveThrottle`, the SRE book's "Handling
   * Overload"): once a host refuses requests (5xx, 408/425/429, network errors, timeouts), attempts to it
   * are rejected locally with probability max(0, (requests − k·accepts) / (requests + 1)) over the
   * window, so what reaches it settles at about `k` times what it accepts. A rejected attempt is not sent,
   * does not count against the breaker and is not retried: the URL fails with `THROTTLED` (or, on a retry,
   * with its last request's failure). Core's option names, merged over `ADAPTIVE_THROTTLE_DEFAULTS`:
   * `k`, `windowMs`, `minimumRequests`, `maxRejectionProbability`, `random`. `false`: off.
   * @default on: { k: 2, windowMs: 30_000, minimumRequests: 20, maxRejectionProbability: 0.9 }
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
  attemptTimeoutMs: 5_000,
  /**
   * Where fetchAll's retry differs from core's: a `Retry-After` is honoured up to 5 s (core: 60 s), one
   * attempt's time; a host asking for longer is not worth holding a bulk run's URL for. `maxAttempts` is
   * core's, read here for the CLI.
   */
  retry: Object.freeze({
    maxAttempts: RETRY_DEFAULTS.maxAttempts,
    maxRetryAfterMs: 5_000,
  }) as Readonly<HttpRetryOptions> & { readonly maxAttempts: number },
  /** Half of core's ratio: a bulk run's retries are extra load on hosts already failing. */
  retryBudget: Object.freeze({ ratio: 0.1 }) as Readonly<Partial<RetryBudgetOptions>> & {
    readonly ratio: number;
  },
  /**
   * Where fetchAll's breaker differs from core's (chosen once, here): 5 failures in a row rather than
   * core's time window, so a dead host is recognised within its first wave of requests (one timeout)
   * and that wave is small (see `circuitBreaker`). Core's open duration (5 s, doubling): a bulk run
   * is short, and a host that recovers is used again within it.
   */
  circuitBreaker: Object.freeze({
    strategy: Object.freeze({ type: 'consecutive', threshold: 5 }),
  }) as Readonly<HttpBreakerOptions> & {
    readonly strategy: { readonly type: 'consecutive'; readonly threshold: number };
  },
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
  readonly attemptTimeoutMs: number;
  readonly retry: Readonly<HttpRetryOptions> & { readonly maxAttempts: number };
  readonly retryBudget: Readonly<Omit<RetryBudgetOptions, 'clock'>>;
  /** Core's options for each host's breaker (`false` → `mode: 'disabled'`), the HTTP layer's keys aside. */
  readonly circuitBreaker: Readonly<HttpBreakerOptions>;
  /** The failures that open a breaker first: the most in flight to a host that has not answered yet. */
  readonly breakerFailures: number;
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
  const attemptTimeoutMs = checks.number(
    'fetchAll.attemptTimeoutMs',
    o.attemptTimeoutMs ?? d.attemptTimeoutMs,
    { above: 0, max: MAX_TIMER_MS },
  );
  const breaker = resolveBreaker('fetchAll.circuitBreaker', o.circuitBreaker, d.circuitBreaker);
  // probes are bounded by the attempt timeout; one that outlives it is hung
  const circuitBreaker: Readonly<HttpBreakerOptions> = Object.freeze({
    halfOpenTimeoutMs: attemptTimeoutMs + 1000,
    ...(breaker === false ? { mode: 'disabled' as const } : breaker),
  });
  return {
    concurrency,
    perHostConcurrency: Math.min(perHost, concurrency),
    attemptTimeoutMs,
    retry: resolveRetry('fetchAll.retry', o.retry, d.retry, FETCH_ALL_RETRY_KEYS),
    retryBudget: resolveRetryBudget(o.retryBudget, d.retryBudget),
    circuitBreaker,
    breakerFailures: circuitBreaker.mode === 'disabled' ? perHost : failuresToOpen(circuitBreaker),
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
