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
 * The temp file, its sweep and the rename are @bulwark/cli-support's (many-requests writes the same way).
 */
import { createHash, randomBytes } from 'node:crypto';
import { write } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { STATUS_CODES } from 'node:http';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TempFile, atomicTarget, writeFully } from '@bulwark/cli-support';
import type { BodySink, ResponseHeaders } from '@bulwark/http';

const PROGRAM = 'http-get';

/** Where an {@link AtomicFile} writes: a temp file renamed over a regular target, or a spool for any other. */
type Opened =
  | { readonly kind: 'temp'; readonly file: TempFile }
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
      const where = await atomicTarget(this.#path);
      if (where.kind === 'special') {
        return { kind: 'direct', spool: new Spool(this.#prefix), target: where.target };
      }
      const file = await TempFile.create(where.target, PROGRAM, where.existing);
      if (this.#prefix !== undefined) {
        try {
          await file.write(this.#prefix);
        } catch (error) {
          await file.abort();
          throw error;
        }
      }
      return { kind: 'temp', file };
    })();
    return this.#opened;
  }

  async write(chunk: Buffer): Promise<void> {
    const opened = await this.#open();
    if (opened.kind === 'direct') await opened.spool.write(chunk);
    else await opened.file.write(chunk);
  }

  /** The body is complete: make its bytes durable (the file is not visible yet). */
  async close(): Promise<void> {
    const opened = await this.#open();
    if (this.#closed) return;
    this.#closed = true;
    if (opened.kind === 'direct') return;
    await opened.file.close();
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
    await opened.file.commit();
    return opened.file.target;
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
      await opened.file.abort();
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
