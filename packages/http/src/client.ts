/**
 * The resilient HTTP client: GET through five degradation tiers.
 *
 *   fresh cache → primary → fallback mirror(s) → stale cache (within max-stale) → AllSourcesFailedError
 *
 * Each network tier runs `total deadline → retry (honours Retry-After) → circuit breaker (per origin) →
 * attempt timeout → one undici request`. Concurrent `get`s of the same URL share one run (single-flight).
 */
import {
  CircuitOpenError,
  EventEmitter,
  degrade,
  onAbort,
  defaultShouldRetry,
  circuitBreaker,
  pipeline,
  retry,
  timeout,
  type Degrader,
  type Policy,
  type Subscribe,
  type TierContext,
  type TierEvent,
  type TierReport,
} from '@bulwark/core';
import type CachePolicy from 'http-cache-semantics';
import { EnvHttpProxyAgent, type Dispatcher } from 'undici';
import {
  cacheRequest,
  freshDecision,
  hasValidator,
  newPolicy,
  policyClass,
  restore,
  revalidationHeaders,
  staleDecision,
  ageOf,
  type CacheAge,
  type PolicyClass,
} from './cache/semantics.js';
import { MemoryCacheStore } from './cache/memory-store.js';
import type { CacheStore, CachedResponse } from './cache/store.js';
import { HttpError, HttpNetworkError, HttpStatusError, messageOf, parseRetryAfter } from './errors.js';
import {
  resolveOptions,
  HTTP_CLIENT_DEFAULTS,
  type HttpClientOptions,
  type ResolvedOptions,
} from './options.js';
import { resetGuard } from './reset-guard.js';
import { parseHttpUrl } from './url.js';
import { attempt as sendOnce, headerValue, type RawResponse, type ResponseHeaders } from './transport.js';

/**
 * The skip reasons of the cache tiers when no cached copy was there to judge (stable strings: a CLI can
 * tell "nothing cached" from "a copy existed but was too old" by them).
 */
export const NO_COPY_REASONS = Object.freeze({
  cacheDisabled: 'cache disabled',
  noStore: 'cache not used for this call (no-store)',
  notCached: 'not cached',
  noCopy: 'no cached copy',
});

/** Which kind of tier served. */
export type HttpTier = 'fresh-cache' | 'primary' | 'fallback' | 'stale-cache';

export interface HttpGetOptions {
  /** Mirror URLs of the same resource, tried in order after the primary. @default [] */
  fallbackUrls?: readonly string[];
  /** Aborting it rejects this call with `signal.reason` (a shared call goes on for the other waiters). */
  signal?: AbortSignal;
  /** `no-cache`: skip the fresh tier (revalidate or refetch). `no-store`: no cache tiers, nothing stored. */
  cacheMode?: 'default' | 'no-cache' | 'no-store';
  /** Body download progress (only for the caller that started a shared call). */
  onProgress?: (receivedBytes: number, totalBytes: number | undefined) => void;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: ResponseHeaders;
  readonly body: Buffer;
  /** The URL that served the body (after redirects; the mirror's for a fallback; the stored one for the cache). */
  readonly url: string;
  readonly tier: HttpTier;
  /** The ladder tier's name: `fresh-cache`, `primary`, `fallback-1`, …, `stale-cache`. */
  readonly source: string;
  /** True when a 304 confirmed the cached body. */
  readonly revalidated: boolean;
  /** Age of the served copy when it came from the cache (fresh, stale or revalidated), in ms. */
  readonly cacheAgeMs: number | undefined;
  /** How far past its freshness the served copy was (stale tier, stale-while-revalidate), in ms. */
  readonly stalenessMs: number;
  /** HTTP requests made for this call (all tiers, retries and revalidations included; redirects not). */
  readonly attempts: number;
  readonly redirects: number;
  /** What happened at each tier tried, the serving tier last. */
  readonly tiers: readonly TierReport[];
  readonly elapsedMs: number;
  /** True when this call joined another caller's identical call in flight. */
  readonly shared: boolean;
}

/** One HTTP request of a network tier. */
export interface HttpAttemptEvent {
  readonly tier: string;
  readonly url: string;
  /** Attempt number within the tier (1, 2, …). */
  readonly attempt: number;
  readonly status: number | undefined;
  /**
   * Why the attempt failed: an `HttpError`, core's `TimeoutError` when the attempt or total timeout cut it
   * short, or the caller's abort reason. `undefined` for a response that was accepted.
   */
  readonly error: Error | undefined;
  readonly elapsedMs: number;
}

