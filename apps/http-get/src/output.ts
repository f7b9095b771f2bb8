/**
 * Writing the body: to a file atomically (a temp file in the same directory, fsync, rename, fsync the
 * directory — a reader sees the old file or the whole new one, never a torn one, and Ctrl-C leaves no
 * partial file), or to stdout in one write (EPIPE, e.g. `| head`, is not an error).
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/** Temp files being written, so a hard exit (second Ctrl-C) can remove them synchronously. */
export const pendingTempFiles = new Set<string>();

/** Removes every pending temp file, synchronously (for a hard exit). */
export function removePendingTempFiles(): void {
  for (const path of pendingTempFiles) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
  pendingTempFiles.clear();
}

/**
 * A temp file beside `target` (absolute), for a rename onto it: hidden, unique per writer, ending in
 * `.tmp` (never in `.prom`: node-exporter's textfile collector ignores it).
 */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Writes `data` to `path` atomically. On failure or abort the temp file is removed and `path` is untouched. */
export async function writeFileAtomic(path: string, data: Uint8Array, signal?: AbortSignal): Promise<void> {
  const target = resolve(path);
  const dir = dirname(target);
  const tmp = tempPathFor(target);
  pendingTempFiles.add(tmp);
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    signal?.throwIfAborted();
    handle = await open(tmp, 'wx', 0o666);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    signal?.throwIfAborted();
    await rename(tmp, target);
    pendingTempFiles.delete(tmp);
    await fsyncDir(dir);
  } catch (error) {
    if (handle !== undefined) await handle.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    pendingTempFiles.delete(tmp);
    throw error;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const h = await open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // best effort: the rename itself is already atomic
  }
}

/** Writes `data` to a stream and waits until it is flushed. Resolves `'epipe'` when the reader went away. */
export function writeAll(stream: NodeJS.WritableStream, data: Uint8Array | string): Promise<'ok' | 'epipe'> {
  return new Promise((resolvePromise, reject) => {
    stream.write(data, (error) => {
      if (error === undefined || error === null) resolvePromise('ok');
      else if ((error as NodeJS.ErrnoException).code === 'EPIPE') resolvePromise('epipe');
      else reject(error);
    });
  });
}
