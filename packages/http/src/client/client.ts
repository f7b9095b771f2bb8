/**
 * The resilient HTTP client: GET through five degradation tiers.
 *
 *   fresh cache → primary → fallback mirror(s) → stale cache (within max-stale) → AllSourcesFailedError
 *
 * Each network tier runs `share of the total deadline → retry (honours Retry-After) → circuit breaker (per
 * origin) → one attempt (a deadline until its response headers; then the body, streamed)`. A body goes to
 * sinks as it arrives — the caller's and the cache's — and counts only once it is complete: a cut, stalled
 * or undecodable body fails the attempt (retried, counted against the origin, the next tier tried), its
 * sinks are aborted, and nothing of it is stored. Concurrent `get`s of the same URL share one run
 * (single-flight).
 *
 * This file holds the ladder; the tiers are cache-tiers.ts and network-tier.ts, the per-origin policies
 * origin.ts, a call's state flight.ts, the public types types.ts.
 */
import {
  DeadlineExceededError,
  degrade,
  type Degrader,
  type Subscribe,
  type TierContext,
  type TierEvent,
  type TierReport,
} from '@bulwark/core';
import { EventEmitter, onAbort } from '@bulwark/core/internal';
import { EnvHttpProxyAgent, type Dispatcher } from 'undici';
import { cacheRequest, policyClass } from '../cache/semantics.js';
import { MemoryCacheStore } from '../cache/memory-store.js';
import { streamingView } from '../cache/store.js';
import { withoutUserInfo } from '../credentials.js';
import { HttpError, HttpNetworkError } from '../errors.js';
import { resetGuard } from '../reset-guard.js';
import { parseHttpUrl } from '../url.js';
import { CacheTiers } from './cache-tiers.js';
import {
  MemorySink,
  discardSink,
  memorySinks,
  quietly,
  type ClientCore,
  type Flight,
  type Served,
} from './flight.js';
import { NetworkTier, requestHeaders } from './network-tier.js';
import { resolveOptions, type HttpClientOptions, type ResolvedOptions } from './options.js';
import { OriginPolicies } from './origin.js';
import { tierOf } from './tiers.js';
import { SinkFailure, type BodySink } from './transport.js';
import type {
  HttpAttemptEvent,
  HttpCacheErrorEvent,
  HttpCloseOptions,
  HttpDownload,
  HttpDownloadOptions,
  HttpGetOptions,
  HttpResponse,
  HttpResult,
  SinkFactory,
} from './types.js';

const only2xx = (): boolean => false;
let uniqueCalls = 0;

export class HttpClient {
  readonly options: ResolvedOptions;
  readonly #base: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #core: ClientCore;
  readonly #cacheTiers: CacheTiers;
  readonly #network: NetworkTier;
  readonly #ladders = new Map<number, Degrader<Flight, Served>>();
  readonly #background = new Map<string, Promise<unknown>>();
  /** Aborts the background refreshes (`close({ signal })`). */
  readonly #backgroundAbort = new AbortController();
  #closed = false;
  readonly #onTier = new EventEmitter<TierEvent>();
  readonly #onAttempt = new EventEmitter<HttpAttemptEvent>();
  readonly #onCacheError = new EventEmitter<HttpCacheErrorEvent>();
  /** Every tier starting and ending (events named `http-client`; how a CLI can show the ladder as it happens). */
  readonly onTier: Subscribe<TierEvent> = this.#onTier.subscribe;
  /** Every HTTP request made by a network tier. */
  readonly onAttempt: Subscribe<HttpAttemptEvent> = this.#onAttempt.subscribe;
  /** Cache store read/write failures (served anyway). */
  readonly onCacheError: Subscribe<HttpCacheErrorEvent> = this.#onCacheError.subscribe;

