/**
 * The options of `createHttpClient`, their defaults (declared once, here) and their validation.
 */
import {
  InvalidOptionError,
  RETRY_DEFAULTS,
  type AdaptiveThrottleOptions,
  type Clock,
  type HedgeOptions,
} from '@bulwark/core';
import { checks } from '@bulwark/core/internal';
import type { Dispatcher } from 'undici';
import type { CacheStore } from '../cache/store.js';
import {
  resolveBreaker,
  resolveHedge,
  resolveRetry,
  resolveThrottle,
  type HttpBreakerOptions,
  type HttpRetryOptions,
  type ResolvedHedge,
  type ResolvedThrottle,
} from '../policy-options.js';
import {
  resolveDeadlineHeader,
  type DeadlineHeaderOption,
  type ResolvedDeadlineHeader,
} from '../deadline-header.js';
import { resolveTls, type TlsOptions } from '../tls.js';

export interface HttpClientOptions {
  /**
   * The whole budget of the network tiers of one `get` (all attempts, backoffs and fallbacks), in ms.
   * The cache tiers still run after it is spent, so a stale copy can be served. `Infinity`: no bound.
   * @default 30_000
   */
  totalTimeoutMs?: number;
  /**
   * How long one attempt may wait for its response headers (connect and request included), in ms. The body
   * then has the total (and `bodyTimeoutMs` between chunks), so a short deadline does not cut a large
   * download. An explicit value applies to every attempt. @default derived from the total: the first attempt
   * gets `totalTimeoutMs / 15` (2 s of 30 s; from 1 s to 10 s), each retry twice the one before, and the
   * last attempt of the last source only the total — so a black-holed source costs seconds, not the total.
   */
  attemptTimeoutMs?: number;
  /** TCP (and TLS) connect timeout per connection, in ms. @default 10_000 */
  connectTimeoutMs?: number;
  /**
   * Time from sending the request to receiving the response headers, in ms (undici's `headersTimeout`).
   * Unset, it follows each attempt's own deadline (`attemptTimeoutMs`, derived or set; the total for the
   * last attempt), so that deadline is what ends the wait, however long it is. Set, it applies as given
   * (a shorter one ends an attempt first, as a `headers-timeout`). @default the attempt deadline
   */
  headersTimeoutMs?: number;
  /** Longest pause between two body chunks (idle), in ms. @default 10_000 */
  bodyTimeoutMs?: number;
  /**
   * Retries per source (core's `retry` options, merged over `HTTP_CLIENT_DEFAULTS.retry`, then core's
   * `RETRY_DEFAULTS`): `maxAttempts` (the first included), the backoff (`initialDelayMs`, `maxDelayMs`,
   * `multiplier`, `jitter`, `random`, or a `backoff`), `maxRetryAfterMs` (a longer `Retry-After` ends that
   * source's retries) and a shared `budget`. What is retried is the HTTP classification's (retryable
   * statuses, network errors, timeouts; not an open breaker nor a local throttle's rejection): the
   * `classify`, `name`, `clock` and `readRetryAfterMs` keys are the client's and refused. `false`: one
   * attempt per source.
   * @default { maxAttempts: 3, maxRetryAfterMs: 30_000 } and core's backoff (100 ms initial, ×2, decorrelated jitter, 30 s cap)
   */
  retry?: false | Partial<HttpRetryOptions>;
  /**
   * A circuit breaker per origin (scheme + host + port): core's `circuitBreaker` options, merged over
   * `HTTP_CLIENT_DEFAULTS.circuitBreaker`, then core's `CIRCUIT_BREAKER_DEFAULTS`. What counts as a
   * failure is the HTTP classification's (`HOST_FAILURE_CLASSIFY`); `name`, `clock`, `classify` and
   * `initialState` are the client's and refused. `false` disables breakers.
   * @default { strategy: { type: 'consecutive', threshold: 5 }, openDurationMs: 30_000 }
   */
  circuitBreaker?: false | Partial<HttpBreakerOptions>;
  /** The largest body accepted, in bytes; the transfer is aborted past it. @default 104_857_600 (100 MiB) */
  maxBodyBytes?: number;
  /** Redirects followed per attempt. @default 5 */
  maxRedirects?: number;
  /** Follow redirects; `false` serves a 3xx response as it is (like curl without `-L`). @default true */
  followRedirects?: boolean;
  /**
   * Ask for compressed bodies (`Accept-Encoding: gzip, deflate, br`) and decode a compressed body, asked
   * for or not; a body that does not decode is a failure. `false`: no `Accept-Encoding`, bodies as sent.
   * @default true
   */
  decompress?: boolean;
  /** Where responses are cached; `false` disables the cache tiers. @default a MemoryCacheStore (50 MiB) */
  cache?: CacheStore | false;
  /**
   * The stale tier serves a copy at most this many ms past its freshness. When not set, the response's
   * `stale-if-error` window is used if it has one, else 24 h.
   * @default undefined
   */
  maxStaleMs?: number;
  /**
   * Headers sent with every request; an empty value removes the header (`'user-agent': ''` sends none).
   * @default { 'user-agent': 'bulwark-http/0.1' }
   */
  headers?: Readonly<Record<string, string>>;
  /**
   * The undici dispatcher. The default is an `EnvHttpProxyAgent` (honours HTTP_PROXY, HTTPS_PROXY and
   * NO_PROXY) with the connect timeout above and `tls`; `close()` closes it. A dispatcher you pass is
   * yours to close (and `tls` does not apply to it).
   */
  dispatcher?: Dispatcher;
  /**
   * TLS settings of the default dispatcher: `ca` (PEM certificates to trust instead of the system's),
   * `rejectUnauthorized: false` (no certificate check at all: anyone on the path can read and change the
   * transfer). @default the system's trust store, certificates checked
   */
  tls?: TlsOptions;
  /** Monotonic clock for timeouts, backoff and timings. @default systemClock */
  clock?: Clock;
  /** Wall clock (ms since the epoch) for cache ages. @default Date.now */
  now?: () => number;
  /**
   * Send each attempt's remaining budget in the `bulwark-timeout-ms` header (@bulwark/core's
   * `formatDeadlineHeader`): the least of the attempt's own limit, the source's share of
   * `totalTimeoutMs` and the ambient deadline (`runWithDeadline`, e.g. the request a service is
   * answering), minus `allowanceMs` for the hop (at least 1). When the *caller's* deadline has nothing
   * left beyond the allowance the attempt is not sent (`DeadlineExceededError`); the client's own limits
   * never stop it unsent. `false`: no header (the bounds still apply). @default true ({ allowanceMs: 5 })
   */
  deadlineHeader?: DeadlineHeaderOption;
  /**
   * Client-side adaptive throttling per origin (core's `adaptiveThrottle`, the SRE book's "Handling
   * Overload"): once an origin refuses requests (5xx, 408/425/429, network errors, timeouts, cut bodies),
   * its attempts are rejected locally with probability max(0, (requests − k·accepts) / (requests + 1))
   * over the window, so what reaches it settles at about `k` times what it accepts. A rejected attempt is
   * not sent, is not counted by the breaker and is not retried: the call moves on to the next tier (a
   * mirror, the stale copy) with core's `ThrottledError` (`BULWARK_ERR_THROTTLED`) in that tier's report.
   * Core's option names, merged over `ADAPTIVE_THROTTLE_DEFAULTS`: `k`, `windowMs`, `minimumRequests`,
   * `maxRejectionProbability`, `random`. `false`: off.
   * @default on: { k: 2, windowMs: 30_000, minimumRequests: 20, maxRejectionProbability: 0.9 }
   */
  adaptiveThrottle?: false | Partial<AdaptiveThrottleOptions>;
  /**
   * Hedging per origin (core's `hedge`; the client sends only GET and HEAD, both idempotent): when an
   * attempt is slow, another request goes out; the first success wins and the other is aborted (its
   * connection closed, its sink aborted, nothing of it cached). Core's option names, merged over
   * `HEDGE_DEFAULTS`: `delayMs` (fixed) or the adaptive `percentile`, `minDelayMs`, `maxDelayMs`,
   * `minSamples`, `windowMs`; `maxHedges`; `budget` (default: at most 10 % extra requests per origin).
   * @default false (off)
   */
  hedge?: false | Partial<HedgeOptions>;
}

