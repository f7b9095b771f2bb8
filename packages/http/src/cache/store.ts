/**
 * What a cache store keeps per key, and the interface every store implements (memory, disk, your own).
 *
 * Two ways in: `get`/`set` with the whole body in a `Buffer` (enough for small bodies and simple stores),
 * and the optional streaming trio `open`/`writer`/`refresh`, through which a body reaches the store as it
 * arrives and is read back in chunks, so memory stays bounded whatever its size. The client uses the
 * streaming methods when a store has them ({@link streamingView} adapts a store without them).
 */
import type CachePolicy from 'http-cache-semantics';

/** One stored response: the RFC 9111 policy (serialised), the body and where it came from. */
export interface CachedResponse {
  /** The cache key (the request URL by default). */
  readonly key: string;
  /** The URL that served the body (after redirects; a fallback mirror's when it served). */
  readonly url: string;
  /** `CachePolicy#toObject()`: status, headers, request/response times, directives. */
  readonly policy: CachePolicy.CachePolicyObject;
  readonly body: Buffer;
}

/** A stored entry opened for reading: its metadata now, its body on demand. */
export interface CacheEntryHandle {
  readonly key: string;
  readonly url: string;
  readonly policy: CachePolicy.CachePolicyObject;
  /** Body size in bytes. */
  readonly size: number;
  /**
   * The body in chunks, each checked against what was stored: the iteration throws when the bytes do not
   * match (a damaged file), so a consumer must treat what it received as void then. Can be called again.
   */
  read(): AsyncIterable<Buffer>;
}

/** A body on its way into a store. Nothing is visible to readers before `commit`. */
export interface CacheEntryWriter {
  /** The next chunk (a returned promise is waited for). A writer may stop keeping bytes (e.g. too large). */
  write(chunk: Buffer): void | Promise<void>;
  /** Every byte was written and the response is complete: make the bytes durable (not yet visible). */
  close(): Promise<void>;
  /** Publishes the entry atomically with its policy (after `close`). Storing nothing is allowed. */
  commit(policy: CachePolicy.CachePolicyObject): Promise<void>;
  /** Discards what was written. Never throws. */
  abort(): Promise<void>;
}

/**
 * A cache store. `get` resolves to `undefined` for a miss, and must never throw for a damaged entry: it
 * reports a miss (the client also treats a throwing `get` as a miss). `set` may throw (the client reports
 * it and serves the response anyway). The streaming methods are optional; without them the client buffers
 * a body in memory (up to its `maxBodyBytes`) and calls `set`.
 */
export interface CacheStore {
  get(key: string): Promise<CachedResponse | undefined>;
  set(entry: CachedResponse): Promise<void>;
  delete(key: string): Promise<void>;
  /** Opens a stored entry without reading its body. */
  open?(key: string): Promise<CacheEntryHandle | undefined>;
  /** A writer for a new entry of `key` whose body came from `url`. */
  writer?(key: string, url: string): CacheEntryWriter;
  /** Stores a new policy for an opened entry, keeping its body (after a 304). */
  refresh?(handle: CacheEntryHandle, policy: CachePolicy.CachePolicyObject): Promise<void>;
}

/** Approximate bytes an entry occupies (body + serialised policy). */
export function entrySize(entry: CachedResponse): number {
  return entry.body.length + JSON.stringify(entry.policy).length + entry.key.length + entry.url.length;
}

/** The streaming view of any store: its own methods, or ones built on `get`/`set`. */
export interface StreamingStore {
  open(key: string): Promise<CacheEntryHandle | undefined>;
  writer(key: string, url: string, maxBufferedBytes: number): CacheEntryWriter;
  refresh(handle: CacheEntryHandle, policy: CachePolicy.CachePolicyObject): Promise<void>;
  delete(key: string): Promise<void>;
}

/** A handle over a body already in memory. */
export function bufferHandle(entry: CachedResponse): CacheEntryHandle & { readonly body: Buffer } {
  return {
    key: entry.key,
    url: entry.url,
    policy: entry.policy,
    size: entry.body.length,
    body: entry.body,
    async *read() {
      if (entry.body.length > 0) yield entry.body;
    },
  };
}

/** Gathers a body in memory and `set`s it on commit; past `maxBytes` it stops keeping it (not stored). */
export class BufferingWriter implements CacheEntryWriter {
  #chunks: Buffer[] | undefined = [];
  #bytes = 0;

  constructor(
    readonly key: string,
    readonly url: string,
    readonly maxBytes: number,
    readonly store: (entry: CachedResponse) => Promise<void>,
  ) {}

  write(chunk: Buffer): void {
    if (this.#chunks === undefined) return;
    this.#bytes += chunk.length;
    if (this.#bytes > this.maxBytes) this.#chunks = undefined;
    else this.#chunks.push(chunk);
  }

  async close(): Promise<void> {}

  async commit(policy: CachePolicy.CachePolicyObject): Promise<void> {
    const chunks = this.#chunks;
    if (chunks === undefined) return;
    this.#chunks = undefined;
    await this.store({ key: this.key, url: this.url, policy, body: Buffer.concat(chunks) });
  }

  async abort(): Promise<void> {
    this.#chunks = undefined;
  }
}

/** Reads a whole handle into memory (verified by the handle as it is read). */
export async function readAll(handle: CacheEntryHandle): Promise<Buffer> {
  const direct = (handle as { body?: unknown }).body;
  if (Buffer.isBuffer(direct)) return direct;
  const chunks: Buffer[] = [];
  for await (const chunk of handle.read()) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The streaming view of `store`: its own `open`/`writer`/`refresh` where present. */
export function streamingView(store: CacheStore): StreamingStore {
  return {
    open: async (key) => {
      if (store.open !== undefined) return store.open(key);
      const entry = await store.get(key);
      return entry === undefined ? undefined : bufferHandle(entry);
    },
    writer: (key, url, maxBufferedBytes) =>
      store.writer !== undefined
        ? store.writer(key, url)
        : new BufferingWriter(key, url, maxBufferedBytes, (entry) => store.set(entry)),
    refresh: async (handle, policy) => {
      if (store.refresh !== undefined) return store.refresh(handle, policy);
      await store.set({ key: handle.key, url: handle.url, policy, body: await readAll(handle) });
    },
    delete: (key) => store.delete(key),
  };
}
