/**
 * The snapshot store's options, results and interface (the factory is in snapshot-store.ts).
 */
import type { Subscribe } from '../events.js';
import type { CorruptReason, CorruptSnapshot, SnapshotEncoding } from './format.js';
import type { SnapshotFs } from './fs.js';

export interface SnapshotStoreOptions {
  /** Directory of the generation files; created on the first save. Required. */
  dir: string;
  /** Base name of the files (`<name>.<generation>.snap`): letters, digits, `.`, `_`, `-`. Required. */
  name: string;
  /** Generations kept after each save; older ones are deleted. @default 3 */
  keepGenerations?: number;
  /** Corrupt files kept in `<dir>/quarantine/`; older ones are deleted. @default 3 */
  keepQuarantined?: number;
  /** A temp file whose writer process is gone, or older than this, is removed by the next save. @default 600000 */
  staleTempMs?: number;
  /** Mode of new snapshot files. @default 0o600 */
  fileMode?: number;
  /** File-system operations (inject faults in tests). @default node:fs/promises */
  fs?: SnapshotFs;
  /** Wall-clock time, ms since the Unix epoch: `createdAt` and temp-file age. @default Date.now */
  now?: () => number;
}

export const SNAPSHOT_STORE_DEFAULTS = Object.freeze({
  keepGenerations: 3,
  keepQuarantined: 3,
  staleTempMs: 600_000,
  fileMode: 0o600,
});

/** What a successful save wrote. */
export interface SavedSnapshot {
  readonly generation: number;
  readonly path: string;
  /** File size, header included. */
  readonly bytes: number;
  /** ms since the Unix epoch, as stored in the header. */
  readonly createdAt: number;
}

/** What `load()` returned. */
export interface LoadedSnapshot<T> {
  readonly generation: number;
  /** A `Buffer` for bytes, a string for strings, the parsed value for JSON. */
  readonly data: T;
  readonly encoding: SnapshotEncoding;
  readonly createdAt: number;
  readonly path: string;
  readonly bytes: number;
  /** Present only when newer generations failed verification and this one was the fallback. */
  readonly recoveredFrom?: readonly CorruptSnapshot[];
}

/** One file of a store, as `inspect()` sees it (nothing is moved or deleted). */
export interface SnapshotFileInfo {
  readonly generation: number;
  readonly path: string;
  readonly bytes: number;
  readonly ok: boolean;
  readonly createdAt?: number;
  readonly encoding?: SnapshotEncoding;
  readonly reason?: CorruptReason;
  readonly detail?: string;
}

export interface SnapshotInventory {
  /** Generation files, newest first, each verified. */
  readonly generations: readonly SnapshotFileInfo[];
  /** Paths of quarantined files. */
  readonly quarantined: readonly string[];
  /** Paths of temp files (a save in flight, or one that crashed). */
  readonly tempFiles: readonly string[];
}

export interface SnapshotCorruptionEvent extends CorruptSnapshot {
  readonly dir: string;
  readonly name: string;
}

export interface SnapshotCallOptions {
  signal?: AbortSignal | undefined;
}

export interface SnapshotLoadOptions extends SnapshotCallOptions {
  /** Load exactly this generation (for a rollback) instead of the newest intact one. */
  generation?: number;
}

export interface SnapshotStore<T = unknown> {
  readonly dir: string;
  readonly name: string;
  /**
   * Saves `data` (a `Uint8Array`, a string, or a JSON value) as a new generation. Resolves once it is
   * durable (file and directory fsynced). Rejects with {@link SnapshotWriteError} (previous generations
   * untouched, temp file removed) or the signal's reason. Saves from one store run one at a time.
   */
  save(data: T, options?: SnapshotCallOptions): Promise<SavedSnapshot>;
  /** The newest intact generation (or `options.generation`), quarantining corrupt files on the way. */
  load(options?: SnapshotLoadOptions): Promise<LoadedSnapshot<T>>;
  /** Lists and verifies every file without changing anything (for operators and tests). */
  inspect(options?: SnapshotCallOptions): Promise<SnapshotInventory>;
  /** A file failed verification during `load()`. */
  readonly onCorruption: Subscribe<SnapshotCorruptionEvent>;
}