/** A cache store failed to read or write; the call went on (miss / not stored). */
export interface HttpCacheErrorEvent {
  readonly op: 'read' | 'write' | 'delete';
  readonly key: string;
  readonly error: unknown;
}

interface Served {
  readonly status: number;
  readonly headers: ResponseHeaders;
  readonly body: Buffer;
  readonly url: string;
  readonly revalidated: boolean;
  readonly redirects: number;
  readonly age: CacheAge | undefined;
}

/** Per-call state shared by the tiers of one ladder run. */
interface Flight {
  readonly key: string;
  readonly url: string;
  readonly fallbackUrls: readonly string[];
  readonly req: CachePolicy.HttpRequest;
  readonly deadlineAt: number;
  readonly mode: 'default' | 'no-cache' | 'no-store';
  readonly onProgress: HttpGetOptions['onProgress'];
  entry: CachedResponse | undefined;
  policy: CachePolicy | undefined;
  attempts: number;
}

export class HttpClient {
  readonly options: ResolvedOptions;
  readonly #base: Dispatcher;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #cache: CacheStore | undefined;
  readonly #Policy: PolicyClass;
  readonly #retry: Policy;
  readonly #attemptTimeout: Policy | undefined;
  readonly #breakers = new Map<string, Policy>();
  readonly #ladders = new Map<number, Degrader<Flight, Served>>();
  readonly #background = new Set<Promise<unknown>>();
  #closed = false;
  readonly #onTier = new EventEmitter<TierEvent>();
  readonly #onAttempt = new EventEmitter<HttpAttemptEvent>();
  readonly #onCacheError = new EventEmitter<HttpCacheErrorEvent>();
  /** Every tier starting and ending (how `http-get -v` shows the ladder). */
  readonly onTier: Subscribe<TierEvent> = this.#onTier.subscribe;
  /** Every HTTP request made by a network tier. */
  readonly onAttempt: Subscribe<HttpAttemptEvent> = this.#onAttempt.subscribe;
  /** Cache store read/write failures (served anyway). */
  readonly onCacheError: Subscribe<HttpCacheErrorEvent> = this.#onCacheError.subscribe;

