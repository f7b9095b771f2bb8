/**
 * What a cache store keeps per key, and the interface every store implements (memory, disk, your own).
 */
import type CachePolicy from 'http-cache-semantics';

/** One stored response: the RFC 9111 policy (serialised), the body and where it came from. */
export interface CachedResponse {
  /** The cache key (the request URL by default). */
  readonly key: string;
  /** The URL that served the body (after redirects; a fallback mirror's when it served). */
  readonly url: string;
  /** `CachePolicy#toObject()`: status, headers, request/response times, directives. */
  readonly policy: CachePolicy.CachePolicyObject;
  readonly body: Buffer;
}

/**
 * A cache store. `get` resolves to `undefined` for a miss, and must never throw for a damaged entry: it
 * reports a miss (the client also treats a throwing `get` as a miss). `set` may throw (the client reports
 * it and serves the response anyway).
 */
export interface CacheStore {
  get(key: string): Promise<CachedResponse | undefined>;
  set(entry: CachedResponse): Promise<void>;
  delete(key: string): Promise<void>;
}

/** Approximate bytes an entry occupies (body + serialised policy). */
export function entrySize(entry: CachedResponse): number {
  return entry.body.length + JSON.stringify(entry.policy).length + entry.key.length + entry.url.length;
}