export const HTTP_CLIENT_DEFAULTS = Object.freeze({
  totalTimeoutMs: 30_000,
  /** `attemptTimeoutMs` when not set: `totalTimeoutMs / 15`, from `min…` to `max…` (see the option). */
  minDerivedAttemptTimeoutMs: 1_000,
  maxDerivedAttemptTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
  /**
   * Where the client's retry differs from core's: a `Retry-After` is honoured up to 30 s (core: 60 s),
   * the client's whole default budget (`totalTimeoutMs`). `maxAttempts` is core's, read here for the CLIs.
   */
  retry: Object.freeze({
    maxAttempts: RETRY_DEFAULTS.maxAttempts,
    maxRetryAfterMs: 30_000,
  }) as Readonly<HttpRetryOptions> & { readonly maxAttempts: number },
  /**
   * Where the client's breaker differs from core's (chosen once, here): 5 failures in a row rather than
   * core's time window (a client sees few calls per origin, too few for a rate over 20 calls to decide
   * soon), and 30 s open rather than 5 s (an interactive client's call has its cache and mirrors to fall
   * back on, so an origin that just failed five times in a row is left alone for a while).
   */
  circuitBreaker: Object.freeze({
    strategy: Object.freeze({ type: 'consecutive', threshold: 5 }),
    openDurationMs: 30_000,
  }) as Readonly<HttpBreakerOptions>,
  maxBodyBytes: 100 * 1024 * 1024,
  maxRedirects: 5,
  followRedirects: true,
  decompress: true,
  defaultMaxStaleMs: 24 * 60 * 60 * 1000,
  userAgent: 'bulwark-http/0.1',
});

