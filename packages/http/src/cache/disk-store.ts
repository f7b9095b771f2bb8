/**
 * A durable on-disk cache store, written through @bulwark/core's snapshot store: each entry is a
 * checksummed (SHA-256), atomically published snapshot `<dir>/v1/<sha256(key)>.<generation>.snap`
 * (temp file + fsync + link/rename + directory fsync), with the last 2 generations kept.
 *
 * Payload (format 1): `uint32 BE metaLength`, `meta` (JSON: `{ v: 1, key, url, policy, bodyBytes }`),
 * then the body. A damaged file is quarantined by the snapshot store and read as a miss (the older
 * generation, if intact, is served instead); never a crash. Directory mode 0700, files 0600.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  EventEmitter,
  checks,
  createSnapshotStore,
  isBulwarkError,
  type SnapshotStore,
  type Subscribe,
} from '@bulwark/core';
import { messageOf } from '../errors.js';
import { entrySize, type CacheStore, type CachedResponse } from './store.js';

export interface DiskCacheStoreOptions {
  /** The cache directory. @default `$XDG_CACHE_HOME/bulwark-http-get` (or `~/.cache/bulwark-http-get`) */
  dir?: string;
  /** Total bytes of entry files kept; the least recently written are removed past it. @default 268_435_456 (256 MiB) */
  maxBytes?: number;
}

export const DISK_CACHE_DEFAULTS = Object.freeze({
  maxBytes: 256 * 1024 * 1024,
  appName: 'bulwark-http-get',
});

/** The default cache directory: `$XDG_CACHE_HOME/<app>`, else `~/.cache/<app>`. */
export function defaultCacheDir(
  env: NodeJS.ProcessEnv = process.env,
  app = DISK_CACHE_DEFAULTS.appName,
): string {
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg !== undefined && xdg !== '' && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), app);
}

/** Something went wrong with the cache files; the call went on as a miss or without storing. */
export interface DiskCacheEvent {
  readonly op: 'read' | 'write' | 'evict';
  readonly key: string;
  /** `corrupt` when a file failed verification (it was quarantined), else `error`. */
  readonly kind: 'corrupt' | 'error';
  readonly detail: string;
}

const FORMAT = 1;
const SUBDIR = 'v1';

export class DiskCacheStore implements CacheStore {
  readonly dir: string;
  readonly maxBytes: number;
  readonly #entriesDir: string;
  readonly #stores = new Map<string, SnapshotStore<Buffer>>();
  readonly #onProblem = new EventEmitter<DiskCacheEvent>();
  /** Damaged or unreadable entries, failed writes and evictions. */
  readonly onProblem: Subscribe<DiskCacheEvent> = this.#onProblem.subscribe;
  #ready: Promise<void> | undefined;

  constructor(options: DiskCacheStoreOptions = {}) {
    const o = checks.optionsObject('diskCacheStore', options);
    checks.knownKeys('diskCacheStore', o, ['dir', 'maxBytes']);
    this.dir = o.dir === undefined ? defaultCacheDir() : checks.string('diskCacheStore.dir', o.dir);
    this.maxBytes = checks.positiveInteger(
      'diskCacheStore.maxBytes',
      o.maxBytes ?? DISK_CACHE_DEFAULTS.maxBytes,
    );
    this.#entriesDir = join(this.dir, SUBDIR);
  }

  /** The snapshot file base name of a key. */
  static fileName(key: string): string {
    return createHash('sha256').update(key).digest('hex');
  }