  constructor(options?: HttpClientOptions) {
    const o = resolveOptions(options);
    this.options = o;
    this.#ownsDispatcher = o.dispatcher === undefined;
    this.#base =
      o.dispatcher ?? new EnvHttpProxyAgent({ connect: { timeout: o.connectTimeoutMs, ...o.tls } });
    const store = o.cache === false ? undefined : (o.cache ?? new MemoryCacheStore());
    this.#core = {
      options: o,
      // a close-delimited body cut by a reset is an error, not a short body (see reset-guard.ts)
      dispatcher: this.#base.compose(resetGuard),
      cache: store === undefined ? undefined : streamingView(store),
      Policy: policyClass(o.now),
      cacheError: (op, key, error) => {
        if (this.#onCacheError.active) this.#onCacheError.emit({ op, key, error });
      },
    };
    this.#cacheTiers = new CacheTiers(this.#core, (f) => this.#revalidateInBackground(f));
    this.#network = new NetworkTier(this.#core, this.#cacheTiers, new OriginPolicies(o), this.#onAttempt);
  }

  /** GETs `url` through the tiers into memory. Rejects with AllSourcesFailedError, a final HttpError, or the abort reason. */
  async get(url: string, options: HttpGetOptions = {}): Promise<HttpResponse> {
    const { served, result, flight } = await this.#run(url, options, undefined);
    const { sink, ...rest } = this.#result(served, result, flight);
    const body = sink instanceof MemorySink ? sink.body : Buffer.alloc(0);
    return { ...rest, body };
  }

  /**
   * GETs `url` through the tiers, writing the body into sinks from `options.sink` as it arrives: memory
   * stays bounded whatever the body's size. The served body's sink is closed and returned; every other
   * sink opened on the way (cut bodies, other tiers) is aborted.
   */
  async download(url: string, options: HttpDownloadOptions): Promise<HttpDownload> {
    if (typeof options?.sink !== 'function') throw new TypeError('download: options.sink must be a function');
    const { served, result, flight } = await this.#run(url, options, options.sink);
    const { sink, ...rest } = this.#result(served, result, flight);
    return { ...rest, sink: sink ?? emptySink() };
  }

