/**
 * One HTTP attempt over undici's `request` (not `fetch`), in two steps:
 *
 * - {@link openResponse}: sends the request and follows redirects (counted, http(s) only; their small
 *   bodies are drained), up to the response headers. The body is not read yet.
 * - {@link pumpBody}: streams the body — decoded when it is compressed — into sinks as it arrives, with
 *   backpressure (a sink's pending write pauses the socket), a byte limit, and progress. Nothing is
 *   buffered here beyond undici's stream buffer.
 *
 * Every failure becomes an {@link HttpError} — except an abort, which rejects with the signal's reason, and
 * a sink's own failure (a full disk), which rejects with a {@link SinkFailure}.
 */
import { pipeline } from 'node:stream/promises';
import type { Readable, Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { request, type Dispatcher } from 'undici';
import {
  HttpBodyTooLargeError,
  HttpNetworkError,
  HttpRedirectError,
  classifyNetworkError,
  type HttpError,
} from '../errors.js';
import { splitUserInfo, withoutCredentials } from '../credentials.js';

/** Response headers, lower-cased; repeated headers joined with `, ` (`set-cookie` kept as an array). */
export type ResponseHeaders = Record<string, string | string[]>;

/** A response whose headers arrived; its body not read yet (read it with {@link pumpBody} or drain it). */
export interface OpenResponse {
  readonly status: number;
  readonly headers: ResponseHeaders;
  /** The URL that answered (after redirects). */
  readonly url: string;
  readonly redirects: number;
  readonly body: Readable;
}

export interface OpenOptions {
  readonly dispatcher: Dispatcher;
  readonly method: 'GET' | 'HEAD';
  readonly headers: Readonly<Record<string, string>>;
  readonly signal: AbortSignal | undefined;
  /** undici's headers timeout (request sent → headers), a backstop; `Infinity`: none. */
  readonly headersTimeoutMs: number;
  /** Longest pause between two body chunks. */
  readonly bodyTimeoutMs: number;
  readonly maxRedirects: number;
  /** Follow redirects (otherwise a 3xx is the response). */
  readonly followRedirects: boolean;
}

/** Something the body is written to: the caller's output, a cache entry, memory. */
export interface BodySink {
  /** The next chunk. A returned promise is waited for before more of the body is read. */
  write(chunk: Buffer): void | Promise<void>;
  /** Every byte arrived and the response is complete and accepted. */
  close(): Promise<void>;
  /** The body was cut, rejected or aborted: discard what was written. Must not throw. */
  abort(reason: unknown): Promise<void> | void;
}

/** A sink's own failure (it could not write: a full disk, a closed pipe): not the source's fault. */
export class SinkFailure extends Error {
  override readonly name = 'SinkFailure';
  /** Never retried: another attempt would hit the same local problem. */
  readonly retryable = false;
  constructor(readonly error: unknown) {
    super(error instanceof Error ? error.message : String(error));
  }
}

export interface PumpOptions {
  readonly url: string;
  readonly signal: AbortSignal | undefined;
  /** Decoded bytes allowed (`HttpBodyTooLargeError` past it). */
  readonly maxBodyBytes: number;
  /** Decode a `gzip`/`deflate`/`br` `Content-Encoding` (the headers say which). */
  readonly decode: boolean;
  /** The response headers (for `content-encoding` and `content-length`). */
  readonly headers: ResponseHeaders;
  /** The caller's sink (its failure is fatal: {@link SinkFailure}). */
  readonly sink: BodySink | undefined;
  /** A secondary sink (the cache): its failure drops it, reported through `onSideFailure`. */
  readonly side: { write(chunk: Buffer): void | Promise<void> } | undefined;
  readonly onSideFailure: (error: unknown) => void;
  readonly onProgress: ((receivedBytes: number, totalBytes: number | undefined) => void) | undefined;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Milliseconds for undici: 0 disables its timer, so "no limit" (Infinity) becomes 0. */
function undiciMs(ms: number): number {
  return Number.isFinite(ms) ? Math.max(1, Math.round(ms)) : 0;
}

export function headerValue(headers: ResponseHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function normalize(raw: Record<string, string | string[] | undefined>): ResponseHeaders {
  const out: ResponseHeaders = {};
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue;
    const name = k.toLowerCase();
    out[name] = Array.isArray(v) && name !== 'set-cookie' ? v.join(', ') : v;
  }
  return out;
}

/** Throws the signal's reason when it aborted, else `error` as an HttpError. */
function fail(error: unknown, url: string, signal: AbortSignal | undefined): never {
  if (signal?.aborted) throw signal.reason;
  throw classifyNetworkError(error, url);
}

/**
 * Sends `url` and follows up to `maxRedirects` redirects; resolves at the final response's headers.
 * Credentials (`Authorization`, `Cookie`, `Proxy-Authorization`, a URL's user info) go only to the origin
 * of `url`: a redirect to another origin — another scheme (`https:` → `http:` too), host or port — drops
 * them for the rest of the chain, also when a later redirect comes back.
 */
export async function openResponse(url: string, options: OpenOptions): Promise<OpenResponse> {
  const first = splitUserInfo(url, options.headers);
  let current = first.url;
  let sending: OpenOptions =
    first.headers === options.headers ? options : { ...options, headers: first.headers };
  for (let redirects = 0; ; redirects++) {
    const response = await once(current, sending);
    if (!options.followRedirects || !REDIRECTS.has(response.status)) {
      return { ...response, url: current, redirects };
    }
    drain(response.body);
    const location = headerValue(response.headers, 'location');
    if (location === undefined || location === '') {
      throw new HttpRedirectError('missing-location', current, options.maxRedirects);
    }
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      throw new HttpRedirectError('bad-location', current, options.maxRedirects, location);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new HttpRedirectError('scheme', current, options.maxRedirects, location);
    }
    if (redirects >= options.maxRedirects) {
      throw new HttpRedirectError('too-many', url, options.maxRedirects, location);
    }
    if (next.origin !== new URL(current).origin) {
      const stripped = withoutCredentials(sending.headers);
      if (stripped !== sending.headers) sending = { ...sending, headers: stripped };
    }
    // user info in a Location is not followed as credentials (only the caller's URL may carry them)
    next.username = '';
    next.password = '';
    current = next.href;
  }
}

async function once(
  url: string,
  options: OpenOptions,
): Promise<{ status: number; headers: ResponseHeaders; body: Readable }> {
  try {
    const res = await request(url, {
      method: options.method,
      dispatcher: options.dispatcher,
      headers: options.headers,
      signal: options.signal,
      headersTimeout: undiciMs(options.headersTimeoutMs),
      bodyTimeout: undiciMs(options.bodyTimeoutMs),
    });
    return { status: res.statusCode, headers: normalize(res.headers), body: res.body };
  } catch (error) {
    return fail(error, url, options.signal);
  }
}

/** Discards a body we will not read (its connection is reused or closed by undici). */
export function drain(body: Readable): void {
  body.on('error', () => {});
  body.resume();
}

/** Drops a body we will not read, closing its connection. */
export function discard(body: Readable): void {
  body.on('error', () => {});
  body.destroy();
}

/** The decoder for a `Content-Encoding`, `null` for identity, `undefined` for one we cannot decode. */
function decoderFor(encoding: string | undefined): Transform | null | undefined {
  const codings = (encoding ?? '')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  if (codings.length === 0) return null;
  if (codings.length > 1) return undefined;
  switch (codings[0]) {
    case 'gzip':
    case 'x-gzip':
      return createGunzip();
    case 'deflate':
      return createInflate();
    case 'br':
      return createBrotliDecompress();
    default:
      return undefined;
  }
}

/** The encodings {@link pumpBody} can decode, for `Accept-Encoding`. */
export const ACCEPT_ENCODING = 'gzip, deflate, br';

/**
 * Whether the body of these headers is to be decoded (so served and stored headers drop the coding): any
 * coding but identity; {@link pumpBody} fails one it cannot decode.
 */
export function willDecode(headers: ResponseHeaders, decode: boolean): boolean {
  if (!decode) return false;
  const decoder = decoderFor(headerValue(headers, 'content-encoding'));
  decoder?.destroy();
  return decoder !== null;
}

/** The headers of a decoded body: without the coding and the wire length. */
export function decodedHeaders(headers: ResponseHeaders): ResponseHeaders {
  const out: ResponseHeaders = { ...headers };
  delete out['content-encoding'];
  delete out['content-length'];
  return out;
}

/**
 * Streams `body` into the sinks (decoded if asked and encoded) and resolves with the number of bytes
 * written. The caller's sink paces the reading; a failing side sink is dropped. Rejects with an
 * `HttpError` (a cut, stalled, undecodable or too large body), a {@link SinkFailure}, or the signal's
 * reason.
 */
export async function pumpBody(body: Readable, options: PumpOptions): Promise<number> {
  const { url, signal, maxBodyBytes } = options;
  const encoding = headerValue(options.headers, 'content-encoding');
  const decoder = options.decode ? decoderFor(encoding) : null;
  if (decoder === undefined) {
    discard(body);
    throw new HttpNetworkError('protocol', url, undefined, {
      detail: `unsupported Content-Encoding ${JSON.stringify(encoding)}`,
    });
  }
  const declared = Number(headerValue(options.headers, 'content-length'));
  const total = decoder === null && Number.isSafeInteger(declared) && declared >= 0 ? declared : undefined;
  if (total !== undefined && total > maxBodyBytes) {
    discard(body);
    throw new HttpBodyTooLargeError(maxBodyBytes, url);
  }
  let side = options.side;
  const sink = options.sink;
  let received = 0;
  // a decoder's error is told apart from the network's by who failed first
  let networkFailed = false;
  let decodeFailed = false;
  const consume = async (source: AsyncIterable<Buffer>): Promise<void> => {
    for await (const chunk of source) {
      received += chunk.length;
      if (received > maxBodyBytes) throw new HttpBodyTooLargeError(maxBodyBytes, url);
      let wait: Promise<unknown> | undefined;
      if (sink !== undefined) {
        try {
          const r = sink.write(chunk);
          if (r !== undefined) wait = r.catch((error: unknown) => Promise.reject(new SinkFailure(error)));
        } catch (error) {
          throw new SinkFailure(error);
        }
      }
      if (side !== undefined) {
        const s = side;
        try {
          const r = s.write(chunk);
          if (r !== undefined) {
            const sideWait = r.catch((error: unknown) => {
              if (side === s) side = undefined;
              options.onSideFailure(error);
            });
            wait = wait === undefined ? sideWait : Promise.all([wait, sideWait]);
          }
        } catch (error) {
          side = undefined;
          options.onSideFailure(error);
        }
      }
      if (wait !== undefined) await wait;
      options.onProgress?.(received, total);
    }
  };
  try {
    if (decoder === null) await consume(body as AsyncIterable<Buffer>);
    else {
      body.once('error', () => {
        if (!decodeFailed) networkFailed = true;
      });
      decoder.once('error', () => {
        if (!networkFailed) decodeFailed = true;
      });
      await pipeline(body, decoder, consume);
    }
  } catch (error) {
    discard(body);
    if (error instanceof SinkFailure || error instanceof HttpBodyTooLargeError) throw error;
    if (signal?.aborted) throw signal.reason;
    if (decodeFailed) throw decodeError(error, url, encoding);
    return fail(error, url, signal);
  }
  return received;
}

/** A body that does not decode: cut short (retryable, like any cut body) or not what it says it is. */
function decodeError(error: unknown, url: string, encoding: string | undefined): HttpError {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'Z_BUF_ERROR') {
    return new HttpNetworkError('connection-closed', url, 'Z_BUF_ERROR', {
      cause: error,
      detail: `the ${encoding} body ended before its end marker`,
    });
  }
  return new HttpNetworkError('protocol', url, typeof code === 'string' ? code : undefined, {
    cause: error,
    detail: `the body is not valid ${encoding}`,
  });
}