const KEYS = [
  'totalTimeoutMs',
  'attemptTimeoutMs',
  'connectTimeoutMs',
  'headersTimeoutMs',
  'bodyTimeoutMs',
  'retry',
  'circuitBreaker',
  'maxBodyBytes',
  'maxRedirects',
  'followRedirects',
  'decompress',
  'cache',
  'maxStaleMs',
  'headers',
  'dispatcher',
  'tls',
  'clock',
  'now',
  'deadlineHeader',
  'adaptiveThrottle',
  'hedge',
] as const;

export interface ResolvedOptions {
  readonly totalTimeoutMs: number;
  /** `undefined`: derived per attempt (see the option). */
  readonly attemptTimeoutMs: number | undefined;
  readonly connectTimeoutMs: number;
  /** `undefined`: each attempt's deadline. */
  readonly headersTimeoutMs: number | undefined;
  readonly bodyTimeoutMs: number;
  readonly retry: Readonly<HttpRetryOptions> & { readonly maxAttempts: number };
  readonly circuitBreaker: false | Readonly<HttpBreakerOptions>;
  readonly maxBodyBytes: number;
  readonly maxRedirects: number;
  readonly followRedirects: boolean;
  readonly decompress: boolean;
  readonly cache: CacheStore | false | undefined;
  readonly maxStaleMs: number | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly dispatcher: Dispatcher | undefined;
  readonly tls: TlsOptions;
  readonly clock: Clock;
  readonly now: () => number;
  /** `false`: no `bulwark-timeout-ms` header. */
  readonly deadlineHeader: ResolvedDeadlineHeader;
  readonly adaptiveThrottle: false | ResolvedThrottle;
  readonly hedge: false | ResolvedHedge;
}

