// Over 600 lines on purpose: one on-disk format (write, verify, recover, evict), whose crash-safety rules
// only hold together; the format-independent parts are store.ts and semantics.ts.
/**
 * A durable on-disk cache store whose bodies are streamed in and out, so memory stays bounded whatever a
 * body's size. Layout (format 3; docs/http-get.md#cache-format-and-recovery):
 *
 *   <dir>/v3/<h[0..2]>/<h>/entry.<generation>.snap   h = sha256(key): the entry's metadata, a checksummed
 *                                                     snapshot (@bulwark/core) naming its body file
 *   <dir>/v3/<h[0..2]>/<h>/body-<sha256>             the body, named by its SHA-256
 *   <dir>/v3/<h[0..2]>/<h>/.body.<pid>-<hex>.tmp      a body being written
 *   <dir>/v3/<h[0..2]>/<h>/quarantine/               files that failed verification (1 of each kind kept)
 *   <dir>/v3/usage.json                              bytes written since the last full scan (a hint)
 *
 * Writing an entry: the body streams into a temp file (O_EXCL, 0600) while its SHA-256 is computed →
 * fsync → published under its hash with a hard link (an existing file of that name holds the same bytes)
 * → directory fsync → the metadata snapshot (its own temp + fsync + link + directory fsync) → bodies no
 * kept generation names are removed. A kill at any point leaves the previous generation readable (its body
 * is removed only once no kept generation names it) or the new one complete; temp files of a process that
 * is gone are removed by the next write to the entry.
 *
 * Reading an entry: the newest intact metadata snapshot (corrupt ones are quarantined by the snapshot
 * store), then its body, whose size is checked at once and whose SHA-256 is checked as it is read: a
 * mismatch fails the read (the consumer discards what it got) and quarantines the body. Never a crash.
 *
 * One directory per key, in 256 shards: the snapshot store lists its directory several times per save. The
 * byte bound is kept by a full scan only when the usage hint says it may be exceeded (or the hint is
 * missing, or older than an hour); it then evicts whole entries, least recently written first, down to 90 %.
 * Directories 0700, files 0600. Older formats' directories (`v1/`, `v2/`) are removed on the first write.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  chmod,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  writeFile,
  type FileHandle,
} from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type CachePolicy from 'http-cache-semantics';
import {
  createSnapshotStore,
  SnapshotCorruptError,
  SnapshotNotFoundError,
  type SnapshotStore,
  type Subscribe,
} from '@bulwark/core';
import { EventEmitter, checks } from '@bulwark/core/internal';
import { messageOf } from '../errors.js';
import {
  readAll,
  type CacheEntryHandle,
  type CacheEntryWriter,
  type CacheStore,
  type CachedResponse,
} from './store.js';

export interface DiskCacheStoreOptions {
  /** The cache directory. @default `$XDG_CACHE_HOME/bulwark-http` (or `~/.cache/bulwark-http`) */
  dir?: string;
  /**
   * Total bytes of entry files kept; past it, the least recently written entries are removed down to 90 %
   * of it. A body larger than this is not stored at all (its writer stops keeping it as soon as it knows).
   * @default 268_435_456 (256 MiB)
   */
  maxBytes?: number;
}

export const DISK_CACHE_DEFAULTS = Object.freeze({
  maxBytes: 256 * 1024 * 1024,
  appName: 'bulwark-http',
});

/** The default cache directory: `$XDG_CACHE_HOME/<app>`, else `~/.cache/<app>`. */
export function defaultCacheDir(
  env: NodeJS.ProcessEnv = process.env,
  app: string = DISK_CACHE_DEFAULTS.appName,
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
   * Set on the event for one damaged file (`op: 'read'`, `kind: 'corrupt'`): its path (it was moved to the
   * entry's `quarantine/`). Unset when the entry as a whole could not be read (no intact generation, an
   * I/O error, metadata that does not decode) or written.
   */
  readonly file?: string;
}

