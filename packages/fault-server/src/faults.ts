/**
 * The faults the test server can inject, as plain data, and the URL routes that select them
 * (`/status/503?retryAfter=2`, `/latency/200`, `/blackhole`, …) so a spawned CLI can be pointed at a
 * fault by URL alone.
 */

/** How a malformed response is broken. */
export type MalformedKind =
  /** `HTPT/1.1 2OO OK` — not an HTTP status line. */
  | 'status-line'
  /** A header name with a space in it (`Bad Header: x`). */
  | 'header'
  /** 64 bytes of binary garbage instead of a response. */
  | 'garbage'
  /** Two different `Content-Length` headers. */
  | 'content-length'
  /** `Transfer-Encoding: chunked` with an invalid chunk size. */
  | 'chunked'
  /** One header larger than 16 KiB (above undici's and Node's default limit). */
  | 'huge-header';

export const MALFORMED_KINDS: readonly MalformedKind[] = Object.freeze([
  'status-line',
  'header',
  'garbage',
  'content-length',
  'chunked',
  'huge-header',
]);

/** A fault the HTTP test server applies to a request. */
export type Fault =
  /** A normal response (the configured body). */
  | { readonly type: 'none' }
  /** Wait `ms` before sending the headers, then answer normally. */
  | { readonly type: 'latency'; readonly ms: number }
  /** Accept the connection and read the request, never answer (until `close()`). */
  | { readonly type: 'blackhole' }
  /**
   * TCP RST (`socket.resetAndDestroy()`). Without `afterBytes`: before any response byte. With it: after the
   * headers and `afterBytes` body bytes (mid-body), `delayMs` (default 50) after those bytes were flushed.
   */
  | { readonly type: 'reset'; readonly afterBytes?: number; readonly delayMs?: number }
  /** Headers announce the full `Content-Length`, only `bytes` body bytes are sent, then a clean close (FIN). */
  | { readonly type: 'truncate'; readonly bytes: number }
  /** The body arrives `bytes` bytes every `intervalMs` ms (headers at once). */
  | { readonly type: 'drip'; readonly bytes: number; readonly intervalMs: number }
  /** The body is paced to `bytesPerSecond` (sent in 20 ms slices; headers at once). */
  | { readonly type: 'bandwidth'; readonly bytesPerSecond: number }
  /**
   * Answer with `status` (e.g. 503, 429, 500). `retryAfter`: a number is seconds, a Date is sent as an
   * HTTP-date, a string verbatim.
   */
  | {
      readonly type: 'status';
      readonly status: number;
      readonly retryAfter?: number | Date | string;
      readonly body?: string;
    }
  /** Redirect to `location` (absolute or relative to the server) with `status` (default 302). */
  | { readonly type: 'redirect'; readonly location: string; readonly status?: number }
  /** A response that is not valid HTTP/1.1, then a close. */
  | { readonly type: 'malformed'; readonly kind: MalformedKind }
  /** Close the connection (FIN) without sending a byte. */
  | { readonly type: 'close' }
  /** Headers and `afterBytes` body bytes, then silence (the connection held open until `close()`). */
  | { readonly type: 'stall'; readonly afterBytes: number };

export type FaultType = Fault['type'];

/** How a fault installed with `setFault` applies. */
export interface FaultScope {
  /** Only requests whose pathname equals this. @default every path */
  readonly path?: string;
  /** Apply to the next `times` matching requests only, then fall back to normal. @default unlimited */
  readonly times?: number;
  /**
   * Probability (0–1) that a matching request gets the fault (toxiproxy's "toxicity"); uses the server's
   * seeded PRNG. @default 1
   */
  readonly probability?: number;
}

/**
 * How a body's end is marked: `length` (a `Content-Length` header), `chunked`
 * (`Transfer-Encoding: chunked`, ended by the zero-length chunk), or `close` (neither: the body ends when
 * the server closes the connection, `Connection: close`; RFC 9112 §6.3 rule 8).
 */
export type Framing = 'length' | 'chunked' | 'close';

export const FRAMINGS: readonly Framing[] = Object.freeze(['length', 'chunked', 'close']);

/** The normal response. Every field can also be set per request with a query parameter of the same name. */
export interface ResponseSpec {
  /** @default 200 */
  readonly status?: number;
  /** The body; when absent a deterministic body of `size` bytes ({@link patternBody}) is sent. */
  readonly body?: string | Uint8Array;
  /** Size of the generated body. @default 2 (the body `ok`) */
  readonly size?: number;
  /** @default 'text/plain; charset=utf-8' */
  readonly contentType?: string;
  /** Sent as `ETag`; a matching `If-None-Match` gets a 304. */
  readonly etag?: string;
  /** Sent as `Last-Modified`; an `If-Modified-Since` at or after it gets a 304 (when no If-None-Match). */
  readonly lastModified?: Date | string;
  /** Sent as `Cache-Control`. */
  readonly cacheControl?: string;
  /** Extra headers. */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * How the body is framed, for the normal response and the faults that send a body (`reset` mid-body,
   * `truncate`, `drip`, `bandwidth`, `stall`). @default 'length'
   */
  readonly framing?: Framing;
  /**
   * Send the body gzip-compressed with `Content-Encoding: gzip` — whatever the request's
   * `Accept-Encoding` says (a server that compresses without being asked). @default false
   */
  readonly gzip?: boolean;
}

