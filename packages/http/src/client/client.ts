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
 */
import {
  DEADLINE_HEADER,
  DeadlineExceededError,
  HedgeCancelledError,
  ThrottledError,
  TimeoutError,
  adaptiveThrottle,
  classify,
  hedge,
  degrade,
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
import { EventEmitter, onAbort } from '@bulwark/core/internal';
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
} from '../cache/semantics.js';
import { MemoryCacheStore } from '../cache/memory-store.js';
import {
  streamingView,
  type CacheEntryHandle,
  type CacheEntryWriter,
  type StreamingStore,
} from '../cache/store.js';
import { attemptDeadlineHeader } from '../deadline-header.js';
import { hedgeOptions, throttleOptions } from '../policy-options.js';
import { HOST_FAILURE_CLASSIFY, parseRetryAfter } from '../classify.js';
import { HttpError, HttpNetworkError, HttpStatusError, messageOf } from '../errors.js';
import {
  resolveOptions,
  HTTP_CLIENT_DEFAULTS,
  type HttpClientOptions,
  type ResolvedOptions,
} from './options.js';
import { resetGuard } from '../reset-guard.js';
import { TIER_SKIP_CODES as SKIP, tierOf, type HttpTier } from './tiers.js';
import { withoutCredentials } from '../credentials.js';
import { parseHttpUrl } from '../url.js';
import {
  ACCEPT_ENCODING,
  SinkFailure,
  decodedHeaders,
  discard,
  drain,
  headerValue,
  openResponse,
  pumpBody,
  willDecode,
  type BodySink,
  type OpenResponse,
  type ResponseHeaders,
} from './transport.js';

export interface HttpGetOptions {
  /** Mirror URLs of the same resource, tried in order after the primary. @default [] */
  fallbackUrls?: readonly string[];
  /** Aborting it rejects this call with `signal.reason` (a shared call goes on for the other waiters). */
  signal?: AbortSignal;
  /** `no-cache`: skip the fresh tier (revalidate or refetch). `no-store`: no cache tiers, nothing stored. */
  cacheMode?: 'default' | 'no-cache' | 'no-store';
  /** Body download progress (only for the caller that started a shared call). */
  onProgress?: (receivedBytes: number, totalBytes: number | undefined) => void;
  /** `HEAD`: the headers only (a stored response answers it too; nothing is stored). @default 'GET' */
  method?: 'GET' | 'HEAD';
  /**
   * Statuses served as the answer besides 2xx (e.g. to see a 404's body). A status it accepts is served
   * like a 2xx: not retried, not failed over. @default none
   */
  acceptStatus?: (status: number) => boolean;
}

/** Where a body is written: called once per response whose body is about to be read (every attempt, every tier). */
export type SinkFactory = (info: BodyInfo) => BodySink;

/** The response a sink is opened for. */
export interface BodyInfo {
  readonly status: number;
  readonly headers: ResponseHeaders;
  readonly url: string;
  /** The ladder tier the body comes from: `fresh-cache`, `primary`, `fallback-1`, …, `stale-cache`. */
  readonly source: string;
}

export interface HttpDownloadOptions extends HttpGetOptions {
  /**
   * Opens a sink for each body about to be read. The body is written as it arrives; `close()` is called
   * once it is complete and accepted, `abort()` when it is cut or not served. The sink of the body that
   * was served is `download()`'s `sink`; every other one is aborted before `download()` settles.
   */
  sink: SinkFactory;
}

/** What every call reports about the response that served. */
export interface HttpResult {
  readonly status: number;
  readonly headers: ResponseHeaders;
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
  /** Body bytes served (decoded). */
  readonly bytes: number;
  /** What happened at each tier tried, the serving tier last. */
  readonly tiers: readonly TierReport[];
  readonly elapsedMs: number;
  /** True when this call joined another caller's identical call in flight. */
  readonly shared: boolean;
}