/** The version of the whole on-disk format: the directory name (`v3/`) and the metadata's `v`. */
const FORMAT = 3;
const SUBDIR = `v${FORMAT}`;
const LEGACY_SUBDIRS = ['v1', 'v2'];
/** The snapshot store's base name inside a key's directory. */
const ENTRY = 'entry';
const USAGE_FILE = 'usage.json';
const QUARANTINE = 'quarantine';
const BODY = /^body-([0-9a-f]{64})$/;
const BODY_TEMP = /^\.body\.(\d+)-[0-9a-f]+\.tmp$/;
const QUARANTINED_BODY = /^body-[0-9a-f]{64}\.\d+$/;
/** A full scan at least this often, whatever the usage hint says (concurrent writers may lose updates). */
const RESCAN_MS = 60 * 60 * 1000;
/** An eviction removes entries down to this fraction of `maxBytes` (room for writes before the next scan). */
const LOW_WATER = 0.9;
/** Snapshot stores kept open (one per key); the oldest is dropped past it. */
const MAX_OPEN_STORES = 256;
/**
 * A body file no kept generation names is removed only once it is this old: another process may have
 * just published it and not yet saved the metadata that names it. Temp files: the same age, or a writer
 * process that is gone.
 */
const ORPHAN_GRACE_MS = 60_000;
/** Bytes read from a body file at a time. */
const READ_CHUNK = 64 * 1024;

/** The metadata snapshot of one entry. */
interface Meta {
  readonly v: number;
  readonly key: string;
  readonly url: string;
  readonly policy: CachePolicy.CachePolicyObject;
  readonly body: { readonly file: string; readonly bytes: number; readonly sha256: string };
}

interface Usage {
  /** Bytes of entry files: the total found by the last scan plus what was written since. */
  readonly bytes: number;
  /** When the last full scan ran (ms since the epoch). */
  readonly scannedAt: number;
}

/** A body whose bytes do not match its metadata (thrown by a handle's `read()`). */
class BodyMismatch extends Error {
  override readonly name = 'BodyMismatch';
}

export class DiskCacheStore implements CacheStore {
  readonly dir: string;
  readonly maxBytes: number;
  readonly #entriesDir: string;
  readonly #stores = new Map<string, SnapshotStore<Meta>>();
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

