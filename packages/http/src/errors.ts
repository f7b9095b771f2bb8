/**
 * The errors of @bulwark/http. Every one is a `BulwarkError` with a stable `BULWARK_ERR_HTTP_*` code
 * (listed in docs/errors.md) and the `url` it concerns.
 *
 * - {@link HttpStatusError}: the server answered with a status the caller does not accept (≥ 400 by
 *   default), with `retryAfterMs` parsed from `Retry-After` so core's `retry` honours it.
 * - {@link HttpNetworkError}: no (complete) response: refused, reset, timed out, truncated, malformed.
 *   {@link classifyNetworkError} turns any undici / system error into one.
 * - {@link HttpBodyTooLargeError}, {@link HttpRedirectError}: limits the client enforces.
 */
import { BulwarkError } from '@bulwark/core';
import { isRetryableStatus } from './classify.js';

/** Base class of every @bulwark/http error. */
export abstract class HttpError extends BulwarkError {
  abstract override readonly code: string;
  /** The URL of the request that failed. */
  abstract readonly url: string;
  /** True when repeating the request (or asking another source) may succeed. */
  abstract readonly retryable: boolean;
}

/** The server answered with an unacceptable status (≥ 400 by default, after any retries). */
export class HttpStatusError extends HttpError {
  override readonly name = 'HttpStatusError';
  readonly code = 'BULWARK_ERR_HTTP_STATUS';
  readonly retryable: boolean;
  constructor(
    readonly status: number,
    readonly url: string,
    /** From `Retry-After` (seconds or HTTP-date), in ms from when the response arrived; if present. */
    readonly retryAfterMs?: number,
  ) {
    super(
      `HTTP ${status} from ${url}${retryAfterMs !== undefined ? ` (retry after ${retryAfterMs} ms)` : ''}`,
    );
    this.retryable = isRetryableStatus(status);
  }
}

/** What went wrong on the wire. */
export type NetworkErrorKind =
  /** TCP (or TLS) connect took longer than the connect timeout. */
  | 'connect-timeout'
  /** Connected, but the response headers did not arrive in time. */
  | 'headers-timeout'
  /** The body stalled longer than the body (idle) timeout. */
  | 'body-timeout'
  /** ECONNREFUSED: nothing listens there. */
  | 'connection-refused'
  /** ECONNRESET / EPIPE: the peer reset the connection. */
  | 'connection-reset'
  /** The socket closed before the response was complete (truncated body, FIN mid-response). */
  | 'connection-closed'
  /** Name resolution failed (ENOTFOUND, EAI_AGAIN). */
  | 'dns'
  /** No route (EHOSTUNREACH, ENETUNREACH, ENETDOWN, EHOSTDOWN) or ETIMEDOUT from the OS. */
  | 'unreachable'
  /** The bytes received were not valid HTTP (bad status line, headers, chunking, oversized headers). */
  | 'protocol'
  /** A TLS handshake or certificate failure. */
  | 'tls'
  /** Anything else. */
  | 'other';

const RETRYABLE_KINDS: ReadonlySet<NetworkErrorKind> = new Set([
  'connect-timeout',
  'headers-timeout',
  'body-timeout',
  'connection-refused',
  'connection-reset',
  'connection-closed',
  'dns',
  'unreachable',
]);

