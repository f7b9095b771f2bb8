/**
 * The stable outcome codes of `fetchAll` results (`FetchResult.errorCode`), and how an error becomes one.
 * The codes are part of @bulwark/http's API (programs and CLIs such as many-requests print them): add new
 * ones, never rename.
 */
import { CircuitOpenError, DeadlineExceededError, ThrottledError, TimeoutError } from '@bulwark/core';
import {
  HttpBodyTooLargeError,
  HttpNetworkError,
  HttpStatusError,
  type NetworkErrorKind,
} from '../errors.js';

/** Why a URL failed. Listed (with meanings) in docs/many-requests.md. */
export type FetchErrorCode =
  /** The input was not an absolute http: or https: URL. No request was sent. */
  | 'INVALID_URL'
  /** The host's circuit breaker was open: the request was not sent (the host failed repeatedly). */
  | 'CIRCUIT_OPEN'
  /**
   * The host's adaptive throttle rejected the request locally: it was not sent, because the host has been
   * refusing requests (`adaptiveThrottle`). Not retried.
   */
  | 'THROTTLED'
  /**
   * The attempt exceeded `attemptTimeoutMs` (or undici's headers / body timeout) and was aborted; or its budget
   * was spent before it was sent (see `deadlineHeader`), and it was not sent.
   */
  | 'TIMEOUT'
  /** TCP connect did not complete in time. */
  | 'CONNECT_TIMEOUT'
  /** Nothing listens at that address (ECONNREFUSED). */
  | 'CONNECT_REFUSED'
  /** The peer reset the connection (ECONNRESET, EPIPE). */
  | 'RESET'
  /** The connection closed before the response was complete (truncated body). */
  | 'CLOSED'
  /** Name resolution failed (ENOTFOUND, EAI_AGAIN). */
  | 'DNS'
  /** No route to the host (EHOSTUNREACH, ENETUNREACH, …). */
  | 'UNREACHABLE'
  /** The response was not valid HTTP. */
  | 'PROTOCOL'
  /** A TLS handshake or certificate failure. */
  | 'TLS'
  /** Any other network error. */
  | 'NETWORK'
  /** The server answered 429 Too Many Requests (after any retries). */
  | 'HTTP_429'
  /**
   * The server answered another 4xx status (after any retries). Only 408 and 425 are retried and count
   * against the host's breaker; any other 4xx is an answer, not an outage.
   */
  | 'HTTP_4XX'
  /** The server answered 5xx (after any retries). */
  | 'HTTP_5XX'
  /** The body exceeded `maxBodyBytes`. */
  | 'BODY_TOO_LARGE'
  /** The caller's signal aborted the run before this URL finished. */
  | 'ABORTED';

/** Every code, in documentation order (a test keeps docs/many-requests.md in step with it). */
export const FETCH_ERROR_CODES: readonly FetchErrorCode[] = Object.freeze([
  'INVALID_URL',
  'CIRCUIT_OPEN',
  'THROTTLED',
  'TIMEOUT',
  'CONNECT_TIMEOUT',
  'CONNECT_REFUSED',
  'RESET',
  'CLOSED',
  'DNS',
  'UNREACHABLE',
  'PROTOCOL',
  'TLS',
  'NETWORK',
  'HTTP_429',
  'HTTP_4XX',
  'HTTP_5XX',
  'BODY_TOO_LARGE',
  'ABORTED',
]);

const BY_KIND: Readonly<Record<NetworkErrorKind, FetchErrorCode>> = {
  'connect-timeout': 'CONNECT_TIMEOUT',
  'headers-timeout': 'TIMEOUT',
  'body-timeout': 'TIMEOUT',
  'connection-refused': 'CONNECT_REFUSED',
  'connection-reset': 'RESET',
  'connection-closed': 'CLOSED',
  dns: 'DNS',
  unreachable: 'UNREACHABLE',
  protocol: 'PROTOCOL',
  tls: 'TLS',
  other: 'NETWORK',
};

/** The code for a status that is not ok (≥ 400). */
export function statusCode(status: number): FetchErrorCode {
  if (status === 429) return 'HTTP_429';
  return status >= 500 ? 'HTTP_5XX' : 'HTTP_4XX';
}

/** The code for the error a URL's last attempt ended with (the run's own abort is told apart before). */
export function errorCodeOf(error: unknown): FetchErrorCode {
  if (error instanceof CircuitOpenError) return 'CIRCUIT_OPEN';
  if (error instanceof ThrottledError) return 'THROTTLED';
  if (error instanceof TimeoutError || error instanceof DeadlineExceededError) return 'TIMEOUT';
  if (error instanceof HttpStatusError) return statusCode(error.status);
  if (error instanceof HttpNetworkError) return BY_KIND[error.kind];
  if (error instanceof HttpBodyTooLargeError) return 'BODY_TOO_LARGE';
  return 'NETWORK';
}