  constructor(options?: HttpClientOptions) {
    const o = resolveOptions(options);
    this.options = o;
    this.#ownsDispatcher = o.dispatcher === undefined;
    this.#base = o.dispatcher ?? new EnvHttpProxyAgent({ connect: { timeout: o.connectTimeoutMs } });
    // a close-delimited body cut by a reset is an error, not a short body (see reset-guard.ts)
    this.#dispatcher = this.#base.compose(resetGuard);
    this.#cache = o.cache === false ? undefined : (o.cache ?? new MemoryCacheStore());
    this.#Policy = policyClass(o.now);
    this.#retry = retry({
      ...o.backoff,
      maxAttempts: o.maxAttempts,
      maxRetryAfterMs: o.maxRetryAfterMs,
      clock: o.clock,
      name: 'http-retry',
      // an open breaker means "not now": move on to the next tier instead of waiting for it
      shouldRetry: (outcome) =>
        !(!outcome.ok && outcome.error instanceof CircuitOpenError) && defaultShouldRetry(outcome),
    });
    this.#attemptTimeout = Number.isFinite(o.attemptTimeoutMs)
      ? timeout({ timeoutMs: o.attemptTimeoutMs, clock: o.clock, name: 'http-attempt-timeout' })
      : undefined;
  }

  /** GETs `url` through the tiers. Rejects with AllSourcesFailedError, a final HttpError, or the abort reason. */
  async get(url: string, options: HttpGetOptions = {}): Promise<HttpResponse> {
    const primary = parseUrl(url, 'url');
    const fallbackUrls = (options.fallbackUrls ?? []).map((u, i) => parseUrl(u, `fallbackUrls[${i}]`));
    const mode = options.cacheMode ?? 'default';
    const key = primary;
    const flight: Flight = {
      key,
      url: primary,
      fallbackUrls,
      req: cacheRequest(primary, this.options.headers),
      deadlineAt: this.options.clock.now() + this.options.totalTimeoutMs,
      mode,
      onProgress: options.onProgress,
      entry: undefined,
      policy: undefined,
      attempts: 0,
    };
    const ladder = this.#ladder(fallbackUrls.length);
    const result = await ladder.execute(flight, { signal: options.signal });
    const served = result.value;
    const tier: HttpTier = result.tier.startsWith('fallback') ? 'fallback' : (result.tier as HttpTier);
    return {
      status: served.status,
      headers: served.headers,
      body: served.body,
      url: served.url,
      tier,
      source: result.tier,
      revalidated: served.revalidated,
      cacheAgeMs: served.age?.ageMs,
      stalenessMs: served.age?.stalenessMs ?? 0,
      attempts: flight.attempts,
      redirects: served.redirects,
      tiers: result.tiers,
      elapsedMs: result.elapsedMs,
      shared: result.shared,
    };
  }

  /** Waits for background revalidations (stale-while-revalidate), then closes the default dispatcher. */
  async close(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
    if (this.#ownsDispatcher && !this.#closed) {
      this.#closed = true;
      await this.#base.close();
    }
  }

  #ladder(fallbacks: number): Degrader<Flight, Served> {
    let ladder = this.#ladders.get(fallbacks);
    if (ladder !== undefined) return ladder;
    ladder = degrade<Flight, Served>({
      name: 'http-get',
      clock: this.options.clock,
      singleFlight: true,
      key: (f) => `${f.mode} ${f.key} ${f.fallbackUrls.join(' ')}`,
      // a definitive answer from the primary (404, 403, body too large, bad redirect) is not an outage
      shouldDegrade: (error, tier) =>
        !(
          tier === 'primary' &&
          error instanceof HttpError &&
          !error.retryable &&
          !(error instanceof HttpNetworkError)
        ),
      tiers: [
        { name: 'fresh-cache', run: (ctx) => this.#freshTier(ctx) },
        { name: 'primary', run: (ctx) => this.#sourceTier(ctx, ctx.input.url) },
        ...Array.from({ length: fallbacks }, (_, i) => ({
          name: `fallback-${i + 1}`,
          run: (ctx: TierContext<Flight>) => this.#sourceTier(ctx, ctx.input.fallbackUrls[i]!),
        })),
        { name: 'stale-cache', run: (ctx) => this.#staleTier(ctx) },
      ],
    });
    ladder.onTier((e) => {
      if (this.#onTier.active) this.#onTier.emit(e);
    });
    this.#ladders.set(fallbacks, ladder);
    return ladder;
  }

  async #freshTier(ctx: TierContext<Flight>): Promise<Served | ReturnType<typeof ctx.skip>> {
    const f = ctx.input;
    if (this.#cache === undefined) return ctx.skip(NO_COPY_REASONS.cacheDisabled);
    if (f.mode === 'no-store') return ctx.skip(NO_COPY_REASONS.noStore);
    let entry: CachedResponse | undefined;
    try {
      entry = await this.#cache.get(f.key);
    } catch (error) {
      this.#cacheError('read', f.key, error);
      return ctx.skip(`cache read failed: ${messageOf(error)}`);
    }
    const policy = entry === undefined ? undefined : restore(this.#Policy, entry);
    if (entry === undefined || policy === undefined) return ctx.skip(NO_COPY_REASONS.notCached);
    f.entry = entry;
    f.policy = policy;
    if (f.mode === 'no-cache') return ctx.skip('revalidation requested (no-cache)');
    const decision = freshDecision(policy, f.req);
    if (decision.use === 'no') return ctx.skip(decision.reason);
    if (decision.use === 'stale-while-revalidate') this.#revalidateInBackground(f);
    return this.#fromCache(entry, policy, decision.age);
  }

  async #staleTier(ctx: TierContext<Flight>): Promise<Served | ReturnType<typeof ctx.skip>> {
    const f = ctx.input;
    if (this.#cache === undefined) return ctx.skip(NO_COPY_REASONS.cacheDisabled);
    if (f.mode === 'no-store') return ctx.skip(NO_COPY_REASONS.noStore);
    if (f.entry === undefined || f.policy === undefined) return ctx.skip(NO_COPY_REASONS.noCopy);
    const decision = staleDecision(f.policy, this.options.maxStaleMs, HTTP_CLIENT_DEFAULTS.defaultMaxStaleMs);
    if (!decision.use) return ctx.skip(decision.reason);
    return this.#fromCache(f.entry, f.policy, decision.age);
  }

  #fromCache(entry: CachedResponse, policy: CachePolicy, age: CacheAge): Served {
    const headers = policy.responseHeaders() as ResponseHeaders;
    return {
      status: entry.policy.st,
      headers,
      body: entry.body,
      url: entry.url,
      revalidated: false,
      redirects: 0,
      age,
    };
  }

  async #sourceTier(ctx: TierContext<Flight>, url: string): Promise<Served | ReturnType<typeof ctx.skip>> {
    const f = ctx.input;
    const remaining = f.deadlineAt - this.options.clock.now();
    if (!(remaining > 0)) return ctx.skip(`total timeout of ${this.options.totalTimeoutMs} ms already spent`);
    // the budget left is shared fairly: this source may use at most remaining / (sources still to try),
    // so a black-holed primary cannot starve the mirrors (the last source gets all that is left)
    const index = ctx.tier === 'primary' ? 0 : Number(ctx.tier.slice('fallback-'.length));
    const budget = Math.max(1, Math.round(remaining / (f.fallbackUrls.length - index + 1)));
    const conditional =
      f.entry !== undefined &&
      f.policy !== undefined &&
      f.mode !== 'no-store' &&
      hasValidator(f.policy) &&
      new URL(f.entry.url).origin === new URL(url).origin;
    const guard = pipeline(
      ...(Number.isFinite(budget)
        ? [timeout({ timeoutMs: budget, clock: this.options.clock, name: 'http-total-timeout' })]
        : []),
      this.#retry,
      ...this.#breakerFor(url),
      ...(this.#attemptTimeout ? [this.#attemptTimeout] : []),
    );
    const headers = conditional
      ? { ...this.options.headers, ...revalidationHeaders(f.policy!, f.req) }
      : this.options.headers;
    const raw = await guard.run(
      (actx) => this.#send(url, headers, conditional, ctx.tier, actx.attempt, actx.signal, f),
      ctx,
    );
    if (raw.status === 304 && f.entry !== undefined && f.policy !== undefined) {
      const { policy, modified } = f.policy.revalidatedPolicy(f.req, { status: 304, headers: raw.headers });
      if (!modified) {
        const entry: CachedResponse = { ...f.entry, policy: policy.toObject() };
        await this.#store(entry);
        return {
          ...this.#fromCache(entry, policy, ageOf(policy)),
          revalidated: true,
          redirects: raw.redirects,
        };
      }
      // the 304 does not match what we hold: fetch the full response
      const full = await guard.run(
        (actx) => this.#send(url, this.options.headers, false, ctx.tier, actx.attempt, actx.signal, f),
        ctx,
      );
      return this.#fresh(f, full);
    }
    return this.#fresh(f, raw);
  }

  async #fresh(f: Flight, raw: RawResponse): Promise<Served> {
    if (this.#cache !== undefined && f.mode !== 'no-store') {
      const policy = newPolicy(this.#Policy, f.req, raw.status, raw.headers);
      if (policy.storable())
        await this.#store({ key: f.key, url: raw.url, policy: policy.toObject(), body: raw.body });
      else if (f.entry !== undefined)
        await this.#cache.delete(f.key).catch((e: unknown) => this.#cacheError('delete', f.key, e));
    }
    return {
      status: raw.status,
      headers: raw.headers,
      body: raw.body,
      url: raw.url,
      revalidated: false,
      redirects: raw.redirects,
      age: undefined,
    };
  }

  async #store(entry: CachedResponse): Promise<void> {
    try {
      await this.#cache?.set(entry);
    } catch (error) {
      this.#cacheError('write', entry.key, error);
    }
  }

  /** One HTTP request; statuses other than 2xx (and an expected 304) become HttpStatusError. */
  async #send(
    url: string,
    headers: Readonly<Record<string, string>>,
    conditional: boolean,
    tier: string,
    attemptNo: number,
    signal: AbortSignal,
    f: Flight,
  ): Promise<RawResponse> {
    f.attempts++;
    const started = this.options.clock.now();
    const o = this.options;
    // Every attempt is reported once, also one a timeout or an abort ended. Those abort `signal` before the
    // policies reject, so the event is emitted then: before the call settles, not when the transfer has
    // finished unwinding (an aggressive timeout does not wait for it).
    let reported = !this.#onAttempt.active;
    const report = (status: number | undefined, error: unknown): void => {
      if (reported) return;
      reported = true;
      const e = error === undefined || error instanceof Error ? error : new Error(String(error));
      this.#attemptEvent(tier, url, attemptNo, status, e, started);
    };
    const unlisten = reported ? undefined : onAbort(signal, () => report(undefined, signal.reason));
    try {
      const raw = await sendOnce(url, {
        dispatcher: this.#dispatcher,
        headers,
        signal,
        headersTimeoutMs: o.headersTimeoutMs,
        bodyTimeoutMs: o.bodyTimeoutMs,
        maxBodyBytes: o.maxBodyBytes,
        maxRedirects: o.maxRedirects,
        onProgress: f.onProgress,
      });
      const ok = (raw.status >= 200 && raw.status < 300) || (raw.status === 304 && conditional);
      if (!ok) {
        throw new HttpStatusError(
          raw.status,
          raw.url,
          parseRetryAfter(headerValue(raw.headers, 'retry-after'), o.now()),
        );
      }
      report(raw.status, undefined);
      return raw;
    } catch (error) {
      report(error instanceof HttpStatusError ? error.status : undefined, error);
      throw error;
    } finally {
      unlisten?.();
    }
  }

  #attemptEvent(
    tier: string,
    url: string,
    attempt: number,
    status: number | undefined,
    error: Error | undefined,
    started: number,
  ): void {
    if (this.#onAttempt.active)
      this.#onAttempt.emit({
        tier,
        url,
        attempt,
        status,
        error,
        elapsedMs: this.options.clock.now() - started,
      });
  }

  #breakerFor(url: string): Policy[] {
    const config = this.options.circuitBreaker;
    if (config === false) return [];
    const origin = new URL(url).origin;
    let breaker = this.#breakers.get(origin);
    if (breaker === undefined) {
      breaker = circuitBreaker({
        name: origin,
        strategy: { type: 'consecutive', threshold: config.consecutiveFailures },
        openDurationMs: config.openDurationMs,
        clock: this.options.clock,
        // what is retryable counts (statuses, timeouts, network errors); an answer (404, 501) is the server working
        isFailure: (outcome) =>
          outcome.ok
            ? false
            : outcome.error instanceof CircuitOpenError
              ? 'ignore'
              : !(outcome.error instanceof HttpError) || outcome.error.retryable,
      });
      this.#breakers.set(origin, breaker);
    }
    return [breaker];
  }

  /** stale-while-revalidate: refresh the entry after serving it, once per key at a time. */
  #revalidateInBackground(f: Flight): void {
    const key = `revalidate ${f.key}`;
    if ([...this.#background].some((p) => (p as { key?: string }).key === key)) return;
    const flight: Flight = {
      ...f,
      deadlineAt: this.options.clock.now() + this.options.totalTimeoutMs,
      onProgress: undefined,
      attempts: 0,
    };
    const ladder = degrade<Flight, Served>({
      name: 'http-revalidate',
      clock: this.options.clock,
      tiers: [{ name: 'primary', run: (ctx) => this.#sourceTier(ctx, ctx.input.url) }],
    });
    ladder.onTier((e) => {
      if (this.#onTier.active) this.#onTier.emit(e);
    });
    // a failed refresh changes nothing: the stored copy stays, and the next call tries again
    const p = ladder.execute(flight).then(
      () => undefined,
      () => undefined,
    );
    const tracked = Object.assign(
      p.finally(() => this.#background.delete(tracked)),
      { key },
    );
    this.#background.add(tracked);
  }

  #cacheError(op: HttpCacheErrorEvent['op'], key: string, error: unknown): void {
    if (this.#onCacheError.active) this.#onCacheError.emit({ op, key, error });
  }
}

function parseUrl(value: string, what: string): string {
  const url = parseHttpUrl(value);
  if (url instanceof URL) return url.href;
  throw new TypeError(`${what}: ${url.problem}: ${JSON.stringify(value)}`);
}

/** Creates an {@link HttpClient}. */
export function createHttpClient(options?: HttpClientOptions): HttpClient {
  return new HttpClient(options);
}
