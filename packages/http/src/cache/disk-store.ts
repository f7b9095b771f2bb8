/**
 * A durable on-disk cache store, written through @bulwark/core's snapshot store: each entry is a
 * checksummed (SHA-256), atomically published snapshot (temp file + fsync + link/rename + directory fsync),
 * with the last 2 generations kept. Layout (format 2; docs/http-get.md#cache-format-and-recovery):
 *
 *   <dir>/v2/<h[0..2]>/<h>/entry.<generation>.snap   h = sha256(key), hex
 *   <dir>/v2/<h[0..2]>/<h>/quarantine/               files that failed verification (1 kept)
 *   <dir>/v2/usage.json                              bytes written since the last full scan (a hint)
 *
 * One directory per key, in 256 shards: the snapshot store lists its directory several times per save,
 * and a directory holding every key made each save cost O(entries). The byte bound is kept by a full scan
 * only when the usage hint says the bound may be exceeded (or the hint is missing, or older than an hour),
 * not on every save; it then evicts down to 90 % of the bound.
 *
 * Payload: `uint32 BE metaLength`, `meta` (JSON: `{ v: 2, key, url, policy, bodyBytes }`), then the body.
 * A damaged file is quarantined by the snapshot store and read as a miss (the older generation, if intact,
 * is served instead); never a crash. Directories mode 0700, files 0600. A `v1/` directory (format 1: every
 * key in one directory) is removed on the first write.
 */
import { createHash } from 'node:crypto';
import {
  chmod,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  createSnapshotStore,
  SnapshotCorruptError,
  SnapshotNotFoundError,
  type SnapshotStore,
  type Subscribe,
} from '@bulwark/core';
import { EventEmitter, checks } from '@bulwark/core/internal';
import { messageOf } from '../errors.js';
import { entrySize, type CacheStore, type CachedResponse } from './store.js';

export interface DiskCacheStoreOptions {
  /** The cache directory. @default `$XDG_CACHE_HOME/bulwark-http-get` (or `~/.cache/bulwark-http-get`) */
  dir?: string;
  /**
   * Total bytes of entry files kept; past it, the least recently written are removed down to 90 % of it.
   * @default 268_435_456 (256 MiB)
   */
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
  /**
   * Set on the event for one damaged snapshot file (`op: 'read'`, `kind: 'corrupt'`): its path (it was
   * moved to the entry's `quarantine/`). Unset when the entry as a whole could not be read (no intact
   * generation, an I/O error, a payload that does not decode) or written.
   */
  readonly file?: string;
}

/** The version of the whole on-disk format: the directory name (`v2/`) and the payload's `v`. */
const FORMAT = 2;
const SUBDIR = `v${FORMAT}`;
const LEGACY_SUBDIRS = ['v1'];
/** The snapshot store's base name inside a key's directory. */
const ENTRY = 'entry';
const USAGE_FILE = 'usage.json';
/** A full scan at least this often, whatever the usage hint says (concurrent writers may lose updates). */
const RESCAN_MS = 60 * 60 * 1000;
/** An eviction removes entries down to this fraction of `maxBytes` (room for writes before the next scan). */
const LOW_WATER = 0.9;
/** Snapshot stores kept open (one per key); the oldest is dropped past it. */
const MAX_OPEN_STORES = 256;