  #store(key: string): SnapshotStore<Buffer> {
    const name = DiskCacheStore.fileName(key);
    let store = this.#stores.get(name);
    if (store === undefined) {
      store = createSnapshotStore<Buffer>({
        dir: this.#entriesDir,
        name,
        keepGenerations: 2,
        keepQuarantined: 1,
      });
      store.onCorruption((e) =>
        this.#problem('read', key, 'corrupt', `${e.path}: ${e.reason} (${e.detail}); quarantined`),
      );
      this.#stores.set(name, store);
    }
    return store;
  }

  #problem(op: DiskCacheEvent['op'], key: string, kind: DiskCacheEvent['kind'], detail: string): void {
    if (this.#onProblem.active) this.#onProblem.emit({ op, key, kind, detail });
  }

  /** Creates the directories with mode 0700 (and tightens an existing cache directory to 0700). */
  #prepare(): Promise<void> {
    this.#ready ??= (async () => {
      await mkdir(this.#entriesDir, { recursive: true, mode: 0o700 });
      for (const d of [this.dir, this.#entriesDir]) {
        const s = await stat(d);
        if ((s.mode & 0o077) !== 0) await chmod(d, 0o700);
      }
    })().catch((error: unknown) => {
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }

  async get(key: string): Promise<CachedResponse | undefined> {
    let data: Buffer;
    try {
      data = (await this.#store(key).load()).data;
    } catch (error) {
      if (isBulwarkError(error, 'BULWARK_ERR_SNAPSHOT_NOT_FOUND')) return undefined;
      if (isBulwarkError(error, 'BULWARK_ERR_SNAPSHOT_CORRUPT')) return undefined; // reported by onCorruption
      this.#problem('read', key, 'error', messageOf(error));
      return undefined;
    }
    const entry = decodeEntry(data);
    if (entry === undefined || entry.key !== key) {
      this.#problem('read', key, 'corrupt', 'entry payload does not decode or belongs to another key');
      return undefined;
    }
    return entry;
  }

  async set(entry: CachedResponse): Promise<void> {
    await this.#prepare();
    await this.#store(entry.key).save(encodeEntry(entry));
    if (entrySize(entry) > this.maxBytes) await this.delete(entry.key);
    await this.#evict(entry.key);
  }

  async delete(key: string): Promise<void> {
    const prefix = `${DiskCacheStore.fileName(key)}.`;
    for (const file of await listOrEmpty(this.#entriesDir)) {
      if (file.startsWith(prefix) && file.endsWith('.snap'))
        await unlink(join(this.#entriesDir, file)).catch(() => {});
    }
  }

  /** Removes the least recently written entry files while the total exceeds `maxBytes`. */
  async #evict(keep: string): Promise<void> {
    const keepPrefix = `${DiskCacheStore.fileName(keep)}.`;
    const files: { path: string; size: number; mtimeMs: number; mine: boolean }[] = [];
    let total = 0;
    for (const file of await listOrEmpty(this.#entriesDir)) {
      if (!file.endsWith('.snap')) continue;
      try {
        const s = await stat(join(this.#entriesDir, file));
        files.push({
          path: join(this.#entriesDir, file),
          size: s.size,
          mtimeMs: s.mtimeMs,
          mine: file.startsWith(keepPrefix),
        });
        total += s.size;
      } catch {
        // removed meanwhile
      }
    }
    if (total <= this.maxBytes) return;
    files.sort((a, b) => Number(a.mine) - Number(b.mine) || a.mtimeMs - b.mtimeMs);
    for (const f of files) {
      if (total <= this.maxBytes) break;
      await unlink(f.path).then(
        () => (total -= f.size),
        (error: unknown) => this.#problem('evict', keep, 'error', messageOf(error)),
      );
    }
  }
}

async function listOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

export function encodeEntry(entry: CachedResponse): Buffer {
  const meta = Buffer.from(
    JSON.stringify({
      v: FORMAT,
      key: entry.key,
      url: entry.url,
      policy: entry.policy,
      bodyBytes: entry.body.length,
    }),
  );
  const head = Buffer.alloc(4);
  head.writeUInt32BE(meta.length);
  return Buffer.concat([head, meta, entry.body]);
}

export function decodeEntry(data: Buffer): CachedResponse | undefined {
  try {
    if (data.length < 4) return undefined;
    const metaLength = data.readUInt32BE(0);
    if (4 + metaLength > data.length) return undefined;
    const meta = JSON.parse(data.subarray(4, 4 + metaLength).toString('utf8')) as Record<string, unknown>;
    const body = data.subarray(4 + metaLength);
    if (
      meta['v'] !== FORMAT ||
      typeof meta['key'] !== 'string' ||
      typeof meta['url'] !== 'string' ||
      typeof meta['policy'] !== 'object' ||
      meta['policy'] === null ||
      meta['bodyBytes'] !== body.length
    ) {
      return undefined;
    }
    return {
      key: meta['key'],
      url: meta['url'],
      policy: meta['policy'] as CachedResponse['policy'],
      body: Buffer.from(body),
    };
  } catch {
    return undefined;
  }
}
