/**
 * The recovery manager: checksummed, atomic, generation-numbered snapshots on disk.
 *
 * save: serialise with a header and SHA-256 → write a temp file with a per-writer unique name in the same
 * directory (`O_CREAT|O_EXCL`, mode 0600) → fsync it → publish it under `<name>.<generation>.snap` with a
 * hard link (fails with `EEXIST` when another writer took that generation, so two processes never
 * overwrite each other: the loser re-numbers and retries) → remove the temp name → if a newer generation
 * appeared meanwhile, withdraw and re-number (numbers are never reused, even after pruning) → fsync the
 * directory → resolve. Only then is the generation acknowledged. Generations beyond `keepGenerations` are
 * pruned. File names and the protocol's steps are in files.ts; options and result types in types.ts.
 *
 * load: newest generation first; verify length, magic, version and checksum before decoding; a file that
 * fails is moved to `quarantine/` and reported (`recoveredFrom`, `onCorruption`), and the next older
 * generation is tried. None intact → {@link SnapshotCorruptError}; none at all → {@link SnapshotNotFoundError}.
 * Never an empty state in silence.
 */
import { basename, join } from 'node:path';
import {
  InvalidOptionError,
  SnapshotCorruptError,
  SnapshotNotFoundError,
  SnapshotWriteError,
} from '../errors.js';
import { EventEmitter } from '../events.js';
import * as check from '../options.js';
import {
  SnapshotFormatError,
  decodeSnapshot,
  encodeSnapshot,
  fromPayload,
  toPayload,
  type CorruptSnapshot,
  type SnapshotEncoding,
} from './format.js';
import {
  fsyncDir,
  generationsIn,
  isAlive,
  listDir,
  namePatterns,
  publish,
  quiet,
  snapshotFileName,
  tempPath,
  writeTemp,
} from './files.js';
import { errorCode, nodeSnapshotFs, type SnapshotFs } from './fs.js';
import {
  SNAPSHOT_STORE_DEFAULTS,
  type LoadedSnapshot,
  type SavedSnapshot,
  type SnapshotCallOptions,
  type SnapshotCorruptionEvent,
  type SnapshotFileInfo,
  type SnapshotInventory,
  type SnapshotLoadOptions,
  type SnapshotStore,
  type SnapshotStoreOptions,
} from './types.js';

export { snapshotFileName } from './files.js';
export { SNAPSHOT_STORE_DEFAULTS } from './types.js';
export type {
  LoadedSnapshot,
  SavedSnapshot,
  SnapshotCallOptions,
  SnapshotCorruptionEvent,
  SnapshotFileInfo,
  SnapshotInventory,
  SnapshotLoadOptions,
  SnapshotStore,
  SnapshotStoreOptions,
} from './types.js';

const MAX_PUBLISH_ATTEMPTS = 64;
const MAX_LIST_PASSES = 50;
const QUARANTINE = 'quarantine';

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}

