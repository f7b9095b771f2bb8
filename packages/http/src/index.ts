// The public surface of @bulwark/http, written out by hand: nothing is exported by accident.

export {
  HttpError,
  HttpStatusError,
  HttpNetworkError,
  HttpBodyTooLargeError,
  HttpRedirectError,
  RETRYABLE_STATUSES,
  classifyNetworkError,
  parseRetryAfter,
  isRetryableHttpError,
} from './errors.js';
export type { NetworkErrorKind, RedirectFailure } from './errors.js';