export interface HttpResponse extends HttpResult {
  readonly body: Buffer;
}

export interface HttpDownload extends HttpResult {
  /** The sink that holds the served body (closed). */
  readonly sink: BodySink;
}

/** One HTTP request of a network tier. */
export interface HttpAttemptEvent {
  readonly tier: string;
  readonly url: string;
  /** Attempt number within the tier (1, 2, …). */
  readonly attempt: number;
  /** 0 for an attempt's first request; 1, 2, … for its hedged requests (the `hedge` option). */
  readonly hedge: number;
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

export interface HttpCloseOptions {
  /**
   * Aborting it ends the wait for background refreshes (stale-while-revalidate) at once: they are aborted
   * and the entries stay as they were.
   */
  signal?: AbortSignal;
}

interface Served {
  readonly status: number;
  readonly headers: ResponseHeaders;
  readonly url: string;
  readonly revalidated: boolean;
  readonly redirects: number;
  readonly age: CacheAge | undefined;
  readonly bytes: number;
  readonly sink: BodySink | undefined;
}

/** Per-call state shared by the tiers of one ladder run. */
interface Flight {
  readonly key: string;
  readonly url: string;
  readonly fallbackUrls: readonly string[];
  readonly req: CachePolicy.HttpRequest;
  readonly deadlineAt: number;
  readonly mode: 'default' | 'no-cache' | 'no-store';
  readonly method: 'GET' | 'HEAD';
  readonly accept: (status: number) => boolean;
  readonly sinkFactory: SinkFactory;
  /** A background refresh: nobody reads the body (a 304 does not read the stored one back). */
  readonly discardBody: boolean;
  readonly onProgress: HttpGetOptions['onProgress'];
  /** Every caller sink and cache writer opened for this flight (the unserved ones are aborted at the end). */
  readonly sinks: BodySink[];
  readonly writers: CacheEntryWriter[];
  entry: CacheEntryHandle | undefined;
  policy: CachePolicy | undefined;
  attempts: number;
  /** Requests sent per `tier#attempt`, so a hedged request is told from its attempt's first. */
  readonly sentPerAttempt: Map<string, number>;
  /** An attempt is closing its sink: it serves the flight (a hedged attempt that gets there later lost). */
  closing: boolean;
}

/** What one attempt got. */
type Fetched =
  | {
      readonly kind: 'body';
      readonly head: OpenResponse;
      readonly headers: ResponseHeaders;
      readonly bytes: number;
      readonly sink: BodySink | undefined;
      readonly writer: CacheEntryWriter | undefined;
      readonly policy: CachePolicy | undefined;
    }
  | { readonly kind: 'not-modified'; readonly head: OpenResponse };

/** Bodies of `get()`, gathered in memory (bounded by `maxBodyBytes` upstream). */
class MemorySink implements BodySink {
  readonly #chunks: Buffer[] = [];
  #body: Buffer | undefined;

  write(chunk: Buffer): void {
    this.#chunks.push(chunk);
  }

  async close(): Promise<void> {}

  abort(): void {
    this.#chunks.length = 0;
  }

  get body(): Buffer {
    this.#body ??= this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    return this.#body;
  }
}

const memorySinks: SinkFactory = () => new MemorySink();
const only2xx = (): boolean => false;
let uniqueCalls = 0;

export class HttpClient {
  readonly options: ResolvedOptions;
  readonly #base: Dispatcher;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #cache: StreamingStore | undefined;
  readonly #Policy: PolicyClass;
  /** Per origin: [hedge], [adaptive throttle], [breaker] (see #perOrigin). */
  readonly #perOriginPolicies = new Map<string, Policy[]>();
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
    // a close-delimited body cut by a reset is an error, not a short body (see reset-guard.ts)
    this.#dispatcher = this.#base.compose(resetGuard);
    const store = o.cache === false ? undefined : (o.cache ?? new MemoryCacheStore());
    this.#cache = store === undefined ? undefined : streamingView(store);
    this.#Policy = policyClass(o.now);
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
    const headers = this.#requestHeaders();
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