  async #run(
    url: string,
    options: HttpGetOptions,
    sinkFactory: SinkFactory | undefined,
  ): Promise<{
    served: Served;
    result: { tier: string; tiers: readonly TierReport[]; elapsedMs: number; shared: boolean };
    flight: Flight;
  }> {
    const primary = parseUrl(url, 'url');
    const fallbackUrls = (options.fallbackUrls ?? []).map((u, i) => parseUrl(u, `fallbackUrls[${i}]`));
    const mode = options.cacheMode ?? 'default';
    const method = options.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD')
      throw new TypeError(`method: GET or HEAD, not ${String(method)}`);
    const headers = requestHeaders(this.options);
    const flight: Flight = {
      key: withoutUserInfo(primary),
      url: primary,
      fallbackUrls,
      req: cacheRequest(primary, headers),
      deadlineAt: this.options.clock.now() + this.options.totalTimeoutMs,
      mode,
      method,
      accept: options.acceptStatus ?? only2xx,
      sinkFactory: sinkFactory ?? memorySinks,
      discardBody: false,
      onProgress: options.onProgress,
      sinks: [],
      writers: [],
      entry: undefined,
      policy: undefined,
      attempts: 0,
      sentPerAttempt: new Map(),
      closing: false,
    };
    // calls that write into the caller's own sinks, or that change what is served, are not shared
    const shareable = sinkFactory === undefined && method === 'GET' && options.acceptStatus === undefined;
    const key = `${mode} ${primary} ${fallbackUrls.join(' ')}${shareable ? '' : ` #${++uniqueCalls}`}`;
    const ladder = this.#ladder(fallbackUrls.length);
    let served: Served | undefined;
    try {
      const result = await ladder.execute(flight, { signal: options.signal, key });
      served = result.value;
      return { served, result, flight };
    } catch (error) {
      if (error instanceof SinkFailure) throw error.error;
      throw error;
    } finally {
      // what was opened and not served: temp files, partial bodies (a shared flight's are its own)
      for (const s of flight.sinks) if (s !== served?.sink) await quietly(s.abort(new Error('not served')));
      for (const w of flight.writers) await quietly(w.abort());
    }
  }

  #result(
    served: Served,
    result: { tier: string; tiers: readonly TierReport[]; elapsedMs: number; shared: boolean },
    flight: Flight,
  ): HttpResult & { sink: BodySink | undefined } {
    const tier = tierOf(result.tier);
    return {
      status: served.status,
      headers: served.headers,
      url: served.url,
      tier,
      source: result.tier,
      revalidated: served.revalidated,
      cacheAgeMs: served.age?.ageMs,
      stalenessMs: served.age?.stalenessMs ?? 0,
      attempts: flight.attempts,
      redirects: served.redirects,
      bytes: served.bytes,
      tiers: result.tiers,
      elapsedMs: result.elapsedMs,
      shared: result.shared,
      sink: served.sink,
    };
  }

  /**
   * Waits for background revalidations (stale-while-revalidate), then closes the default dispatcher.
   * `options.signal` bounds the wait: when it aborts, the refreshes are aborted.
   */
  async close(options: HttpCloseOptions = {}): Promise<void> {
    const { signal } = options;
    if (signal?.aborted) this.#backgroundAbort.abort(signal.reason);
    const unlisten =
      signal === undefined ? undefined : onAbort(signal, () => this.#backgroundAbort.abort(signal.reason));
    try {
      while (this.#background.size > 0) await Promise.allSettled([...this.#background.values()]);
    } finally {
      unlisten?.();
    }
    if (this.#ownsDispatcher && !this.#closed) {
      this.#closed = true;
      await this.#base.close();
    }
  }

  #ladder(fallbacks: number): Degrader<Flight, Served> {
    let ladder = this.#ladders.get(fallbacks);
    if (ladder !== undefined) return ladder;
    ladder = degrade<Flight, Served>({
      name: 'http-client',
      clock: this.options.clock,
      singleFlight: true,
      // a definitive answer from the primary (404, 403, body too large, bad redirect) is not an outage;
      // a local failure (the caller's sink could not write) and the caller's deadline (no budget left for
      // an attempt) end the call wherever they happen: no later tier answers a caller who stopped waiting
      shouldDegrade: (error, tier) =>
        !(error instanceof SinkFailure) &&
        !DeadlineExceededError.is(error) &&
        !(
          tier === 'primary' &&
          error instanceof HttpError &&
          !error.retryable &&
          !(error instanceof HttpNetworkError)
        ),
      tiers: [
        { name: 'fresh-cache', run: (ctx) => this.#cacheTiers.fresh(ctx) },
        { name: 'primary', run: (ctx) => this.#network.run(ctx, ctx.input.url, 0) },
        ...Array.from({ length: fallbacks }, (_, i) => ({
          name: `fallback-${i + 1}`,
          run: (ctx: TierContext<Flight>) => this.#network.run(ctx, ctx.input.fallbackUrls[i]!, i + 1),
        })),
        { name: 'stale-cache', run: (ctx) => this.#cacheTiers.stale(ctx) },
      ],
    });
    ladder.onTier((e) => {
      if (this.#onTier.active) this.#onTier.emit(e);
    });
    this.#ladders.set(fallbacks, ladder);
    return ladder;
  }

  /** stale-while-revalidate: refresh the entry after serving it, once per key at a time. */
  #revalidateInBackground(f: Flight): void {
    const key = f.key;
    if (this.#background.has(key) || this.#backgroundAbort.signal.aborted) return;
    const flight: Flight = {
      ...f,
      deadlineAt: this.options.clock.now() + this.options.totalTimeoutMs,
      fallbackUrls: [],
      sinkFactory: () => discardSink,
      discardBody: true,
      onProgress: undefined,
      sinks: [],
      writers: [],
      attempts: 0,
      sentPerAttempt: new Map(),
      closing: false,
    };
    const ladder = degrade<Flight, Served>({
      name: 'http-revalidate',
      clock: this.options.clock,
      tiers: [{ name: 'primary', run: (ctx) => this.#network.run(ctx, ctx.input.url, 0) }],
    });
    ladder.onTier((e) => {
      if (this.#onTier.active) this.#onTier.emit(e);
    });
    // a failed refresh changes nothing: the stored copy stays, and the next call tries again
    const p = ladder
      .execute(flight, { signal: this.#backgroundAbort.signal })
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(async () => {
        for (const w of flight.writers) await quietly(w.abort());
        this.#background.delete(key);
      });
    this.#background.set(key, p);
  }
}

function emptySink(): BodySink {
  return discardSink;
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
