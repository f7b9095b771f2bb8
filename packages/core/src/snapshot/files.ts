/**
 * File names and the write protocol's steps, on top of the injectable {@link SnapshotFs}.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { SnapshotWriteError, type SnapshotWriteStep } from '../errors.js';
import { errorCode, type SnapshotFileHandle, type SnapshotFs } from './fs.js';

/** Link errors that mean "this file system has no hard links" (then: rename). */
const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

const pad = (generation: number): string => String(generation).padStart(16, '0');

/** `<name>.<generation, 16 digits>.snap` — zero-padded so `ls` sorts generations. */
export function snapshotFileName(name: string, generation: number): string {
  return `${name}.${pad(generation)}.snap`;
}

/** `<name>.<generation>.<pid>-<random>.tmp`: unique per writer, and tells the sweeper whose it is. */
export function tempFileName(name: string, generation: number): string {
  return `${name}.${pad(generation)}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Patterns for one store's files: generations, quarantined generations, temp files (group 1: pid). */
export function namePatterns(name: string): { live: RegExp; quarantined: RegExp; temp: RegExp } {
  const esc = escapeRegExp(name);
  return {
    live: new RegExp(`^${esc}\\.(\\d{16})\\.snap$`),
    quarantined: new RegExp(`^${esc}\\.(\\d{16})\\.snap(?:\\..*)?$`),
    temp: new RegExp(`^${esc}\\.\\d{16}\\.(\\d+)-[0-9a-f]+\\.tmp$`),
  };
}

/** The generations named in `names` that match `pattern`, newest first. */
export function generationsIn(names: readonly string[], pattern: RegExp): number[] {
  const out: number[] = [];
  for (const n of names) {
    const m = pattern.exec(n);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => b - a);
}

/** `readdir`, with a missing directory read as empty. */
export async function listDir(fs: SnapshotFs, path: string): Promise<string[]> {
  try {
    return await fs.readdir(path);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return [];
    throw error;
  }
}

/** Awaits `p` and ignores its failure (best effort: a leftover is swept or pruned later). */
export async function quiet(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch {
    // ignored on purpose
  }
}

/** Whether a process with this id exists on this host. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === 'EPERM';
  }
}

/** fsync(2) of a directory, so the names created in it survive a power loss. */
export async function fsyncDir(fs: SnapshotFs, dir: string): Promise<void> {
  if (process.platform === 'win32') return; // directories cannot be opened for fsync there
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * open(O_CREAT|O_EXCL) → write every byte → fsync → close. On failure the temp file is removed and a
 * {@link SnapshotWriteError} names the step; fsync is never retried on the same file.
 */
export async function writeTemp(fs: SnapshotFs, path: string, bytes: Buffer, mode: number): Promise<void> {
  let step: SnapshotWriteStep = 'open';
  let handle: SnapshotFileHandle | undefined;
  try {
    handle = await fs.open(path, 'wx', mode);
    step = 'write';
    for (let offset = 0; offset < bytes.length;) {
      const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset, offset);
      if (!(bytesWritten > 0)) throw new Error(`write made no progress at byte ${offset}`);
      offset += bytesWritten;
    }
    step = 'fsync';
    await handle.sync();
    step = 'close';
    const h = handle;
    handle = undefined;
    await h.close();
  } catch (error) {
    if (handle !== undefined) await quiet(handle.close());
    if (step !== 'open') await quiet(fs.unlink(path));
    throw new SnapshotWriteError(path, step, error);
  }
}

/**
 * Publishes `tmp` as `target` only if `target` does not exist yet: a hard link, which fails with EEXIST
 * (→ `false`) when another writer took the name. Without hard links: rename after checking the name is
 * free (atomic for one writer; see docs/snapshots.md).
 */
export async function publish(fs: SnapshotFs, tmp: string, target: string): Promise<boolean> {
  try {
    await fs.link(tmp, target);
    return true;
  } catch (error) {
    const code = errorCode(error);
    if (code === 'EEXIST') return false;
    if (code === undefined || !LINK_UNSUPPORTED.has(code))
      throw new SnapshotWriteError(target, 'publish', error);
  }
  try {
    await fs.stat(target);
    return false;
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw new SnapshotWriteError(target, 'publish', error);
  }
  try {
    await fs.rename(tmp, target);
    return true;
  } catch (error) {
    throw new SnapshotWriteError(target, 'publish', error);
  }
}

/** The temp-file path for a generation in `dir`. */
export const tempPath = (dir: string, name: string, generation: number): string =>
  join(dir, tempFileName(name, generation));
