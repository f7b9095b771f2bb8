/**
 * The client's cache tiers and what the network tier asks of the cache: the fresh tier (serve a fresh
 * stored copy; start a stale-while-revalidate refresh), the stale tier (serve a stale copy within
 * max-stale), serving a stored body into a caller sink, a 304 that confirms the stored copy, whether a
 * fetched response is stored (and its writer), and publishing a fetched body's entry.
 */
import type { TierContext } from '@bulwark/core';
import type CachePolicy from 'http-cache-semantics';
import {
  ageOf,
  freshDecision,
  newPolicy,
  restore,
  staleDecision,
  type CacheAge,
} from '../cache/semantics.js';
import type { CacheEntryHandle, CacheEntryWriter } from '../cache/store.js';
import { carriesCredentials } from '../credentials.js';
import { messageOf } from '../errors.js';
import { openSink, quietly, type ClientCore, type Fetched, type Flight, type Served } from './flight.js';
import { HTTP_CLIENT_DEFAULTS } from './options.js';
import { TIER_SKIP_CODES as SKIP } from './tiers.js';
import { SinkFailure, headerValue, type OpenResponse, type ResponseHeaders } from './transport.js';

export class CacheTiers {
  readonly #core: ClientCore;
  /** Starts a stale-while-revalidate refresh of the flight's entry (the client runs it in the background). */
  readonly #revalidateInBackground: (f: Flight) => void;

  constructor(core: ClientCore, revalidateInBackground: (f: Flight) => void) {
    this.#core = core;
    this.#revalidateInBackground = revalidateInBackground;
  }

  async fresh(ctx: TierContext<Flight>): Promise<Served | ReturnType<typeof ctx.skip>> {
    const f = ctx.input;
    const cache = this.#core.cache;
    if (cache === undefined) return ctx.skip(SKIP.CACHE_DISABLED, 'cache disabled');
    if (f.mode === 'no-store') return ctx.skip(SKIP.NO_STORE, 'cache not used for this call (no-store)');
    let entry: CacheEntryHandle | undefined;
    try {
      entry = await cache.open(f.key);
    } catch (error) {
      this.#core.cacheError('read', f.key, error);
      return ctx.skip(SKIP.CACHE_READ_FAILED, `cache read failed: ${messageOf(error)}`);
    }
    const policy = entry === undefined ? undefined : restore(this.#core.Policy, entry);
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

  async stale(ctx: TierContext<Flight>): Promise<Served | ReturnType<typeof ctx.skip>> {
    const f = ctx.input;
    if (this.#core.cache === undefined) return ctx.skip(SKIP.CACHE_DISABLED, 'cache disabled');
    if (f.mode === 'no-store') return ctx.skip(SKIP.NO_STORE, 'cache not used for this call (no-store)');
    if (f.entry === undefined || f.policy === undefined) return ctx.skip(SKIP.NOT_CACHED, 'no cached copy');
    const decision = staleDecision(
      f.policy,
      this.#core.options.maxStaleMs,
      HTTP_CLIENT_DEFAULTS.defaultMaxStaleMs,
    );
    if (!decision.use) return ctx.skip(decision.code, decision.reason);
    const served = await this.#serveStored(ctx, f, f.entry, f.policy, decision.age, false, 0);
    if (served === undefined) return ctx.skip(SKIP.CACHE_DAMAGED, 'cached copy is damaged');
    return served;
  }

  /**
   * A 304 answered the flight's conditional request: when it confirms the stored copy, that copy is
   * served and its entry refreshed. Undefined when it does not match what is stored (or that is damaged):
   * the full response is to be fetched.
   */
  async revalidated(ctx: TierContext<Flight>, f: Flight, head: OpenResponse): Promise<Served | undefined> {
    if (f.entry === undefined || f.policy === undefined) return undefined;
    const { policy, modified } = f.policy.revalidatedPolicy(f.req, { status: 304, headers: head.headers });
    if (modified) return undefined;
    const entry = f.entry;
    const served = await this.#serveStored(ctx, f, entry, policy, ageOf(policy), true, head.redirects);
    if (served === undefined) return undefined;
    await this.#core
      .cache!.refresh(entry, policy.toObject())
      .catch((e: unknown) => this.#core.cacheError('write', f.key, e));
    return served;
  }

  /**
   * Whether a response fetched from `url` with `headers` is stored, and if so its cache policy and the
   * writer its body goes into as it arrives (registered with the flight, aborted unless published).
   */
  storeFor(
    f: Flight,
    url: string,
    headers: Readonly<Record<string, string>>,
    head: OpenResponse,
    servedHeaders: ResponseHeaders,
  ): { policy: CachePolicy | undefined; writer: CacheEntryWriter | undefined } {
    const cache = this.#core.cache;
    const o = this.#core.options;
    const status = head.status;
    // only successes are stored: an accepted error status or an unfollowed redirect is served, not kept;
    // nor an answer to credentials, unless the server says anyone may have it
    const storing =
      cache !== undefined &&
      f.mode !== 'no-store' &&
      f.method === 'GET' &&
      status >= 200 &&
      status < 300 &&
      // (also from a mirror that was not sent the call's credentials: the entry is the primary URL's,
      // whose answer may depend on them)
      (!(carriesCredentials(url, headers) || carriesCredentials(url, o.headers)) ||
        sharedCachingAllowed(servedHeaders));
    const policy = storing ? newPolicy(this.#core.Policy, f.req, status, servedHeaders) : undefined;
    if (policy === undefined || !policy.storable()) return { policy, writer: undefined };
    const writer = cache!.writer(f.key, head.url, o.maxBodyBytes);
    f.writers.push(writer);
    return { policy, writer };
  }

  /** A fetched body becomes the served one: its cache entry is published (or the old one dropped). */
  async publish(f: Flight, fetched: Fetched): Promise<Served> {
    if (fetched.kind !== 'body') throw new Error('unreachable: a 304 without a cached copy');
    const cache = this.#core.cache;
    if (fetched.writer !== undefined && fetched.policy !== undefined) {
      await fetched.writer
        .commit(fetched.policy.toObject())
        .catch((e: unknown) => this.#core.cacheError('write', f.key, e));
    } else if (
      cache !== undefined &&
      f.mode !== 'no-store' &&
      f.method === 'GET' &&
      f.entry !== undefined &&
      fetched.policy !== undefined &&
      !fetched.policy.storable()
    ) {
      await cache.delete(f.key).catch((e: unknown) => this.#core.cacheError('delete', f.key, e));
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
    const sink = openSink(f, { status, headers, url: entry.url, source: ctx.tier });
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
      this.#core.cacheError('read', f.key, error);
      return undefined;
    }
    return { ...base, bytes, sink };
  }
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
