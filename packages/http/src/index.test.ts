// The public surface of @bulwark/http, pinned: an API change must show up as a diff here.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as http from './index.js';

it('exports exactly the documented values', () => {
  assert.deepEqual(Object.keys(http).sort(), [
    'DISK_CACHE_DEFAULTS',
    'DiskCacheStore',
    'FETCH_ALL_DEFAULTS',
    'FETCH_ERROR_CODES',
    'HOST_FAILURE_CLASSIFY',
    'HTTP_CLIENT_DEFAULTS',
    'HttpBodyTooLargeError',
    'HttpClient',
    'HttpError',
    'HttpNetworkError',
    'HttpRedirectError',
    'HttpStatusError',
    'MEMORY_CACHE_DEFAULTS',
    'MemoryCacheStore',
    'NO_COPY_CODES',
    'RETRYABLE_STATUSES',
    'TIER_SKIP_CODES',
    'classifyNetworkError',
    'createHttpClient',
    'defaultCacheDir',
    'fetchAll',
    'isHostFailureStatus',
    'isRetryableHttpError',
    'isRetryableStatus',
    'isSourceTier',
    'parseRetryAfter',
    'tierOf',
  ]);
});