interface Usage {
  /** Bytes of entry files: the total found by the last scan plus what was written since. */
  readonly bytes: number;
  /** When the last full scan ran (ms since the epoch). */
  readonly scannedAt: number;
}

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

  /** The hex SHA-256 of a key: the name of its directory. */
  static fileName(key: string): string {
    return createHash('sha256').update(key).digest('hex');
  }

  /** The directory holding a key's snapshot files (`<dir>/v2/<h[0..2]>/<h>`). */
  entryDir(key: string): string {
    const hash = DiskCacheStore.fileName(key);
    return join(this.#entriesDir, hash.slice(0, 2), hash);
  }

  #store(key: string): SnapshotStore<Buffer> {
    const dir = this.entryDir(key);
    let store = this.#stores.get(dir);
    if (store === undefined) {
      store = createSnapshotStore<Buffer>({ dir, name: ENTRY, keepGenerations: 2, keepQuarantined: 1 });
      store.onCorruption((e) =>
        this.#problem(
          'read',
          key,
          'corrupt',
          `${e.path}: ${e.reason} (${e.detail}); ${e.quarantinedTo === undefined ? 'left in place' : 'quarantined'}`,
          e.path,
        ),
      );
      if (this.#stores.size >= MAX_OPEN_STORES) this.#stores.delete(this.#stores.keys().next().value!);
      this.#stores.set(dir, store);
    }
    return store;
  }

  #problem(
    op: DiskCacheEvent['op'],
    key: string,
    kind: DiskCacheEvent['kind'],
    detail: string,
    file?: string,
  ): void {
    if (this.#onProblem.active)
      this.#onProblem.emit(file === undefined ? { op, key, kind, detail } : { op, key, kind, detail, file });
  }

  /**
   * Creates the directories with mode 0700 (and tightens an existing cache directory to 0700); removes
   * the directories of older formats.
   */
  #prepare(): Promise<void> {
    this.#ready ??= (async () => {
      await mkdir(this.#entriesDir, { recursive: true, mode: 0o700 });
      for (const d of [this.dir, this.#entriesDir]) {
        const s = await stat(d);
        if ((s.mode & 0o077) !== 0) await chmod(d, 0o700);
      }
      for (const legacy of LEGACY_SUBDIRS) {
        await rm(join(this.dir, legacy), { recursive: true, force: true }).catch((error: unknown) =>
          this.#problem(
            'evict',
            '',
            'error',
            `cannot remove ${legacy}/ (an older format): ${messageOf(error)}`,
          ),
        );
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
      if (SnapshotNotFoundError.is(error)) return undefined;
      // each damaged file was reported by onCorruption; this says that no intact generation was left
      if (SnapshotCorruptError.is(error)) this.#problem('read', key, 'corrupt', messageOf(error));
      else this.#problem('read', key, 'error', messageOf(error));
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
    // the shard and key directories: 0700 like the rest (the snapshot store would create them 0755)
    await mkdir(this.entryDir(entry.key), { recursive: true, mode: 0o700 });
    const saved = await this.#store(entry.key).save(encodeEntry(entry));
    if (entrySize(entry) > this.maxBytes) await this.delete(entry.key);
    await this.#account(entry.key, saved.bytes);
  }

  async delete(key: string): Promise<void> {
    const dir = this.entryDir(key);
    for (const file of await listOrEmpty(dir)) {
      if (file.endsWith('.snap')) await unlink(join(dir, file)).catch(() => {});
    }
  }

  /**
   * Adds a write to the usage hint; runs the full scan (and evicts) when the hint says the bound may be
   * exceeded, or is missing, unreadable or older than {@link RESCAN_MS}. The hint over-counts (a pruned
   * generation is not subtracted), which only makes a scan come sooner; a write lost to a concurrent
   * writer under-counts until the next scan.
   */
  async #account(keep: string, writtenBytes: number): Promise<void> {
    const now = Date.now();
    const usage = await this.#readUsage();
    let next: Usage;
    if (
      usage === undefined ||
      usage.bytes + writtenBytes > this.maxBytes ||
      now - usage.scannedAt > RESCAN_MS ||
      now < usage.scannedAt
    ) {
      next = { bytes: await this.#evict(keep), scannedAt: now };
    } else {
      next = { bytes: usage.bytes + writtenBytes, scannedAt: usage.scannedAt };
    }
    await this.#writeUsage(next).catch((error: unknown) =>
      this.#problem('write', keep, 'error', `usage hint: ${messageOf(error)}`),
    );
  }

  async #readUsage(): Promise<Usage | undefined> {
    try {
      const u = JSON.parse(await readFile(join(this.#entriesDir, USAGE_FILE), 'utf8')) as Partial<Usage>;
      const valid = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;
      return valid(u.bytes) && valid(u.scannedAt) ? { bytes: u.bytes, scannedAt: u.scannedAt } : undefined;
    } catch {
      return undefined;
    }
  }

  /** Replaces the hint atomically (a reader sees the old or the new one); not fsynced: it is only a hint. */
  async #writeUsage(usage: Usage): Promise<void> {
    const path = join(this.#entriesDir, USAGE_FILE);
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(usage), { mode: 0o600 });
      await rename(tmp, path);
    } catch (error) {
      await unlink(tmp).catch(() => {});
      throw error;
    }
  }

  /**
   * The full scan: sums every entry file and, past `maxBytes`, removes the least recently written down to
   * {@link LOW_WATER} of it (never the entry just written, unless it alone is too large), so the next
   * scans are a tenth of the bound's worth of writes away. Returns the total kept.
   */
  async #evict(keep: string): Promise<number> {
    const keepDir = this.entryDir(keep);
    const files: { dir: string; path: string; size: number; mtimeMs: number; mine: boolean }[] = [];
    for (const shard of await listOrEmpty(this.#entriesDir)) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      const shardDir = join(this.#entriesDir, shard);
      const keys = await listOrEmpty(shardDir);
      await Promise.all(
        keys.map(async (hash) => {
          const dir = join(shardDir, hash);
          for (const file of await listOrEmpty(dir)) {
            if (!file.endsWith('.snap')) continue;
            const path = join(dir, file);
            try {
              const s = await stat(path);
              files.push({ dir, path, size: s.size, mtimeMs: s.mtimeMs, mine: dir === keepDir });
            } catch {
              // removed meanwhile
            }
          }
        }),
      );
    }
    let total = files.reduce((sum, f) => sum + f.size, 0);
    if (total <= this.maxBytes) return total;
    const target = Math.floor(this.maxBytes * LOW_WATER);
    files.sort((a, b) => Number(a.mine) - Number(b.mine) || a.mtimeMs - b.mtimeMs);
    for (const f of files) {
      if (total <= target) break;
      await unlink(f.path).then(
        () => (total -= f.size),
        (error: unknown) => this.#problem('evict', keep, 'error', messageOf(error)),
      );
      // an emptied key directory goes too (it stays when it still holds a quarantined or temp file)
      if (!f.mine) await rmdir(f.dir).catch(() => {});
    }
    return total;
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