export function resolveOptions(options: HttpClientOptions | undefined): ResolvedOptions {
  const o = checks.optionsObject('httpClient', options);
  checks.knownKeys('httpClient', o, KEYS);
  const d = HTTP_CLIENT_DEFAULTS;
  const ms = (name: keyof typeof d & keyof HttpClientOptions, value: unknown) =>
    checks.positiveMs(`httpClient.${name}`, value ?? d[name], true);
  const cache = o.cache;
  if (
    cache !== undefined &&
    cache !== false &&
    (typeof cache !== 'object' || cache === null || typeof (cache as Partial<CacheStore>).get !== 'function')
  ) {
    throw new InvalidOptionError('httpClient.cache', cache, 'false or a CacheStore ({ get, set, delete })');
  }
  const headers = checks.optionsObject('httpClient.headers', o.headers ?? {});
  for (const [k, v] of Object.entries(headers)) checks.string(`httpClient.headers.${k}`, v);
  return {
    totalTimeoutMs: ms('totalTimeoutMs', o.totalTimeoutMs),
    attemptTimeoutMs:
      o.attemptTimeoutMs === undefined
        ? undefined
        : checks.positiveMs('httpClient.attemptTimeoutMs', o.attemptTimeoutMs, true),
    connectTimeoutMs: checks.positiveMs(
      'httpClient.connectTimeoutMs',
      o.connectTimeoutMs ?? d.connectTimeoutMs,
    ),
    headersTimeoutMs:
      o.headersTimeoutMs === undefined
        ? undefined
        : checks.positiveMs('httpClient.headersTimeoutMs', o.headersTimeoutMs, true),
    bodyTimeoutMs: ms('bodyTimeoutMs', o.bodyTimeoutMs),
    retry: resolveRetry('httpClient.retry', o.retry, d.retry),
    circuitBreaker: resolveBreaker('httpClient.circuitBreaker', o.circuitBreaker, d.circuitBreaker),
    maxBodyBytes: checks.number('httpClient.maxBodyBytes', o.maxBodyBytes ?? d.maxBodyBytes, {
      min: 0,
      integer: true,
      infinite: true,
    }),
    maxRedirects: checks.number('httpClient.maxRedirects', o.maxRedirects ?? d.maxRedirects, {
      min: 0,
      integer: true,
    }),
    followRedirects: checks.boolean('httpClient.followRedirects', o.followRedirects ?? d.followRedirects),
    decompress: checks.boolean('httpClient.decompress', o.decompress ?? d.decompress),
    cache,
    maxStaleMs:
      o.maxStaleMs === undefined
        ? undefined
        : checks.nonNegativeMs('httpClient.maxStaleMs', o.maxStaleMs, true),
    headers: withoutEmpty({ 'user-agent': d.userAgent, ...lowerKeys(headers) }),
    dispatcher: o.dispatcher,
    tls: resolveTls('httpClient.tls', o.tls),
    clock: checks.clock('httpClient.clock', o.clock),
    now: o.now === undefined ? Date.now : checks.fn<() => number>('httpClient.now', o.now),
    deadlineHeader: resolveDeadlineHeader('httpClient.deadlineHeader', o.deadlineHeader),
    adaptiveThrottle: resolveThrottle('httpClient.adaptiveThrottle', o.adaptiveThrottle),
    hedge: resolveHedge('httpClient.hedge', o.hedge),
  };
}

/** An empty value removes the header (a default one, such as `user-agent`, included). */
function withoutEmpty(headers: Record<string, string>): Record<string, string> {
  for (const [k, v] of Object.entries(headers)) if (v === '') delete headers[k];
  return headers;
}

function lowerKeys(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) out[k.toLowerCase()] = v;
  return out;
}
