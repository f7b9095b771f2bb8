// The public surface of @bulwark/http, written out by hand: nothing is exported by accident.

export {
  HttpError,
  HttpStatusError,
  HttpNetworkError,
  HttpBodyTooLargeError,
  HttpRedirectError,
  classifyNetworkError,
  isRetryableHttpError,
} from './errors.js';
export {
  RETRYABLE_STATUSES,
  HOST_FAILURE_CLASSIFY,
  isHostFailureStatus,
  isRetryableStatus,
  parseRetryAfter,
} from './classify.js';
export type { NetworkErrorKind, RedirectFailure } from './errors.js';

export { fetchAll } from './fetch-all/run.js';
export type { FetchResult, FetchAllRun, FetchAllStats, HostBreakerEvent } from './fetch-all/types.js';
export { FETCH_ALL_DEFAULTS } from './fetch-all/options.js';
export type { FetchAllOptions } from './fetch-all/options.js';
export { FETCH_ERROR_CODES } from './fetch-all/errors.js';
export type { FetchErrorCode } from './fetch-all/errors.js';

export { createHttpClient, HttpClient } from './client/client.js';
export { NO_COPY_CODES, TIER_SKIP_CODES, isSourceTier, tierOf } from './client/tiers.js';
export type { HttpTier, TierSkipCode } from './client/tiers.js';
export type {
  BodyInfo,
  HttpAttemptEvent,
  HttpCacheErrorEvent,
  HttpCloseOptions,
  HttpDownload,
  HttpDownloadOptions,
  HttpGetOptions,
  HttpResponse,
  HttpResult,
  SinkFactory,
} from './client/types.js';
export { HTTP_CLIENT_DEFAULTS } from './client/options.js';
export type { HttpClientOptions } from './client/options.js';
export type { TlsOptions } from './tls.js';
export type { BodySink, ResponseHeaders } from './client/transport.js';

export { MemoryCacheStore, MEMORY_CACHE_DEFAULTS } from './cache/memory-store.js';
export type { MemoryCacheStoreOptions } from './cache/memory-store.js';
export { DiskCacheStore, DISK_CACHE_DEFAULTS, defaultCacheDir } from './cache/disk-store.js';
export type { DiskCacheStoreOptions, DiskCacheEvent } from './cache/disk-store.js';
export type { CacheEntryHandle, CacheEntryWriter, CacheStore, CachedResponse } from './cache/store.js';
