/**
 * The state of one call as its tiers see it (a `Flight`: single-flight shares it between identical
 * calls), what a tier serves and what an attempt fetched, the sinks the client opens itself, and the
 * client's state the tiers share.
 */
import type CachePolicy from 'http-cache-semantics';
import type { Dispatcher } from 'undici';
import type { CacheAge, PolicyClass } from '../cache/semantics.js';
import type { CacheEntryHandle, CacheEntryWriter, StreamingStore } from '../cache/store.js';
import type { HttpCacheErrorEvent, HttpGetOptions, BodyInfo, SinkFactory } from './types.js';
import type { ResolvedOptions } from './options.js';
import { SinkFailure, type BodySink, type OpenResponse, type ResponseHeaders } from './transport.js';

/** What the tiers share of the client. */
export interface ClientCore {
  readonly options: ResolvedOptions;
  /** The client's dispatcher, with the reset guard. */
  readonly dispatcher: Dispatcher;
  readonly cache: StreamingStore | undefined;
  readonly Policy: PolicyClass;
  /** Reports a cache store failure (`onCacheError`); the call goes on. */
  cacheError(op: HttpCacheErrorEvent['op'], key: string, error: unknown): void;
}

export interface Served {
  readonly status: number;
  readonly headers: ResponseHeaders;
  readonly url: string;
  readonly revalidated: boolean;
  readonly redirects: number;
  readonly age: CacheAge | undefined;
  readonly bytes: number;
  readonly sink: BodySink | undefined;
}

/** Per-call state shared by the tiers of one ladder run. */
export interface Flight {
  readonly key: string;
  readonly url: string;
  readonly fallbackUrls: readonly string[];
  readonly req: CachePolicy.HttpRequest;
  readonly deadlineAt: number;
  readonly mode: 'default' | 'no-cache' | 'no-store';
  readonly method: 'GET' | 'HEAD';
  readonly accept: (status: number) => boolean;
  readonly sinkFactory: SinkFactory;
  /** A background refresh: nobody reads the body (a 304 does not read the stored one back). */
  readonly discardBody: boolean;
  readonly onProgress: HttpGetOptions['onProgress'];
  /** Every caller sink and cache writer opened for this flight (the unserved ones are aborted at the end). */
  readonly sinks: BodySink[];
  readonly writers: CacheEntryWriter[];
  entry: CacheEntryHandle | undefined;
  policy: CachePolicy | undefined;
  attempts: number;
  /** Requests sent per `tier#attempt`, so a hedged request is told from its attempt's first. */
  readonly sentPerAttempt: Map<string, number>;
  /** An attempt is closing its sink: it serves the flight (a hedged attempt that gets there later lost). */
  closing: boolean;
}

/** What one attempt got. */
export type Fetched =
  | {
      readonly kind: 'body';
      readonly head: OpenResponse;
      readonly headers: ResponseHeaders;
      readonly bytes: number;
      readonly sink: BodySink | undefined;
      readonly writer: CacheEntryWriter | undefined;
      readonly policy: CachePolicy | undefined;
    }
  | { readonly kind: 'not-modified'; readonly head: OpenResponse };

/** Bodies of `get()`, gathered in memory (bounded by `maxBodyBytes` upstream). */
export class MemorySink implements BodySink {
  readonly #chunks: Buffer[] = [];
  #body: Buffer | undefined;

  write(chunk: Buffer): void {
    this.#chunks.push(chunk);
  }

  async close(): Promise<void> {}

  abort(): void {
    this.#chunks.length = 0;
  }

  get body(): Buffer {
    this.#body ??= this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    return this.#body;
  }
}

export const memorySinks: SinkFactory = () => new MemorySink();

/** Opens a caller sink for a body about to be read; it is aborted at the end unless it is served. */
export function openSink(f: Flight, info: BodyInfo): BodySink {
  let sink: BodySink;
  try {
    sink = f.sinkFactory(info);
  } catch (error) {
    throw new SinkFailure(error);
  }
  f.sinks.push(sink);
  return sink;
}

/** The sink of a body nobody reads (a background refresh), and of `download()` when nothing was read. */
export const discardSink: BodySink = {
  write: () => undefined,
  close: async () => {},
  abort: () => undefined,
};

export async function quietly(p: Promise<unknown> | unknown): Promise<void> {
  try {
    await p;
  } catch {
    // best effort: discarding must never fail the call
  }
}
