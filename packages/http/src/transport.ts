/**
 * One HTTP attempt over undici's `request` (not `fetch`): follows redirects itself (counted, http(s)
 * only), reads the body into memory up to `maxBodyBytes` (aborting the transfer past it), and turns every
 * failure into an {@link HttpError} — except an abort, which rejects with the signal's reason.
 */
import { request, type Dispatcher } from 'undici';
import { HttpBodyTooLargeError, HttpRedirectError, classifyNetworkError } from './errors.js';

/** Response headers, lower-cased; repeated headers joined with `, ` (`set-cookie` kept as an array). */
export type ResponseHeaders = Record<string, string | string[]>;

export interface RawResponse {
  readonly status: number;
  readonly headers: ResponseHeaders;
  readonly body: Buffer;
  /** The URL that answered (after redirects). */
  readonly url: string;
  readonly redirects: number;
}

export interface AttemptOptions {
  readonly dispatcher: Dispatcher;
  readonly headers: Readonly<Record<string, string>>;
  readonly signal: AbortSignal | undefined;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly maxBodyBytes: number;
  readonly maxRedirects: number;
  /** Called as body bytes arrive. */
  readonly onProgress?: ((receivedBytes: number, totalBytes: number | undefined) => void) | undefined;
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

/** GETs `url`, following up to `maxRedirects` redirects. */
export async function attempt(url: string, options: AttemptOptions): Promise<RawResponse> {
  let current = url;
  for (let redirects = 0; ; redirects++) {
    const response = await once(current, options);
    if (!REDIRECTS.has(response.status)) {
      return { ...response, url: current, redirects };
    }
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
    current = next.href;
  }
}

/** One request/response. Redirect bodies are read too (they are small, bounded by the same limit). */
async function once(
  url: string,
  options: AttemptOptions,
): Promise<{ status: number; headers: ResponseHeaders; body: Buffer }> {
  const { signal } = options;
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, {
      method: 'GET',
      dispatcher: options.dispatcher,
      headers: options.headers,
      signal,
      headersTimeout: undiciMs(options.headersTimeoutMs),
      bodyTimeout: undiciMs(options.bodyTimeoutMs),
    });
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw classifyNetworkError(error, url);
  }
  const headers = normalize(res.headers);
  const declared = Number(headerValue(headers, 'content-length'));
  const total = Number.isSafeInteger(declared) && declared >= 0 ? declared : undefined;
  if (total !== undefined && total > options.maxBodyBytes) {
    res.body.on('error', () => {});
    res.body.destroy();
    throw new HttpBodyTooLargeError(options.maxBodyBytes, url);
  }
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (received > options.maxBodyBytes) {
        // leaving the loop destroys the body (the transfer is aborted)
        throw new HttpBodyTooLargeError(options.maxBodyBytes, url);
      }
      chunks.push(chunk);
      options.onProgress?.(received, total);
    }
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw classifyNetworkError(error, url);
  }
  return { status: res.statusCode, headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) };
}