  #requestHeaders(): Readonly<Record<string, string>> {
    const h = this.options.headers;
    if (!this.options.decompress || h['accept-encoding'] !== undefined) return h;
    return { ...h, 'accept-encoding': ACCEPT_ENCODING };
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
        { name: 'fresh-cache', run: (ctx) => this.#freshTier(ctx) },
        { name: 'primary', run: (ctx) => this.#sourceTier(ctx, ctx.input.url, 0) },
        ...Array.from({ length: fallbacks }, (_, i) => ({
          name: `fallback-${i + 1}`,
          run: (ctx: TierContext<Flight>) => this.#sourceTier(ctx, ctx.input.fallbackUrls[i]!, i + 1),
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
    if (this.#cache === undefined) return ctx.skip(SKIP.CACHE_DISABLED, 'cache disabled');
    if (f.mode === 'no-store') return ctx.skip(SKIP.NO_STORE, 'cache not used for this call (no-store)');
    let entry: CacheEntryHandle | undefined;
    try {
      entry = await this.#cache.open(f.key);
    } catch (error) {
      this.#cacheError('read', f.key, error);
      return ctx.skip(SKIP.CACHE_READ_FAILED, `cache read failed: ${messageOf(error)}`);
    }
    const policy = entry === undefined ? undefined : restore(this.#Policy, entry);
    if (entry === undefined || policy === undefined) return ctx.skip(SKIP.NOT_CACHED, 'not cached');
    f.entry = entry;
    f.policy = policy;
    if (f.mode === 'no-cache')
      return ctx.skip(SKIP.REVALIDATION_REQUESTED, 'revalidation requested (no-cache)');
    const decision = freshDecision(policy, f.req);
    if (decision.use === 'no') return ctx.skip(decision.code, decision.reason);
    const served = await this.#serveStored(ctx, f, entry, policy, decision.age, false, 0);
    if (served === undefined) {
      f.entry = undefined;
      f.policy = undefined;
      return ctx.skip(SKIP.CACHE_DAMAGED, 'cached copy is damaged');
    }
    if (decision.use === 'stale-while-revalidate') this.#revalidateInBackground(f);
    return served;
  }

  async #staleTier(ctx: TierContext<Flight>): Promise<Served | ReturnType<typeof ctx.skip>> {
    const f = ctx.input;
    if (this.#cache === undefined) return ctx.skip(SKIP.CACHE_DISABLED, 'cache disabled');
    if (f.mode === 'no-store') return ctx.skip(SKIP.NO_STORE, 'cache not used for this call (no-store)');
    if (f.entry === undefined || f.policy === undefined) return ctx.skip(SKIP.NOT_CACHED, 'no cached copy');
    const decision = staleDecision(f.policy, this.options.maxStaleMs, HTTP_CLIENT_DEFAULTS.defaultMaxStaleMs);
    if (!decision.use) return ctx.skip(decision.code, decision.reason);
    const served = await this.#serveStored(ctx, f, f.entry, f.policy, decision.age, false, 0);
    if (served === undefined) return ctx.skip(SKIP.CACHE_DAMAGED, 'cached copy is damaged');
    return served;
  }

  /**
   * Writes a stored body into a new caller sink (checked as it is read). Undefined when the stored body
   * turned out damaged (the sink is aborted, the store reported it).
   */
  async #serveStored(
    ctx: TierContext<Flight>,
    f: Flight,
    entry: CacheEntryHandle,
    policy: CachePolicy,
    age: CacheAge,
    revalidated: boolean,
    redirects: number,
  ): Promise<Served | undefined> {
    const headers = policy.responseHeaders() as ResponseHeaders;
    const status = entry.policy.st;
    const base = { status, headers, url: entry.url, revalidated, redirects, age };
    if (f.method === 'HEAD') return { ...base, bytes: 0, sink: undefined };
    if (f.discardBody) return { ...base, bytes: entry.size, sink: undefined };
    const sink = this.#openSink(f, { status, headers, url: entry.url, source: ctx.tier });
    let bytes = 0;
    try {
      for await (const chunk of entry.read()) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        bytes += chunk.length;
        try {
          const r = sink.write(chunk);
          if (r !== undefined) await r;
        } catch (error) {
          throw new SinkFailure(error);
        }
        f.onProgress?.(bytes, entry.size);
      }
      try {
        await sink.close();
      } catch (error) {
        throw new SinkFailure(error);
      }
    } catch (error) {
      await quietly(sink.abort(error));
      if (error instanceof SinkFailure || ctx.signal.aborted) throw error;
      this.#cacheError('read', f.key, error);
      return undefined;
    }
    return { ...base, bytes, sink };
  }

  #openSink(f: Flight, info: BodyInfo): BodySink {
    let sink: BodySink;
    try {
      sink = f.sinkFactory(info);
    } catch (error) {
      throw new SinkFailure(error);
    }
    f.sinks.push(sink);
    return sink;
  }

  async #sourceTier(
    ctx: TierContext<Flight>,
    url: string,
    index: number,
  ): Promise<Served | ReturnType<typeof ctx.skip>> {
    const f = ctx.input;
    const o = this.options;
    const remaining = f.deadlineAt - o.clock.now();
    if (!(remaining > 0)) {
      return ctx.skip(SKIP.DEADLINE_SPENT, `total timeout of ${o.totalTimeoutMs} ms already spent`);
    }
    // the budget left is shared fairly: this source may use at most remaining / (sources still to try),
    // so a black-holed primary cannot starve the mirrors (the last source gets all that is left)
    const sourcesLeft = f.fallbackUrls.length - index + 1;
    const lastSource = sourcesLeft === 1;
    const budget = Math.max(1, Math.round(remaining / sourcesLeft));
    const conditional =
      f.entry !== undefined &&
      f.policy !== undefined &&
      f.mode !== 'no-store' &&
      f.method === 'GET' &&
      hasValidator(f.policy) &&
      new URL(f.entry.url).origin === new URL(url).origin;
    const guard = pipeline(
      ...(Number.isFinite(budget)
        ? [timeout({ timeoutMs: budget, clock: o.clock, name: 'http-total-timeout' })]
        : []),
      this.#retryFor(lastSource),
      ...this.#perOrigin(url),
    );
    // credentials given for the call (Authorization, Cookie, Proxy-Authorization) go only to the primary's
    // origin, as on a redirect: a mirror on another origin (scheme, host or port) gets none of them
    const own = this.#requestHeaders();
    const given = new URL(url).origin === new URL(f.url).origin ? own : withoutCredentials(own);
    const headers = conditional ? { ...given, ...revalidationHeaders(f.policy!, f.req) } : given;
    const fetched = await guard.run(
      (actx) =>
        this.#send(
          url,
          headers,
          conditional,
          ctx.tier,
          actx.attempt,
          lastSource,
          actx.signal,
          f,
          actx.remainingMs(),
        ),
      ctx,
    );
    if (fetched.kind === 'not-modified' && f.entry !== undefined && f.policy !== undefined) {
      const { policy, modified } = f.policy.revalidatedPolicy(f.req, {
        status: 304,
        headers: fetched.head.headers,
      });
      if (!modified) {
        const entry = f.entry;
        const served = await this.#serveStored(
          ctx,
          f,
          entry,
          policy,
          ageOf(policy),
          true,
          fetched.head.redirects,
        );
        if (served !== undefined) {
          await this.#cache!.refresh(entry, policy.toObject()).catch((e: unknown) =>
            this.#cacheError('write', f.key, e),
          );
          return served;
        }
      }
      // the 304 does not match what we hold (or that is damaged): fetch the full response
      const full = await guard.run(
        (actx) =>
          this.#send(
            url,
            this.#requestHeaders(),
            false,
            ctx.tier,
            actx.attempt,
            lastSource,
            actx.signal,
            f,
            actx.remainingMs(),
          ),
        ctx,
      );
      return this.#fresh(f, full);
    }
    return this.#fresh(f, fetched);
  }

  /** A fetched body becomes the served one: its cache entry is published (or the old one dropped). */
  async #fresh(f: Flight, fetched: Fetched): Promise<Served> {
    if (fetched.kind !== 'body') throw new Error('unreachable: a 304 without a cached copy');
    if (fetched.writer !== undefined && fetched.policy !== undefined) {
      await fetched.writer
        .commit(fetched.policy.toObject())
        .catch((e: unknown) => this.#cacheError('write', f.key, e));
    } else if (
      this.#cache !== undefined &&
      f.mode !== 'no-store' &&
      f.method === 'GET' &&
      f.entry !== undefined &&
      fetched.policy !== undefined &&
      !fetched.policy.storable()
    ) {
      await this.#cache.delete(f.key).catch((e: unknown) => this.#cacheError('delete', f.key, e));
    }
    return {
      status: fetched.head.status,
      headers: fetched.headers,
      url: fetched.head.url,
      revalidated: false,
      redirects: fetched.head.redirects,
      age: undefined,
      bytes: fetched.bytes,
      sink: fetched.sink,
    };
  }

  /**
   * Retries for one source. A failure that may pass on another attempt is retried — except a timeout when
   * another source remains: a source that did not answer in time is left for the next one (a black-holed
   * primary costs one attempt deadline, not all its retries). An open breaker moves on at once.
   */
  #retryFor(lastSource: boolean): Policy {
    const o = this.options;
    return retry({
      ...o.retry,
      clock: o.clock,
      name: 'http-retry',
      classify: lastSource ? RETRY_CLASSIFY : NOT_LAST_SOURCE_CLASSIFY,
    });
  }

  /**
   * How long attempt `n` may wait for its response headers (connect included). An explicit
   * `attemptTimeoutMs` applies to every attempt. By default it is derived from the total: the first
   * attempt gets `totalTimeoutMs / 15` (2 s of the default 30 s; at least 1 s, at most 10 s), each retry
   * twice the one before, and the last attempt of the last source has no deadline of its own (only the
   * total) — the short ones exist to leave time for another attempt or source.
   */
  #attemptDeadline(attempt: number, lastSource: boolean): number {
    const o = this.options;
    if (o.attemptTimeoutMs !== undefined) return o.attemptTimeoutMs;
    if (lastSource && attempt >= o.retry.maxAttempts) return Infinity;
    return derivedAttemptTimeoutMs(o.totalTimeoutMs) * 2 ** (attempt - 1);
  }

  /**
   * One HTTP request. The response headers must arrive within the attempt deadline; then the body streams
   * into a caller sink and (when the response is storable) a cache writer. Statuses that are not served
   * become HttpStatusError; a 304 to a conditional request is returned as `not-modified`.
   *
   * `remainingMs` is the attempt's budget from the policies (`ctx.remainingMs()`: the source's share of
   * the total, the caller's or the ambient deadline); with the attempt's own deadline, the least of them
   * goes to the server as `bulwark-timeout-ms` (unless `deadlineHeader: false`). When nothing is left
   * beyond the allowance, the attempt is not sent: it fails at once with `DeadlineExceededError`.
   */
  async #send(
    url: string,
    headers: Readonly<Record<string, string>>,
    conditional: boolean,
    tier: string,
    attemptNo: number,
    lastSource: boolean,
    signal: AbortSignal,
    f: Flight,
    remainingMs: number,
  ): Promise<Fetched> {
    const o = this.options;
    const deadlineMs = this.#attemptDeadline(attemptNo, lastSource);
    const budget = attemptDeadlineHeader(remainingMs, deadlineMs, o.deadlineHeader);
    if (budget !== undefined) headers = { ...headers, [DEADLINE_HEADER]: budget };
    f.attempts++;
    const sentKey = `${tier}#${attemptNo}`;
    const hedgeNo = f.sentPerAttempt.get(sentKey) ?? 0;
    f.sentPerAttempt.set(sentKey, hedgeNo + 1);
    const clock = o.clock;
    const started = clock.now();
    // Every attempt is reported once, also one a timeout or an abort ended. Those abort the signal before
    // the policies reject, so the event is emitted then: before the call settles, not when the transfer
    // has finished unwinding (an aggressive timeout does not wait for it).
    let reported = !this.#onAttempt.active;
    const report = (status: number | undefined, error: unknown): void => {
      if (reported) return;
      reported = true;
      const e = error === undefined || error instanceof Error ? error : new Error(String(error));
      this.#attemptEvent(tier, url, attemptNo, hedgeNo, status, e, started);
    };
    // the attempt's own signal: the policies' one, plus the deadline until the headers arrive
    const controller = new AbortController();
    const unlink = onAbort(signal, () => controller.abort(signal.reason));
    let timer = Number.isFinite(deadlineMs)
      ? clock.setTimeout(() => controller.abort(new TimeoutError(deadlineMs)), deadlineMs)
      : undefined;
    const clearTimer = (): void => {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
    };
    const attemptSignal = controller.signal;
    const unlisten = reported
      ? undefined
      : onAbort(attemptSignal, () => report(undefined, attemptSignal.reason));
    let sink: BodySink | undefined;
    let writer: CacheEntryWriter | undefined;
    try {
      const head = await openResponse(url, {
        dispatcher: this.#dispatcher,
        method: f.method,
        headers,
        signal: attemptSignal,
        // undici's own timer follows the attempt deadline unless set: a fixed one would cut a longer deadline
        headersTimeoutMs: o.headersTimeoutMs ?? deadlineMs,
        bodyTimeoutMs: o.bodyTimeoutMs,
        maxRedirects: o.maxRedirects,
        followRedirects: o.followRedirects,
      });
      clearTimer();
      // a hedged attempt that lost while its headers were on the way: no sink, no cache entry
      if (attemptSignal.aborted) {
        discard(head.body);
        throw attemptSignal.reason;
      }
      const status = head.status;
      if (status === 304) {
        drain(head.body);
        if (conditional) {
          report(status, undefined);
          return { kind: 'not-modified', head };
        }
        throw new HttpNetworkError('protocol', head.url, undefined, {
          detail: 'an unsolicited 304 Not Modified (no conditional request was sent)',
        });
      }
      const served = (status >= 200 && status < 300) || f.accept(status);
      if (!served && (!(status >= 300 && status < 400) || o.followRedirects)) {
        drain(head.body);
        throw new HttpStatusError(
          status,
          head.url,
          parseRetryAfter(headerValue(head.headers, 'retry-after'), o.now()),
        );
      }
      const decode = willDecode(head.headers, o.decompress && f.method === 'GET');
      const servedHeaders = decode ? decodedHeaders(head.headers) : head.headers;
      // only successes are stored: an accepted error status or an unfollowed redirect is served, not kept;
      // nor an answer to credentials, unless the server says anyone may have it
      const storing =
        this.#cache !== undefined &&
        f.mode !== 'no-store' &&
        f.method === 'GET' &&
        status >= 200 &&
        status < 300 &&
        // (also from a mirror that was not sent the call's credentials: the entry is the primary URL's,
        // whose answer may depend on them)
        (!(carriesCredentials(url, headers) || carriesCredentials(url, this.options.headers)) ||
          sharedCachingAllowed(servedHeaders));
      const policy = storing ? newPolicy(this.#Policy, f.req, status, servedHeaders) : undefined;
      if (policy !== undefined && policy.storable()) {
        writer = this.#cache!.writer(f.key, head.url, o.maxBodyBytes);
        f.writers.push(writer);
      }
      if (f.method === 'HEAD') {
        drain(head.body);
        report(status, undefined);
        return {
          kind: 'body',
          head,
          headers: servedHeaders,
          bytes: 0,
          sink: undefined,
          writer: undefined,
          policy: undefined,
        };
      }
      sink = this.#openSink(f, { status, headers: servedHeaders, url: head.url, source: tier });
      let writerFailed = false;
      const bytes = await pumpBody(head.body, {
        url: head.url,
        signal: attemptSignal,
        maxBodyBytes: o.maxBodyBytes,
        decode,
        headers: head.headers,
        sink,
        side: writer,
        onSideFailure: (error) => {
          writerFailed = true;
          this.#cacheError('write', f.key, error);
        },
        onProgress: f.onProgress,
      });
      // one attempt serves the flight: a hedged one that completes while another is closing its sink lost
      // (its own sink is aborted below, never closed; its cache entry never published)
      if (attemptSignal.aborted) throw attemptSignal.reason;
      if (f.closing) throw withoutStackTrace(new HedgeCancelledError(0));
      f.closing = true;
      try {
        await sink.close();
      } catch (error) {
        throw new SinkFailure(error);
      }
      if (writerFailed && writer !== undefined) {
        await quietly(writer.abort());
        writer = undefined;
      }
      if (writer !== undefined) {
        const w = writer;
        await w.close().catch(async (error: unknown) => {
          this.#cacheError('write', f.key, error);
          await quietly(w.abort());
          writer = undefined;
        });
      }
      report(status, undefined);
      return { kind: 'body', head, headers: servedHeaders, bytes, sink, writer, policy };
    } catch (error) {
      const reason = attemptSignal.aborted && !signal.aborted ? attemptSignal.reason : error;
      if (sink !== undefined) await quietly(sink.abort(reason));
      if (writer !== undefined) await quietly(writer.abort());
      report(reason instanceof HttpStatusError ? reason.status : undefined, reason);
      throw reason;
    } finally {
      clearTimer();
      unlink();
      unlisten?.();
    }
  }

  #attemptEvent(
    tier: string,
    url: string,
    attempt: number,
    hedge: number,
    status: number | undefined,
    error: Error | undefined,
    started: number,
  ): void {
    if (this.#onAttempt.active)
      this.#onAttempt.emit({
        tier,
        url,
        attempt,
        hedge,
        status,
        error,
        elapsedMs: this.options.clock.now() - started,
      });
  }

  /**
   * The per-origin policies of an attempt, outside in: hedge (opt-in: each hedged request goes through
   * the rest), the adaptive throttle (on by default: a request it turns away never reaches the breaker,
   * so it is not the origin's failure, and retry does not try again — the next tier is tried) and the
   * circuit breaker.
   */
  #perOrigin(url: string): Policy[] {
    const origin = new URL(url).origin;
    let policies = this.#perOriginPolicies.get(origin);
    if (policies !== undefined) return policies;
    const o = this.options;
    policies = [];
    if (o.hedge !== false) policies.push(hedge(hedgeOptions(o.hedge, origin, o.clock, BREAKER_CLASSIFY)));
    if (o.adaptiveThrottle !== false)
      policies.push(adaptiveThrottle(throttleOptions(o.adaptiveThrottle, origin, o.clock, BREAKER_CLASSIFY)));
    const config = o.circuitBreaker;
    if (config !== false) {
      policies.push(
        circuitBreaker({
          ...config,
          name: origin,
          clock: o.clock,
          // classify.ts: 5xx, 408/425/429, timeouts and network errors count; an answer (404) is the
          // server working; a local failure (the caller's sink) is nobody's
          classify: BREAKER_CLASSIFY,
        }),
      );
    }
    this.#perOriginPolicies.set(origin, policies);
    return policies;
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
      tiers: [{ name: 'primary', run: (ctx) => this.#sourceTier(ctx, ctx.input.url, 0) }],
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

  #cacheError(op: HttpCacheErrorEvent['op'], key: string, error: unknown): void {
    if (this.#onCacheError.active) this.#onCacheError.emit({ op, key, error });
  }
}

/** The default attempt deadline for a total of `totalTimeoutMs`: a fifteenth, from 1 s to 10 s. */
export function derivedAttemptTimeoutMs(totalTimeoutMs: number): number {
  if (!Number.isFinite(totalTimeoutMs)) return HTTP_CLIENT_DEFAULTS.maxDerivedAttemptTimeoutMs;
  return Math.min(
    HTTP_CLIENT_DEFAULTS.maxDerivedAttemptTimeoutMs,
    Math.max(HTTP_CLIENT_DEFAULTS.minDerivedAttemptTimeoutMs, Math.round(totalTimeoutMs / 15)),
  );
}

/** The HTTP classification (classify.ts); a sink's own failure (full disk, closed pipe) is the caller's. */
const BREAKER_CLASSIFY = HOST_FAILURE_CLASSIFY.error(SinkFailure, 'ignore');
/**
 * Core's classifier, but a local throttle's rejection is not retried: another draw at once would defeat
 * the throttle, and waiting a backoff for it holds the call for nothing (the next tier is tried instead).
 */
const RETRY_CLASSIFY = classify.error(ThrottledError, 'ignore');
/** A timeout while another source remains moves on to it instead of retrying. */
const NOT_LAST_SOURCE_CLASSIFY = RETRY_CLASSIFY.errorWhen(isTimeout, 'ignore');

/** An error thrown on a losing path: no stack trace (it only points here). */
function withoutStackTrace<E extends Error>(error: E): E {
  error.stack = `${error.name}: ${error.message}`;
  return error;
}

/**
 * Whether a request carries credentials: `Authorization` or `Cookie`, or a URL's `user:pass@` (sent as
 * `Authorization: Basic`). Its answer may be for these credentials only.
 */
function carriesCredentials(url: string, headers: Readonly<Record<string, string>>): boolean {
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (lower === 'authorization' || lower === 'cookie') return true;
  }
  const u = new URL(url);
  return u.username !== '' || u.password !== '';
}