/** No complete, valid response arrived. `cause` is the underlying undici / system error. */
export class HttpNetworkError extends HttpError {
  override readonly name = 'HttpNetworkError';
  readonly code = 'BULWARK_ERR_HTTP_NETWORK';
  readonly retryable: boolean;
  constructor(
    readonly kind: NetworkErrorKind,
    readonly url: string,
    /** The underlying error's code (`ECONNRESET`, `UND_ERR_HEADERS_TIMEOUT`, `HPE_INVALID_CONSTANT`, …). */
    readonly errorCode: string | undefined,
    options?: { cause?: unknown; detail?: string },
  ) {
    super(
      `${describeKind(kind)} for ${url}${options?.detail ? `: ${options.detail}` : ''}${errorCode ? ` (${errorCode})` : ''}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.retryable = RETRYABLE_KINDS.has(kind);
  }
}

function describeKind(kind: NetworkErrorKind): string {
  switch (kind) {
    case 'connect-timeout':
      return 'Connect timed out';
    case 'headers-timeout':
      return 'Response headers timed out';
    case 'body-timeout':
      return 'Response body stalled';
    case 'connection-refused':
      return 'Connection refused';
    case 'connection-reset':
      return 'Connection reset';
    case 'connection-closed':
      return 'Connection closed before the response was complete';
    case 'dns':
      return 'Name resolution failed';
    case 'unreachable':
      return 'Host unreachable';
    case 'protocol':
      return 'Malformed HTTP response';
    case 'tls':
      return 'TLS failure';
    default:
      return 'Network error';
  }
}

/** The response body exceeded `maxBodyBytes`; the transfer was aborted. */
export class HttpBodyTooLargeError extends HttpError {
  override readonly name = 'HttpBodyTooLargeError';
  readonly code = 'BULWARK_ERR_HTTP_BODY_TOO_LARGE';
  readonly retryable = false;
  constructor(
    readonly limitBytes: number,
    readonly url: string,
  ) {
    super(`Response body from ${url} exceeds the limit of ${limitBytes} bytes`);
  }
}

/** Why a redirect was not followed. */
export type RedirectFailure = 'too-many' | 'missing-location' | 'bad-location' | 'scheme';

/** A redirect could not be followed: too many, no/invalid `Location`, or a scheme other than http(s). */
export class HttpRedirectError extends HttpError {
  override readonly name = 'HttpRedirectError';
  readonly code = 'BULWARK_ERR_HTTP_REDIRECT';
  readonly retryable = false;
  constructor(
    readonly reason: RedirectFailure,
    readonly url: string,
    readonly maxRedirects: number,
    readonly location?: string,
  ) {
    super(
      reason === 'too-many'
        ? `More than ${maxRedirects} redirects starting from ${url}`
        : reason === 'missing-location'
          ? `Redirect from ${url} has no Location header`
          : reason === 'scheme'
            ? `Redirect from ${url} to a non-HTTP(S) location ${JSON.stringify(location)} refused`
            : `Redirect from ${url} has an invalid Location ${JSON.stringify(location)}`,
    );
  }
}

const KIND_BY_CODE: Readonly<Record<string, NetworkErrorKind>> = {
  UND_ERR_CONNECT_TIMEOUT: 'connect-timeout',
  UND_ERR_HEADERS_TIMEOUT: 'headers-timeout',
  UND_ERR_BODY_TIMEOUT: 'body-timeout',
  ECONNREFUSED: 'connection-refused',
  ECONNRESET: 'connection-reset',
  EPIPE: 'connection-reset',
  UND_ERR_SOCKET: 'connection-closed',
  // UND_ERR_CLOSED / UND_ERR_DESTROYED are our own dispatcher, closed: not the network, not retryable ('other')
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'connection-closed',
  ENOTFOUND: 'dns',
  EAI_AGAIN: 'dns',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
  ENETDOWN: 'unreachable',
  EHOSTDOWN: 'unreachable',
  ETIMEDOUT: 'unreachable',
  EADDRNOTAVAIL: 'unreachable',
  UND_ERR_HEADERS_OVERFLOW: 'protocol',
  UND_ERR_INFO: 'protocol',
  ERR_TLS_CERT_ALTNAME_INVALID: 'tls',
  CERT_HAS_EXPIRED: 'tls',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'tls',
  SELF_SIGNED_CERT_IN_CHAIN: 'tls',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'tls',
  ERR_SSL_WRONG_VERSION_NUMBER: 'tls',
  UND_ERR_PRX_TLS: 'tls',
};

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function kindOfCode(code: string | undefined): NetworkErrorKind | undefined {
  if (code === undefined) return undefined;
  const kind = KIND_BY_CODE[code];
  if (kind !== undefined) return kind;
  if (code.startsWith('HPE_')) return 'protocol';
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return 'tls';
  return undefined;
}

/**
 * undici's error classes by `name`, for errors that arrive without a code: undici 7's `HTTPParserError`
 * (a bad status line, header, chunk size or `Content-Length`) has `code: undefined` whenever llhttp's error
 * number does not map to a name, which in 7.x is every time.
 */
const KIND_BY_NAME: Readonly<Record<string, NetworkErrorKind>> = {
  HTTPParserError: 'protocol',
  HeadersOverflowError: 'protocol',
  InformationalError: 'protocol',
  ConnectTimeoutError: 'connect-timeout',
  HeadersTimeoutError: 'headers-timeout',
  BodyTimeoutError: 'body-timeout',
  SocketError: 'connection-closed',
  ResponseContentLengthMismatchError: 'connection-closed',
  SecureProxyConnectionError: 'tls',
};

function kindOfName(error: unknown): NetworkErrorKind | undefined {
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === 'string' && Object.hasOwn(KIND_BY_NAME, name) ? KIND_BY_NAME[name] : undefined;
}

/**
 * Turns an undici or system error into an {@link HttpNetworkError} (an {@link HttpError} is returned as
 * is). The most specific code wins: a `UND_ERR_SOCKET` caused by `ECONNRESET` is a `connection-reset`.
 * An error without a known code is classified by its class name (undici's `HTTPParserError` carries no
 * code: it is a `protocol` error). An abort (the caller's or a timeout's) is not a network error: callers
 * check their signal first.
 */
export function classifyNetworkError(error: unknown, url: string): HttpError {
  if (error instanceof HttpError) return error;
  const cause = (error as { cause?: unknown } | null)?.cause;
  const outer = codeOf(error);
  const inner = codeOf(cause);
  const innerKind = kindOfCode(inner);
  const kind = innerKind ?? kindOfCode(outer) ?? kindOfName(cause) ?? kindOfName(error) ?? 'other';
  return new HttpNetworkError(kind, url, innerKind !== undefined ? inner : (outer ?? inner), {
    cause: error,
  });
}

/** A one-line description of any thrown value (for reports and events; not exported from the package). */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** True for errors another attempt or another source might not hit: retryable statuses and network errors. */
export function isRetryableHttpError(error: unknown): boolean {
  return error instanceof HttpError && error.retryable;
}
