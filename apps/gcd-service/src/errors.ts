/**
 * The service's own error family: every error a client can see has an HTTP status, a stable `code`
 * (`GCD_ERR_*`, listed in docs/gcd-service.md and checked against it by a test) and a message that
 * says what was wrong and what to do instead — the chapter's "explicit error responses".
 */

/** Every code the service answers with, and the HTTP status that goes with it. */
export const ERROR_CODES = Object.freeze({
  GCD_ERR_MISSING_PARAMETER: 400,
  GCD_ERR_REPEATED_PARAMETER: 400,
  GCD_ERR_INVALID_NUMBER: 400,
  GCD_ERR_ZERO: 400,
  GCD_ERR_TOO_MANY_DIGITS: 400,
  GCD_ERR_REJECTED_BY_VALIDATOR: 400,
  GCD_ERR_INVALID_BODY: 400,
  GCD_ERR_NOT_FOUND: 404,
  GCD_ERR_METHOD_NOT_ALLOWED: 405,
  GCD_ERR_BODY_TOO_LARGE: 413,
  GCD_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  GCD_ERR_COMPUTE_TIMEOUT: 503,
  GCD_ERR_BUSY: 503,
  GCD_ERR_WORKER_FAILED: 503,
  GCD_ERR_DEADLINE_EXCEEDED: 504,
  GCD_ERR_INTERNAL: 500,
} as const);

export type GcdErrorCode = keyof typeof ERROR_CODES;

/** An error the service answers with `{ statusCode, code, error, message }` (or an HTML page). */
export class GcdError extends Error {
  override readonly name = 'GcdError';
  readonly statusCode: number;
  /** The JSON body, serialised once (errors shared by many requests are answered without re-serialising). */
  #json: string | undefined;
  constructor(
    readonly code: GcdErrorCode,
    message: string,
    /** Extra response headers (e.g. `Retry-After`, `Allow`). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.statusCode = ERROR_CODES[code];
  }

  /** `{ statusCode, code, error, message }` as JSON text. */
  get json(): string {
    return (this.#json ??= JSON.stringify(errorBody(this.statusCode, this.code, this.message)));
  }
}

/** The JSON body of an error response (Fastify's shape, with our code). */
export interface ErrorBody {
  statusCode: number;
  code: string;
  error: string;
  message: string;
}

const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** The reason phrase for a status code. */
export function reasonPhrase(statusCode: number): string {
  return REASONS[statusCode] ?? (statusCode >= 500 ? 'Server Error' : 'Client Error');
}

export function errorBody(statusCode: number, code: string, message: string): ErrorBody {
  return { statusCode, code, error: reasonPhrase(statusCode), message };
}