/**
 * RFC 9111 §3.5: a response to a request with `Authorization` may be stored (and served to others) only
 * when its `Cache-Control` says `public`, `s-maxage` or `must-revalidate`. The same rule is applied to
 * `Cookie`.
 */
function sharedCachingAllowed(headers: ResponseHeaders): boolean {
  const directives = (headerValue(headers, 'cache-control') ?? '')
    .toLowerCase()
    .split(',')
    .map((d) => d.trim().split('=')[0]!.trim());
  return directives.some((d) => d === 'public' || d === 's-maxage' || d === 'must-revalidate');
}

/** `url` without its `user:pass@` (a cache key must not hold a password). */
function withoutUserInfo(url: string): string {
  const u = new URL(url);
  if (u.username === '' && u.password === '') return url;
  u.username = '';
  u.password = '';
  return u.href;
}

function isTimeout(error: unknown): boolean {
  if (error instanceof TimeoutError) return true;
  return (
    error instanceof HttpNetworkError &&
    (error.kind === 'connect-timeout' || error.kind === 'headers-timeout')
  );
}

const discardSink: BodySink = {
  write: () => undefined,
  close: async () => {},
  abort: () => undefined,
};

function emptySink(): BodySink {
  return discardSink;
}

async function quietly(p: Promise<unknown> | unknown): Promise<void> {
  try {
    await p;
  } catch {
    // best effort: discarding must never fail the call
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