const PATTERN = Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\n', 'latin1');

/**
 * The deterministic body the server sends for `size` bytes: `abc…XYZ\n` repeated and cut. Tests compare
 * a received body against it to prove it is complete and untorn.
 */
export function patternBody(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += PATTERN.length) PATTERN.copy(out, i, 0, Math.min(PATTERN.length, size - i));
  return out;
}

function int(value: string | null, name: string, fallback?: number): number {
  if (value === null || value === '') {
    if (fallback !== undefined) return fallback;
    throw new RangeError(`fault route: missing parameter ${name}`);
  }
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`fault route: ${name} must be a number ≥ 0`);
  return n;
}

/**
 * The fault a URL selects, or `undefined` for a normal response. Routes:
 *
 * | route | fault |
 * | --- | --- |
 * | `/ok`, anything else | none |
 * | `/latency/:ms` | latency |
 * | `/blackhole` | blackhole |
 * | `/reset`, `/reset?afterBytes=N&delayMs=M` | reset before headers / mid-body |
 * | `/truncate?bytes=N` | truncate (default 1) |
 * | `/drip?bytes=N&intervalMs=M` | drip (defaults 1 B / 100 ms) |
 * | `/bandwidth?bytesPerSecond=N` | bandwidth |
 * | `/status/:code?retryAfter=S` or `?retryAfterDate=<ms from now>` | status |
 * | `/redirect?location=/ok&status=301` | redirect |
 * | `/malformed/:kind` | malformed |
 * | `/close` | close |
 * | `/stall?afterBytes=N` | stall (default 0) |
 */
export function faultFromUrl(url: URL): Fault | undefined {
  const parts = url.pathname.split('/').filter(Boolean);
  const q = url.searchParams;
  switch (parts[0]) {
    case 'latency':
      return { type: 'latency', ms: int(parts[1] ?? q.get('ms'), 'ms') };
    case 'blackhole':
      return { type: 'blackhole' };
    case 'reset': {
      const after = q.get('afterBytes');
      return after === null
        ? { type: 'reset', delayMs: int(q.get('delayMs'), 'delayMs', 0) }
        : {
            type: 'reset',
            afterBytes: int(after, 'afterBytes'),
            delayMs: int(q.get('delayMs'), 'delayMs', 50),
          };
    }
    case 'truncate':
      return { type: 'truncate', bytes: int(q.get('bytes'), 'bytes', 1) };
    case 'drip':
      return {
        type: 'drip',
        bytes: Math.max(1, int(q.get('bytes'), 'bytes', 1)),
        intervalMs: int(q.get('intervalMs'), 'intervalMs', 100),
      };
    case 'bandwidth':
      return {
        type: 'bandwidth',
        bytesPerSecond: Math.max(1, int(q.get('bytesPerSecond'), 'bytesPerSecond')),
      };
    case 'status': {
      const status = int(parts[1] ?? q.get('code'), 'code');
      const seconds = q.get('retryAfter');
      const dateIn = q.get('retryAfterDate');
      const retryAfter =
        seconds !== null
          ? seconds
          : dateIn !== null
            ? new Date(Date.now() + int(dateIn, 'retryAfterDate'))
            : undefined;
      return retryAfter === undefined ? { type: 'status', status } : { type: 'status', status, retryAfter };
    }
    case 'redirect':
      return {
        type: 'redirect',
        location: q.get('location') ?? '/ok',
        status: int(q.get('status'), 'status', 302),
      };
    case 'malformed': {
      const kind = parts[1] as MalformedKind | undefined;
      if (!kind || !MALFORMED_KINDS.includes(kind))
        throw new RangeError(`fault route: malformed kind must be one of ${MALFORMED_KINDS.join(', ')}`);
      return { type: 'malformed', kind };
    }
    case 'close':
      return { type: 'close' };
    case 'stall':
      return { type: 'stall', afterBytes: int(q.get('afterBytes'), 'afterBytes', 0) };
    default:
      return undefined;
  }
}

/** Query parameters that override the normal response: `size`, `status`, `contentType`, `etag`, … */
export function specFromUrl(url: URL, base: ResponseSpec): ResponseSpec {
  const q = url.searchParams;
  const spec: { -readonly [K in keyof ResponseSpec]: ResponseSpec[K] } = { ...base };
  const size = q.get('size');
  if (size !== null) {
    spec.size = int(size, 'size');
    delete spec.body;
  }
  const body = q.get('body');
  if (body !== null) spec.body = body;
  const status = q.get('status');
  if (status !== null && !url.pathname.startsWith('/redirect')) spec.status = int(status, 'status');
  const contentType = q.get('contentType');
  if (contentType !== null) spec.contentType = contentType;
  const etag = q.get('etag');
  if (etag !== null) spec.etag = etag;
  const lastModified = q.get('lastModified');
  if (lastModified !== null) spec.lastModified = lastModified;
  const cacheControl = q.get('cacheControl');
  if (cacheControl !== null) spec.cacheControl = cacheControl;
  const framing = q.get('framing');
  if (framing !== null) {
    if (!FRAMINGS.includes(framing as Framing))
      throw new RangeError(`fault route: framing must be one of ${FRAMINGS.join(', ')}`);
    spec.framing = framing as Framing;
  }
  const gzip = q.get('gzip');
  if (gzip !== null) spec.gzip = gzip !== '0' && gzip !== 'false';
  return spec;
}
