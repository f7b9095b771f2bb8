/**
 * Where the body goes, as it arrives, with memory bounded whatever its size:
 *
 * - {@link AtomicFile} (`-o FILE`): a temp file beside the real target (a symlink is followed, so the link
 *   stays and the file it names is replaced), written as the body arrives, fsynced, then renamed over
 *   the target and the directory fsynced — only once the body is complete and accepted. Readers see the
 *   old file or the whole new one, never a torn one. An existing file keeps its mode (and owner, when
 *   allowed). Temp names are `.<name>.http-get.<pid>.<12 hex>.tmp`: the next run removes those whose
 *   process is gone (a `kill -9` leaves one behind; nothing else can).
 * - {@link Spool} (stdout): the body is held — in memory up to 8 MiB, beyond that in an unlinked temp file
 *   (gone with the process, whatever kills it) — and written to stdout only once it is complete, so a cut
 *   body never reaches a pipe, and a retry or a mirror can still serve.
 * - writes to a stream report a closed reader (`EPIPE`) apart from every other failure.
 *
 * Hand-written rather than write-file-atomic: that takes the whole data at once, not a stream.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, unlinkSync, write } from 'node:fs';
import {
  access,
  lstat,
  open,
  readdir,
  readlink,
  rename,
  stat,
  unlink,
  type FileHandle,
} from 'node:fs/promises';
import { STATUS_CODES } from 'node:http';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { BodySink, ResponseHeaders } from '@bulwark/http';

/** Temp files being written, so a hard exit (second Ctrl-C) can remove them synchronously. */
const pendingTempFiles = new Set<string>();

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

/** `.<name>.http-get.<pid>.<12 hex>.tmp`: hidden, unique per writer, and it says whose it is. */
const TEMP_NAME = /^\..+\.http-get\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/**
 * A temp file beside `target` (absolute), for a rename onto it: hidden, unique per writer, ending in
 * `.tmp` (never in `.prom`: node-exporter's textfile collector ignores it).
 */
