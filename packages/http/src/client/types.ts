/**
 * The public types of the HTTP client: the options of one call, what a call resolves with, and the events
 * it reports.
 */
import type { TierReport } from '@bulwark/core';
import type { HttpTier } from './tiers.js';
import type { BodySink, ResponseHeaders } from './transport.js';

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