/** Creates a snapshot store. Nothing touches the disk until the first call. */
export function createSnapshotStore<T = unknown>(options: SnapshotStoreOptions): SnapshotStore<T> {
  const o = check.optionsObject('snapshotStore', options, true);
  check.knownKeys('snapshotStore', o, [
    'dir',
    'name',
    'keepGenerations',
    'keepQuarantined',
    'staleTempMs',
    'fileMode',
    'fs',
    'now',
  ]);
  const dir = check.string('snapshotStore.dir', o.dir);
  if (dir === '') throw new InvalidOptionError('snapshotStore.dir', dir, 'a directory path');
  const name = check.string('snapshotStore.name', o.name);
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(name) || name.length > 200)
    throw new InvalidOptionError(
      'snapshotStore.name',
      name,
      'letters, digits, ".", "_" or "-", not starting with "."',
    );
  const keep = check.positiveInteger(
    'snapshotStore.keepGenerations',
    o.keepGenerations ?? SNAPSHOT_STORE_DEFAULTS.keepGenerations,
  );
  const keepQuarantined = check.number(
    'snapshotStore.keepQuarantined',
    o.keepQuarantined ?? SNAPSHOT_STORE_DEFAULTS.keepQuarantined,
    { min: 0, integer: true },
  );
  const staleTempMs = check.nonNegativeMs(
    'snapshotStore.staleTempMs',
    o.staleTempMs ?? SNAPSHOT_STORE_DEFAULTS.staleTempMs,
  );
  const fileMode = check.number('snapshotStore.fileMode', o.fileMode ?? SNAPSHOT_STORE_DEFAULTS.fileMode, {
    min: 0,
    max: 0o777,
    integer: true,
  });
  const fs: SnapshotFs = o.fs ?? nodeSnapshotFs;
  if (typeof fs !== 'object' || fs === null)
    throw new InvalidOptionError('snapshotStore.fs', fs, 'a SnapshotFs object');
  const now = o.now === undefined ? Date.now : check.fn<() => number>('snapshotStore.now', o.now);

  const { live: GEN, quarantined: QGEN, temp: TMP } = namePatterns(name);
  const qdir = join(dir, QUARANTINE);
  const corruption = new EventEmitter<SnapshotCorruptionEvent>();
  let tail: Promise<unknown> = Promise.resolve();
  let lastGeneration = 0;
  let swept = false;

  const pathOf = (generation: number): string => join(dir, snapshotFileName(name, generation));

  const list = (path: string): Promise<string[]> => listDir(fs, path);

  async function highestGeneration(): Promise<number> {
    const [live, quarantined] = await Promise.all([list(dir), list(qdir)]);
    return Math.max(0, ...generationsIn(live, GEN), ...generationsIn(quarantined, QGEN));
  }

  async function sweepTemps(): Promise<void> {
    for (const n of await list(dir)) {
      const m = TMP.exec(n);
      if (!m) continue;
      const pid = Number(m[1]);
      const path = join(dir, n);
      let stale = pid !== process.pid && !isAlive(pid);
      if (!stale) {
        try {
          stale = now() - (await fs.stat(path)).mtimeMs > staleTempMs;
        } catch {
          continue;
        }
      }
      if (stale) await quiet(fs.unlink(path));
    }
  }

  async function prune(): Promise<void> {
    const gens = generationsIn(await list(dir), GEN);
    for (const g of gens.slice(keep)) await quiet(fs.unlink(pathOf(g)));
  }

  async function doSave(
    encoding: SnapshotEncoding,
    payload: Uint8Array,
    signal: AbortSignal | undefined,
  ): Promise<SavedSnapshot> {
    throwIfAborted(signal);
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (error) {
      throw new SnapshotWriteError(dir, 'open', error);
    }
    if (!swept) {
      // housekeeping once per store: what a crashed writer left (temp files, generations not yet pruned)
      swept = true;
      await quiet(sweepTemps());
      await quiet(prune());
    }
    let generation: number;
    try {
      generation = Math.max(lastGeneration, await highestGeneration()) + 1;
    } catch (error) {
      throw new SnapshotWriteError(dir, 'open', error);
    }
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal);
      if (generation > Number.MAX_SAFE_INTEGER)
        throw new SnapshotWriteError(dir, 'serialize', new RangeError('generation overflow'));
      const createdAt = Math.floor(now());
      const bytes = encodeSnapshot(generation, createdAt, encoding, payload);
      const tmp = tempPath(dir, name, generation);
      await writeTemp(fs, tmp, bytes, fileMode);
      const target = pathOf(generation);
      let published: boolean;
      try {
        throwIfAborted(signal);
        published = await publish(fs, tmp, target);
      } finally {
        await quiet(fs.unlink(tmp));
      }
      // Another writer may have published newer generations while this one was being written, and
      // pruned older ones: then this number may be one that existed before (and was pruned). Withdraw it
      // and take a number above every existing one, so generations are never reused and the save that
      // is acknowledged is the newest when it is acknowledged.
      const newest = published ? await highestGeneration().catch(() => generation) : generation;
      if (published && newest > generation) {
        await quiet(fs.unlink(target));
        published = false;
      }
      if (!published) {
        if (attempt >= MAX_PUBLISH_ATTEMPTS)
          throw new SnapshotWriteError(
            target,
            'publish',
            new Error(`${attempt} generations taken by other writers`),
          );
        generation = Math.max(generation, newest, await highestGeneration().catch(() => 0)) + 1;
        continue;
      }
      try {
        await fsyncDir(fs, dir);
      } catch (error) {
        // not durable: withdraw it so the previous generation stays the newest
        await quiet(fs.unlink(target));
        throw new SnapshotWriteError(dir, 'fsync-dir', error);
      }
      lastGeneration = generation;
      await quiet(prune());
      return { generation, path: target, bytes: bytes.length, createdAt };
    }
  }

  async function quarantine(
    path: string,
    generation: number,
    error: SnapshotFormatError,
  ): Promise<CorruptSnapshot> {
    const base = { generation, path, reason: error.reason, detail: error.detail };
    // A file from a newer format version is not damaged: leave it for the code that can read it.
    if (error.reason === 'unsupported-version') return base;
    const to = join(qdir, basename(path));
    try {
      await fs.mkdir(qdir, { recursive: true });
      await fs.rename(path, to);
    } catch (e) {
      if (errorCode(e) !== 'ENOENT') return base; // could not move it: report it in place
    }
    const kept = generationsIn(await list(qdir).catch(() => []), QGEN);
    for (const g of kept.slice(keepQuarantined))
      await quiet(fs.unlink(join(qdir, snapshotFileName(name, g))));
    return { ...base, quarantinedTo: to };
  }

  async function load(opts: SnapshotLoadOptions = {}): Promise<LoadedSnapshot<T>> {
    const { signal, generation: wanted } = opts;
    if (wanted !== undefined) check.positiveInteger('load.generation', wanted);
    throwIfAborted(signal);
    const corrupt: CorruptSnapshot[] = [];
    const tried = new Set<number>();
    // Concurrent writers may prune every listed file between readdir and read: list again (bounded; each
    // pass only happens when the previous one saw files vanish, i.e. writers made progress).
    for (let pass = 0; pass < MAX_LIST_PASSES; pass++) {
      let vanished = false;
      let gens = generationsIn(await list(dir), GEN).filter((g) => !tried.has(g));
      if (wanted !== undefined) gens = gens.filter((g) => g === wanted);
      for (const generation of gens) {
        throwIfAborted(signal);
        tried.add(generation);
        const path = pathOf(generation);
        let file: Buffer;
        try {
          file = await fs.readFile(path);
        } catch (error) {
          if (errorCode(error) === 'ENOENT') {
            vanished = true;
            continue;
          }
          throw error;
        }
        try {
          const decoded = decodeSnapshot(file, generation);
          const data = fromPayload(decoded.encoding, decoded.payload) as T;
          return {
            generation,
            data,
            encoding: decoded.encoding,
            createdAt: decoded.createdAt,
            path,
            bytes: file.length,
            ...(corrupt.length > 0 ? { recoveredFrom: corrupt } : {}),
          };
        } catch (error) {
          if (!(error instanceof SnapshotFormatError)) throw error;
          const report = await quarantine(path, generation, error);
          corrupt.push(report);
          if (corruption.active) corruption.emit({ ...report, dir, name });
        }
      }
      if (!vanished) break;
    }
    if (corrupt.length === 0) throw new SnapshotNotFoundError(dir, name, wanted);
    throw new SnapshotCorruptError(dir, name, corrupt);
  }

  async function inspect(opts: SnapshotCallOptions = {}): Promise<SnapshotInventory> {
    throwIfAborted(opts.signal);
    const names = await list(dir);
    const generations: SnapshotFileInfo[] = [];
    for (const generation of generationsIn(names, GEN)) {
      throwIfAborted(opts.signal);
      const path = pathOf(generation);
      let file: Buffer;
      try {
        file = await fs.readFile(path);
      } catch (error) {
        if (errorCode(error) === 'ENOENT') continue;
        throw error;
      }
      try {
        const d = decodeSnapshot(file, generation);
        fromPayload(d.encoding, d.payload);
        generations.push({
          generation,
          path,
          bytes: file.length,
          ok: true,
          createdAt: d.createdAt,
          encoding: d.encoding,
        });
      } catch (error) {
        if (!(error instanceof SnapshotFormatError)) throw error;
        generations.push({
          generation,
          path,
          bytes: file.length,
          ok: false,
          reason: error.reason,
          detail: error.detail,
        });
      }
    }
    return {
      generations,
      quarantined: (await list(qdir)).filter((n) => QGEN.test(n)).map((n) => join(qdir, n)),
      tempFiles: names.filter((n) => TMP.test(n)).map((n) => join(dir, n)),
    };
  }

  return {
    dir,
    name,
    save(data, opts = {}) {
      const { signal } = opts;
      if (signal?.aborted) return Promise.reject(signal.reason);
      let encoded: ReturnType<typeof toPayload>;
      try {
        encoded = toPayload(data);
      } catch (error) {
        return Promise.reject(new SnapshotWriteError(pathOf(lastGeneration + 1), 'serialize', error));
      }
      const run = tail.then(() => doSave(encoded.encoding, encoded.payload, signal));
      tail = run.catch(() => {});
      return signal === undefined ? run : untilAborted(run, signal);
    },
    load,
    inspect,
    onCorruption: corruption.subscribe,
  };
}

/** Settles like `promise`, or rejects with the signal's reason as soon as it aborts (the work then stops at its next step). */
function untilAborted<R>(promise: Promise<R>, signal: AbortSignal): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
