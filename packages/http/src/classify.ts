/**
 * The HTTP classification of @bulwark/http, in one place: which statuses another attempt may change,
 * which answers count against a host's (origin's) circuit breaker, and `Retry-After` in both of its forms.
 * The client, `fetchAll` and gcd-service's validator client all read it from here.
 *
 * A leaf: it imports only @bulwark/core, and recognises @bulwark/http's errors by their stable `code`
 * (which also works across two installed copies of the package).
 */
import { classify, type Classifier } from '@bulwark/core';

/** Statuses worth retrying (another attempt, or the next tier, may succeed). */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 425, 429, 500, 502, 503, 504]);

/** Whether another attempt (or another source) may get a different answer to `status`. */
export function isRetryableStatus(status: number): boolean {
  return RETRYABLE_STATUSES.has(status);
}

/**
 * Whether a status says the host is failing (and so counts against its breaker and adaptive throttle):
 * every 5xx and the retryable 4xx (408, 425, 429). Any other status is the host working (a 404 is an answer).
 */
export function isHostFailureStatus(status: number): boolean {
  return status >= 500 || RETRYABLE_STATUSES.has(status);
}

const STATUS_CODE = 'BULWARK_ERR_HTTP_STATUS';
const NETWORK_CODE = 'BULWARK_ERR_HTTP_NETWORK';

function codeOf(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}

/**
 * What an outcome says about the host, for its circuit breaker, adaptive throttle and hedge: a status
 * error is a failure when {@link isHostFailureStatus} says so and an answer (a success) otherwise; every
 * network error (refused, reset, timed out, cut short, malformed) is a failure; everything else is core's
 * `classify` (a timeout is a failure, local rejections and an open breaker are not the host's, an error
 * with `retryable: false` such as a body over the caller's limit is a success).
 */
export const HOST_FAILURE_CLASSIFY: Classifier = classify
  .errorWhen(
    (e) => codeOf(e) === STATUS_CODE && isHostFailureStatus((e as { status: number }).status),
    'failure',
  )
  .errorWhen((e) => codeOf(e) === STATUS_CODE, 'success')
  .errorWhen((e) => codeOf(e) === NETWORK_CODE, 'failure');

/**
 * Parses a `Retry-After` header value: delay-seconds (`120`) or an HTTP-date. Returns milliseconds from
 * `nowMs` (wall clock, default `Date.now()`), never negative; `undefined` when absent or unparsable.
 */
export function parseRetryAfter(
  value: string | string[] | undefined,
  nowMs = Date.now(),
): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return undefined;
  const text = raw.trim();
  if (text === '') return undefined;
  if (/^\d+$/.test(text)) {
    const seconds = Number(text);
    return Number.isSafeInteger(seconds) ? seconds * 1000 : undefined;
  }
  // HTTP-date (IMF-fixdate, plus the obsolete RFC 850 / asctime forms Date.parse accepts)
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}
