/**
 * The file-system operations the snapshot store uses, as a small interface so tests can inject faults
 * (ENOSPC on write, EIO on fsync, a failing rename). The default is `node:fs/promises`.
 */
import * as fsp from 'node:fs/promises';

/** The part of `fs.promises.FileHandle` the store uses. */
export interface SnapshotFileHandle {
  write(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesWritten: number }>;
  /** fsync(2). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** The part of `node:fs/promises` the store uses. Errors are Node errors with a `code` (`ENOENT`, …). */
export interface SnapshotFs {
  open(path: string, flags: string | number, mode?: number): Promise<SnapshotFileHandle>;
  readFile(path: string): Promise<Buffer>;
  readdir(path: string): Promise<string[]>;
  /** Hard link: fails with `EEXIST` when `newPath` exists (how a generation is published exclusively). */
  link(existingPath: string, newPath: string): Promise<void>;
  rename(oldPath: string, newPath: string): Promise<void>;
  unlink(path: string): Promise<void>;
  mkdir(path: string, options: { recursive: true }): Promise<unknown>;
  stat(path: string): Promise<{ size: number; mtimeMs: number }>;
}

/** `node:fs/promises`. */
export const nodeSnapshotFs: SnapshotFs = Object.freeze({
  open: (path: string, flags: string | number, mode?: number) => fsp.open(path, flags, mode),
  readFile: (path: string) => fsp.readFile(path),
  readdir: (path: string) => fsp.readdir(path),
  link: (existingPath: string, newPath: string) => fsp.link(existingPath, newPath),
  rename: (oldPath: string, newPath: string) => fsp.rename(oldPath, newPath),
  unlink: (path: string) => fsp.unlink(path),
  mkdir: (path: string, options: { recursive: true }) => fsp.mkdir(path, options),
  stat: (path: string) => fsp.stat(path),
});

/** The `code` of a Node system error, or undefined. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