export function tempPathFor(target: string): string {
  return join(
    dirname(target),
    `.${basename(target)}.http-get.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
  );
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

/**
 * Removes http-get temp files in `dir` whose writer process is gone (a `kill -9` mid-write); returns
 * their names. Best effort: a directory that cannot be listed is left alone.
 */
export async function sweepTempFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || isAlive(pid)) continue;
    try {
      await unlink(join(dir, name));
      removed.push(name);
    } catch {
      // removed meanwhile, or not ours to remove
    }
  }
  return removed;
}

/**
 * Refuses to replace an existing file this user may not write (mode 0400, a read-only file system), as
 * `>`, curl and wget do: the temp file and rename need only the directory to be writable, so without this
 * check a write-protected file would be replaced.
 */
export async function assertWritable(target: string): Promise<void> {
  try {
    await access(target, constants.W_OK);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOENT') return;
    const errno = typeof code === 'string' ? code : 'EACCES';
    throw Object.assign(
      new Error(`the file exists and is not writable by this user (${errno}); left as it is`),
      {
        code: errno,
      },
    );
  }
}

/**
 * The file `path` really names: a symlink (or a chain of them) is followed to its final target, which
 * need not exist yet (`ln -s data.json latest; http-get -o latest …` writes data.json). Writing there
 * keeps the link, as curl and wget do.
 */
export async function resolveTarget(path: string): Promise<string> {
  let current = resolve(path);
  for (let hops = 0; hops < 40; hops++) {
    let isLink: boolean;
    try {
      isLink = (await lstat(current)).isSymbolicLink();
    } catch {
      return current; // does not exist (yet): the file to create
    }
    if (!isLink) return current;
    current = resolve(dirname(current), await readlink(current));
  }
  throw Object.assign(new Error(`too many levels of symbolic links: ${path}`), { code: 'ELOOP' });
}

/** fsync(2) of a directory, so a rename in it survives a power loss (best effort). */
async function fsyncDir(dir: string): Promise<void> {
  try {
    const h = await open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // some file systems cannot fsync a directory: the rename itself is atomic
  }
}

async function writeFully(handle: FileHandle, data: Uint8Array, position?: number): Promise<void> {
  for (let offset = 0; offset < data.length;) {
    const { bytesWritten } = await handle.write(
      data,
      offset,
      data.length - offset,
      position === undefined ? null : position + offset,
    );
    if (!(bytesWritten > 0)) throw new Error(`write made no progress at byte ${offset}`);
    offset += bytesWritten;
  }
}

/** Where an {@link AtomicFile} writes: a temp file renamed over a regular target, or a spool for any other. */
type Opened =
  | { readonly kind: 'temp'; readonly handle: FileHandle; readonly tmp: string; readonly target: string }
  | { readonly kind: 'direct'; readonly spool: Spool; readonly target: string };

/**
 * One attempt at writing the output file (a {@link BodySink}): opened on the first write, replaced over
 * the target by `commit()` once the body is complete. `abort()` removes the temp file.
 *
 * Only a regular file (or a path that does not exist yet) is replaced by a rename. A target that is
 * something else — a FIFO, a character device such as `/dev/null` or `/dev/stdout`, a socket — is not a
 * file to replace (renaming over `/dev/null` would put a regular file in its place): the body is held like
 * stdout's (a {@link Spool}) and written into the target, opened for writing, once it is complete. No
 * temp file is made beside it.
 */
export class AtomicFile implements BodySink {
  readonly #path: string;
  readonly #prefix: Buffer | undefined;
  #opened: Promise<Opened> | undefined;
  #closed = false;
  #done = false;

  /** `prefix` is written before the body (the header block of `-i`). */
  constructor(path: string, prefix?: Buffer) {
    this.#path = path;
    this.#prefix = prefix;
  }

  #open(): Promise<Opened> {
    this.#opened ??= (async (): Promise<Opened> => {
      // what the path names, as the kernel follows it (also /dev/stdout's /proc link, which names a pipe)
      const named = await stat(this.#path).catch(() => undefined);
      if (named !== undefined && !named.isFile() && !named.isDirectory()) {
        return { kind: 'direct', spool: new Spool(this.#prefix), target: this.#path };
      }
      const target = await resolveTarget(this.#path);
      const existing = await stat(target).catch(() => undefined);
      if (existing?.isDirectory()) {
        throw Object.assign(new Error(`is a directory: ${target}`), { code: 'EISDIR' });
      }
      if (existing !== undefined && !existing.isFile()) {
        return { kind: 'direct', spool: new Spool(this.#prefix), target };
      }
      if (existing !== undefined) await assertWritable(target);
      await sweepTempFiles(dirname(target));
      const tmp = tempPathFor(target);
      // a new file: 0666 less the umask, as any program creates one
      const handle = await open(tmp, 'wx', 0o666);
      pendingTempFiles.add(tmp);
      try {
        if (existing !== undefined) {
          // the file being replaced keeps its mode (and owner, when we may set it)
          await handle.chmod(existing.mode & 0o7777);
          await handle.chown(existing.uid, existing.gid).catch(() => {});
        }
        if (this.#prefix !== undefined) await writeFully(handle, this.#prefix);
      } catch (error) {
        await handle.close().catch(() => {});
        await unlink(tmp).catch(() => {});
        pendingTempFiles.delete(tmp);
        throw error;
      }
      return { kind: 'temp', handle, tmp, target };
    })();
    return this.#opened;
  }

  async write(chunk: Buffer): Promise<void> {
    const opened = await this.#open();
    if (opened.kind === 'direct') await opened.spool.write(chunk);
    else await writeFully(opened.handle, chunk);
  }

  /** The body is complete: make its bytes durable (the file is not visible yet). */
  async close(): Promise<void> {
    const opened = await this.#open();
    if (this.#closed) return;
    this.#closed = true;
    if (opened.kind === 'direct') return;
    await opened.handle.sync();
    await opened.handle.close();
  }

  /** Replaces the target with the complete file. Returns the path written (the symlink's target, if any). */
  async commit(): Promise<string> {
    if (!this.#closed) await this.close();
    const opened = await this.#open();
    this.#done = true;
    if (opened.kind === 'direct') {
      // a FIFO blocks here until a reader opens it, as it would for any writer
      const handle = await open(opened.target, 'w');
      try {
        await opened.spool.copyTo((data) => writeFully(handle, data));
      } finally {
        await handle.close().catch(() => {});
      }
      return opened.target;
    }
    const { tmp, target } = opened;
    await rename(tmp, target);
    pendingTempFiles.delete(tmp);
    await fsyncDir(dirname(target));
    return target;
  }

  async abort(): Promise<void> {
    if (this.#done || this.#opened === undefined) return;
    this.#done = true;
    try {
      const opened = await this.#opened;
      if (opened.kind === 'direct') {
        await opened.spool.abort();
        return;
      }
      const { handle, tmp } = opened;
      if (!this.#closed) await handle.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      pendingTempFiles.delete(tmp);
    } catch {
      // never opened
    }
  }
}

/** Bytes a {@link Spool} keeps in memory before it moves to a temp file. */
export const SPOOL_MEMORY_BYTES = 8 * 1024 * 1024;
const COPY_CHUNK = 64 * 1024;

/**
 * A body held until it is complete: in memory up to {@link SPOOL_MEMORY_BYTES}, then in a temp file
 * (in `$TMPDIR`) that is unlinked as soon as it is opened, so nothing is left on disk whatever ends the
 * process. `copyTo` writes it out afterwards.
 */
export class Spool implements BodySink {
  readonly #prefix: Buffer | undefined;
  #chunks: Buffer[] = [];
  #memory = 0;
  #file: FileHandle | undefined;
  #fileBytes = 0;
  #aborted = false;

  constructor(prefix?: Buffer) {
    this.#prefix = prefix;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.#file === undefined && this.#memory + chunk.length <= SPOOL_MEMORY_BYTES) {
      this.#chunks.push(chunk);
      this.#memory += chunk.length;
      return;
    }
    if (this.#file === undefined) {
      const path = join(tmpdir(), `.http-get-spool.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
      this.#file = await open(path, 'wx+', 0o600);
      await unlink(path); // open but nameless: freed when closed or when the process ends
      for (const c of this.#chunks) {
        await writeFully(this.#file, c, this.#fileBytes);
        this.#fileBytes += c.length;
      }
      this.#chunks = [];
      this.#memory = 0;
    }
    await writeFully(this.#file, chunk, this.#fileBytes);
    this.#fileBytes += chunk.length;
  }

  async close(): Promise<void> {}

  async abort(): Promise<void> {
    this.#aborted = true;
    this.#chunks = [];
    const file = this.#file;
    this.#file = undefined;
    await file?.close().catch(() => {});
  }

  /**
   * Writes the held body out through `write` (a stream's {@link writeAll}, or a file's) and resolves
   * `'epipe'` when the reader went away; rejects on other errors.
   */
  async copyTo(write: (data: Uint8Array) => Promise<'ok' | 'epipe' | void>): Promise<'ok' | 'epipe'> {
    if (this.#aborted) throw new Error('the spool was discarded');
    if (this.#prefix !== undefined && (await write(this.#prefix)) === 'epipe') return 'epipe';
    for (const c of this.#chunks) if ((await write(c)) === 'epipe') return 'epipe';
    const file = this.#file;
    if (file === undefined) return 'ok';
    try {
      for (let position = 0; position < this.#fileBytes;) {
        const buffer = Buffer.allocUnsafe(Math.min(COPY_CHUNK, this.#fileBytes - position));
        const { bytesRead } = await file.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) throw new Error(`the spooled body ended early at byte ${position}`);
        position += bytesRead;
        if ((await write(buffer.subarray(0, bytesRead))) === 'epipe') return 'epipe';
      }
      return 'ok';
    } finally {
      this.#file = undefined;
      await file.close().catch(() => {});
    }
  }
}

/** Counts what passes through to `inner`, and hashes it when asked (for `--json`'s `bytes` and `sha256`). */
export class HashingSink implements BodySink {
  readonly #hash: ReturnType<typeof createHash> | undefined;
  bytes = 0;

  constructor(
    readonly inner: BodySink | undefined,
    hash = true,
  ) {
    this.#hash = hash ? createHash('sha256') : undefined;
  }

  write(chunk: Buffer): void | Promise<void> {
    this.#hash?.update(chunk);
    this.bytes += chunk.length;
    return this.inner?.write(chunk);
  }

  close(): Promise<void> {
    return this.inner?.close() ?? Promise.resolve();
  }

  abort(reason: unknown): Promise<void> | void {
    return this.inner?.abort(reason);
  }

  /** Hex SHA-256 of what passed (undefined when not hashing). */
  get sha256(): string | undefined {
    return this.#hash?.copy().digest('hex');
  }
}

/** `HTTP/1.1 200 OK` and the headers, as `-i` / `-I` print them (the body follows). */
export function headerBlock(status: number, headers: ResponseHeaders): Buffer {
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`.trimEnd()];
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  }
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

/**
 * The descriptor to write `stream` through by hand, when Node's own stream would lose bytes: stdout on a
 * file or a character device is a `SyncWriteStream`, which calls `write(2)` once per chunk and ignores a
 * short count — on a file that reaches a size limit or a nearly full disk, the tail of the body was lost
 * and the run exited 0. Pipes, sockets and terminals (`net.Socket`) are written whole by libuv.
 */
function rawFd(stream: NodeJS.WritableStream): number | undefined {
  if (stream instanceof Socket) return undefined;
  const fd = (stream as { fd?: unknown }).fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}

function fsWrite(fd: number, data: Uint8Array, offset: number, length: number): Promise<number> {
  return new Promise((resolvePromise, reject) =>
    write(fd, data, offset, length, null, (error, bytesWritten) =>
      error ? reject(error) : resolvePromise(bytesWritten),
    ),
  );
}

/** `write(2)` until every byte is taken: a short count is followed by the rest (and then the error, if any). */
async function writeFd(fd: number, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length;) {
    const bytesWritten = await fsWrite(fd, data, offset, data.length - offset);
    if (!(bytesWritten > 0)) {
      throw Object.assign(new Error(`write made no progress at byte ${offset}`), { code: 'EIO' });
    }
    offset += bytesWritten;
  }
}

/**
 * Writes `data` to a stream and waits until it is flushed — every byte, or a rejection. Resolves `'epipe'`
 * when the reader went away.
 */
export function writeAll(stream: NodeJS.WritableStream, data: Uint8Array | string): Promise<'ok' | 'epipe'> {
  const fd = rawFd(stream);
  if (fd !== undefined) {
    return writeFd(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data).then(
      () => 'ok' as const,
      (error: unknown) => {
        if ((error as NodeJS.ErrnoException).code === 'EPIPE') return 'epipe' as const;
        throw error;
      },
    );
  }
  return new Promise((resolvePromise, reject) => {
    stream.write(data, (error) => {
      if (error === undefined || error === null) resolvePromise('ok');
      else if ((error as NodeJS.ErrnoException).code === 'EPIPE') resolvePromise('epipe');
      else reject(error);
    });
  });
}

/** Writes `data` to `path` atomically (temp file, fsync, rename, directory fsync). For the metrics file. */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const file = new AtomicFile(path);
  try {
    await file.write(Buffer.from(data));
    await file.commit();
  } catch (error) {
    await file.abort();
    throw error;
  }
}
