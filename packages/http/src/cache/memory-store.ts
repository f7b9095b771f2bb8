/**
 * An in-memory cache store with a byte bound: least recently used entries are evicted first, and an
 * entry larger than the whole bound is not stored.
 */
import { checks } from '@bulwark/core/internal';
import {
  BufferingWriter,
  entrySize,
  type CacheEntryWriter,
  type CacheStore,
  type CachedResponse,
} from './store.js';

export interface MemoryCacheStoreOptions {
  /** Total bytes (bodies + metadata) kept. @default 52_428_800 (50 MiB) */
  maxBytes?: number;
}

export const MEMORY_CACHE_DEFAULTS = Object.freeze({ maxBytes: 50 * 1024 * 1024 });

export class MemoryCacheStore implements CacheStore {
  readonly maxBytes: number;
  readonly #entries = new Map<string, { entry: CachedResponse; size: number }>();
  #bytes = 0;

  constructor(options: MemoryCacheStoreOptions = {}) {
    const o = checks.optionsObject('memoryCacheStore', options);
    checks.knownKeys('memoryCacheStore', o, ['maxBytes']);
    this.maxBytes = checks.number('memoryCacheStore.maxBytes', o.maxBytes ?? MEMORY_CACHE_DEFAULTS.maxBytes, {
      min: 0,
      integer: true,
    });
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  async get(key: string): Promise<CachedResponse | undefined> {
    const slot = this.#entries.get(key);
    if (slot === undefined) return undefined;
    // most recently used last
    this.#entries.delete(key);
    this.#entries.set(key, slot);
    return slot.entry;
  }

  async set(entry: CachedResponse): Promise<void> {
    await this.delete(entry.key);
    const size = entrySize(entry);
    if (size > this.maxBytes) return;
    this.#entries.set(entry.key, { entry, size });
    this.#bytes += size;
    for (const [key, slot] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break;
      this.#entries.delete(key);
      this.#bytes -= slot.size;
    }
  }

  /** Gathers a body as it arrives; a body larger than the whole bound is dropped as soon as it is known. */
  writer(key: string, url: string): CacheEntryWriter {
    return new BufferingWriter(key, url, this.maxBytes, (entry) => this.set(entry));
  }

  async delete(key: string): Promise<void> {
    const slot = this.#entries.get(key);
    if (slot === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= slot.size;
  }
}