  /** The directory holding a key's files (`<dir>/v3/<h[0..2]>/<h>`). */
  entryDir(key: string): string {
    const hash = DiskCacheStore.fileName(key);
    return join(this.#entriesDir, hash.slice(0, 2), hash);
  }

  #store(key: string): SnapshotStore<Meta> {
    const dir = this.entryDir(key);
    let store = this.#stores.get(dir);
    if (store === undefined) {
      store = createSnapshotStore<Meta>({ dir, name: ENTRY, keepGenerations: 2, keepQuarantined: 1 });
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

  // --- reading ----------------------------------------------------------------------------------------

  async open(key: string): Promise<CacheEntryHandle | undefined> {
    const store = this.#store(key);
    let loaded: { generation: number; data: Meta };
    try {
      loaded = await store.load();
    } catch (error) {
      if (SnapshotNotFoundError.is(error)) return undefined;
      // each damaged file was reported by onCorruption; this says that no intact generation was left
      if (SnapshotCorruptError.is(error)) this.#problem('read', key, 'corrupt', messageOf(error));
      else this.#problem('read', key, 'error', messageOf(error));
      return undefined;
    }
    // the newest generation whose body is there and of the right size; an older one if it is not
    const tried = new Set<number>();
    const problems: string[] = [];
    for (;;) {
      tried.add(loaded.generation);
      const handle = await this.#handle(key, loaded.data, problems);
      if (handle !== undefined) return handle;
      const older = await this.#olderGeneration(store, tried);
      if (older === undefined) {
        this.#problem('read', key, 'corrupt', `no intact generation: ${problems.join('; ')}`);
        return undefined;
      }
      loaded = older;
    }
  }

  async #olderGeneration(
    store: SnapshotStore<Meta>,
    tried: ReadonlySet<number>,
  ): Promise<{ generation: number; data: Meta } | undefined> {
    try {
      const inventory = await store.inspect();
      for (const g of inventory.generations) {
        if (!g.ok || tried.has(g.generation)) continue;
        return await store.load({ generation: g.generation });
      }
    } catch {
      // nothing older that can be read
    }
    return undefined;
  }

  /**
   * A handle for `meta`, or undefined when it is not a valid entry of `key` or its body is missing or of
   * the wrong size (a wrong-size body is quarantined and reported; `problems` gets a line either way).
   */
  async #handle(key: string, meta: Meta, problems: string[]): Promise<CacheEntryHandle | undefined> {
    if (!validMeta(meta) || meta.key !== key) {
      problems.push('entry metadata does not decode or belongs to another key');
      return undefined;
    }
    const dir = this.entryDir(key);
    const path = join(dir, meta.body.file);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (error) {
      problems.push(`${path}: body file unreadable (${messageOf(error)})`);
      return undefined;
    }
    if (size !== meta.body.bytes) {
      const to = await this.#quarantineBody(dir, meta.body.file);
      const detail = `${path}: length-mismatch (expected ${meta.body.bytes} bytes, found ${size})`;
      problems.push(detail);
      this.#problem(
        'read',
        key,
        'corrupt',
        `${detail}; ${to === undefined ? 'left in place' : 'quarantined'}`,
        path,
      );
      return undefined;
    }
    const expected = meta.body;
    const read = (): AsyncIterable<Buffer> => this.#readBody(key, dir, expected);
    return { key, url: meta.url, policy: meta.policy, size, read };
  }

  async *#readBody(key: string, dir: string, body: Meta['body']): AsyncGenerator<Buffer> {
    const path = join(dir, body.file);
    const hash = createHash('sha256');
    let total = 0;
    for await (const chunk of createReadStream(path, {
      highWaterMark: READ_CHUNK,
    }) as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > body.bytes) break;
      hash.update(chunk);
      yield chunk;
    }
    if (total === body.bytes && hash.digest('hex') === body.sha256) return;
    const to = await this.#quarantineBody(dir, body.file);
    this.#problem(
      'read',
      key,
      'corrupt',
      `${path}: checksum-mismatch (SHA-256 of the body does not match its metadata); ${to === undefined ? 'left in place' : 'quarantined'}`,
      path,
    );
    this.#problem('read', key, 'corrupt', `no intact body for ${key}`);
    throw new BodyMismatch(`cached body ${path} is damaged (its SHA-256 does not match)`);
  }

  /** Moves a damaged body into `quarantine/` (one kept); returns where, or undefined if it could not. */
  async #quarantineBody(dir: string, file: string): Promise<string | undefined> {
    const qdir = join(dir, QUARANTINE);
    const to = join(qdir, `${file}.${Date.now()}`);
    try {
      await mkdir(qdir, { recursive: true, mode: 0o700 });
      await rename(join(dir, file), to);
    } catch {
      return undefined;
    }
    const old = (await listOrEmpty(qdir)).filter((n) => QUARANTINED_BODY.test(n)).sort();
    for (const n of old.slice(0, -1)) await unlink(join(qdir, n)).catch(() => {});
    return to;
  }

  async get(key: string): Promise<CachedResponse | undefined> {
    const handle = await this.open(key);
    if (handle === undefined) return undefined;
    try {
      return { key, url: handle.url, policy: handle.policy, body: await readAll(handle) };
    } catch {
      return undefined; // reported by the read
    }
  }

  // --- writing ----------------------------------------------------------------------------------------

  writer(key: string, url: string): CacheEntryWriter {
    return new DiskEntryWriter(key, this.maxBytes, {
      begin: () => this.#beginBody(key),
      publish: (tmp, bytes, sha256, policy) => this.#publish(key, url, tmp, bytes, sha256, policy),
    });
  }

  async set(entry: CachedResponse): Promise<void> {
    const w = this.writer(entry.key, entry.url);
    try {
      await w.write(entry.body);
      await w.close();
      await w.commit(entry.policy);
    } catch (error) {
      await w.abort();
      throw error;
    }
  }

  async refresh(handle: CacheEntryHandle, policy: CachePolicy.CachePolicyObject): Promise<void> {
    const dir = this.entryDir(handle.key);
    const store = this.#store(handle.key);
    const current = await store.load();
    if (!validMeta(current.data) || current.data.key !== handle.key)
      throw new Error(`no entry to refresh for ${handle.key}`);
    const saved = await store.save({ ...current.data, policy });
    await this.#pruneBodies(dir, store);
    await this.#account(handle.key, saved.bytes);
  }

  async delete(key: string): Promise<void> {
    const dir = this.entryDir(key);
    for (const file of await listOrEmpty(dir)) {
      if (file.endsWith('.snap') || BODY.test(file)) await unlink(join(dir, file)).catch(() => {});
    }
  }

  /** Opens a temp file for a new body of `key` (directories 0700), sweeping what dead writers left. */
  async #beginBody(key: string): Promise<{ tmp: string; handle: FileHandle }> {
    await this.#prepare();
    const dir = this.entryDir(key);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await this.#sweepTemps(dir);
    const tmp = join(dir, `.body.${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
    return { tmp, handle: await open(tmp, 'wx', 0o600) };
  }

  async #publish(
    key: string,
    url: string,
    tmp: string,
    bytes: number,
    sha256: string,
    policy: CachePolicy.CachePolicyObject,
  ): Promise<void> {
    const dir = this.entryDir(key);
    const file = `body-${sha256}`;
    const target = join(dir, file);
    try {
      try {
        await link(tmp, target);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        // a file of that name holds these bytes already, unless it was damaged: then replace it
        if (code === 'EEXIST') {
          const existing = await stat(target).catch(() => undefined);
          if (existing?.size !== bytes) await rename(tmp, target);
        } else if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
          await rename(tmp, target); // no hard links here: rename is atomic too
        } else throw error;
      }
    } finally {
      await unlink(tmp).catch(() => {});
    }
    await fsyncDir(dir);
    const store = this.#store(key);
    const saved = await store.save({ v: FORMAT, key, url, policy, body: { file, bytes, sha256 } });
    await this.#pruneBodies(dir, store);
    await this.#account(key, saved.bytes + bytes);
  }

  /** Removes body files no kept generation names (once they are old enough: see {@link ORPHAN_GRACE_MS}). */
  async #pruneBodies(dir: string, store: SnapshotStore<Meta>): Promise<void> {
    const names = await listOrEmpty(dir);
    const bodies = names.filter((n) => BODY.test(n));
    if (bodies.length <= 1) return;
    const referenced = new Set<string>();
    try {
      for (const g of (await store.inspect()).generations) {
        if (!g.ok) continue;
        const meta = (await store.load({ generation: g.generation })).data;
        if (validMeta(meta)) referenced.add(meta.body.file);
      }
    } catch {
      return; // not sure what is referenced: keep everything
    }
    const now = Date.now();
    for (const name of bodies) {
      if (referenced.has(name)) continue;
      const path = join(dir, name);
      const s = await stat(path).catch(() => undefined);
      if (s !== undefined && now - s.mtimeMs > ORPHAN_GRACE_MS) await unlink(path).catch(() => {});
    }
  }

  /** Removes body temp files whose writer process is gone, or that are older than the grace period. */
  async #sweepTemps(dir: string): Promise<void> {
    const now = Date.now();
    for (const name of await listOrEmpty(dir)) {
      const m = BODY_TEMP.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      const path = join(dir, name);
      let stale = pid !== process.pid && !isAlive(pid);
      if (!stale) {
        const s = await stat(path).catch(() => undefined);
        stale = s !== undefined && now - s.mtimeMs > 10 * ORPHAN_GRACE_MS;
      }
      if (stale) await unlink(path).catch(() => {});
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
    const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(usage), { mode: 0o600 });
      await rename(tmp, path);
    } catch (error) {
      await unlink(tmp).catch(() => {});
      throw error;
    }
  }

  /**
   * The full scan: sums the files of every entry (metadata and bodies) and, past `maxBytes`, removes whole
   * entries, least recently written first, down to {@link LOW_WATER} of it (never the entry just written,
   * unless it alone is too large), so the next scans are a tenth of the bound's worth of writes away.
   * Returns the total kept.
   */
  async #evict(keep: string): Promise<number> {
    const keepDir = this.entryDir(keep);
    const entries: { dir: string; size: number; mtimeMs: number; mine: boolean }[] = [];
    for (const shard of await listOrEmpty(this.#entriesDir)) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      const shardDir = join(this.#entriesDir, shard);
      const keys = await listOrEmpty(shardDir);
      await Promise.all(
        keys.map(async (hash) => {
          const dir = join(shardDir, hash);
          let size = 0;
          let mtimeMs = 0;
          for (const file of await listOrEmpty(dir)) {
            if (!file.endsWith('.snap') && !BODY.test(file)) continue;
            try {
              const s = await stat(join(dir, file));
              size += s.size;
              if (file.endsWith('.snap')) mtimeMs = Math.max(mtimeMs, s.mtimeMs);
            } catch {
              // removed meanwhile
            }
          }
          if (size > 0) entries.push({ dir, size, mtimeMs, mine: dir === keepDir });
        }),
      );
    }
    let total = entries.reduce((sum, e) => sum + e.size, 0);
    if (total <= this.maxBytes) return total;
    const target = Math.floor(this.maxBytes * LOW_WATER);
    entries.sort((a, b) => Number(a.mine) - Number(b.mine) || a.mtimeMs - b.mtimeMs);
    for (const e of entries) {
      if (total <= target) break;
      try {
        // the entry's files, then its directory (which stays if a writer is using it right now)
        for (const file of await listOrEmpty(e.dir)) {
          if (file.endsWith('.snap') || BODY.test(file)) await unlink(join(e.dir, file));
        }
        total -= e.size;
        if (!e.mine) await rm(join(e.dir, QUARANTINE), { recursive: true, force: true });
        if (!e.mine) await rmdir(e.dir).catch(() => {});
      } catch (error) {
        this.#problem('evict', keep, 'error', messageOf(error));
      }
    }
    return total;
  }
}

/** What {@link DiskEntryWriter} needs from its store. */
interface WriterHost {
  begin(): Promise<{ tmp: string; handle: FileHandle }>;
  publish(tmp: string, bytes: number, sha256: string, policy: CachePolicy.CachePolicyObject): Promise<void>;
}

/**
 * One body on its way to disk: a temp file opened on the first write (or at `close` for an empty body),
 * hashed as it is written. Past the store's `maxBytes` it gives up (the temp file is removed, later writes
 * are ignored and `commit` stores nothing): a body that cannot be kept costs no disk.
 */
class DiskEntryWriter implements CacheEntryWriter {
  #file: Promise<{ tmp: string; handle: FileHandle }> | undefined;
  readonly #hash = createHash('sha256');
  #bytes = 0;
  #dropped = false;
  #closed = false;
  #done = false;

  constructor(
    readonly key: string,
    readonly maxBytes: number,
    readonly host: WriterHost,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    if (this.#dropped || this.#done) return;
    if (this.#bytes + chunk.length > this.maxBytes) {
      await this.#drop();
      return;
    }
    const { handle } = await (this.#file ??= this.host.begin());
    for (let offset = 0; offset < chunk.length;) {
      const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
      if (!(bytesWritten > 0))
        throw new Error(`cache write made no progress at byte ${this.#bytes + offset}`);
      offset += bytesWritten;
    }
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
  }

  async close(): Promise<void> {
    if (this.#dropped || this.#done || this.#closed) return;
    const { handle } = await (this.#file ??= this.host.begin());
    await handle.sync();
    await handle.close();
    this.#closed = true;
  }

  async commit(policy: CachePolicy.CachePolicyObject): Promise<void> {
    if (this.#dropped || this.#done) return;
    if (!this.#closed) await this.close();
    this.#done = true;
    const { tmp } = await this.#file!;
    await this.host.publish(tmp, this.#bytes, this.#hash.digest('hex'), policy);
  }

  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await this.#release();
  }

  async #drop(): Promise<void> {
    this.#dropped = true;
    await this.#release();
  }

  async #release(): Promise<void> {
    const file = this.#file;
    if (file === undefined) return;
    try {
      const { tmp, handle } = await file;
      if (!this.#closed) await handle.close().catch(() => {});
      await unlink(tmp).catch(() => {});
    } catch {
      // the temp file was never created
    }
  }
}

function validMeta(meta: unknown): meta is Meta {
  const m = meta as Partial<Meta> | null;
  return (
    typeof m === 'object' &&
    m !== null &&
    m.v === FORMAT &&
    typeof m.key === 'string' &&
    typeof m.url === 'string' &&
    typeof m.policy === 'object' &&
    m.policy !== null &&
    typeof m.body === 'object' &&
    m.body !== null &&
    typeof m.body.file === 'string' &&
    BODY.test(m.body.file) &&
    m.body.file === `body-${m.body.sha256}` &&
    Number.isSafeInteger(m.body.bytes) &&
    m.body.bytes >= 0
  );
}

async function listOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** fsync(2) of a directory, so the names created in it survive a power loss (best effort). */
async function fsyncDir(dir: string): Promise<void> {
  try {
    const h = await open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // some file systems cannot fsync a directory: the link itself is atomic
  }
}

/** Whether a process with this id exists on this host. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
