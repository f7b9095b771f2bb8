/**
 * Atomic file replacement, as both CLIs write `-o FILE` and `--metrics-file`: a temp file beside the real
 * target (a symlink is followed, so the link stays and the file it names is replaced), written, fsynced,
 * then renamed over the target and the directory fsynced. Readers see the old file or the whole new one,
 * never a torn one. An existing file keeps its mode (and owner, when allowed).
 *
 * Temp names are `.<name>.<program>.<pid>.<12 hex>.tmp`: hidden, unique per writer, ending in `.tmp`
 * (never in `.prom`: node-exporter's textfile collector ignores it), and they say whose they are — the
 * next run of the same program removes those whose process is gone (a `kill -9` leaves one behind;
 * nothing else can: a hard exit calls {@link removePendingTempFiles}).
 *
 * Hand-written rather than write-file-atomic: that takes the whole data at once, not a stream.
 */
import { randomBytes } from 'node:crypto';
import { constants, renameSync, unlinkSync, writeFileSync, type Stats } from 'node:fs';
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
import { basename, dirname, join, resolve } from 'node:path';
import { Writable } from 'node:stream';

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

const PROGRAM = /^[a-z][a-z0-9-]*$/;

function checkProgram(program: string): string {
  if (!PROGRAM.test(program)) {
    throw new TypeError(`expected a program name of lower-case letters, digits and -; got ${program}`);
  }
  return program;
}

const tempNames = new Map<string, RegExp>();

/** `.<name>.<program>.<pid>.<12 hex>.tmp`, with the pid captured. */
function tempName(program: string): RegExp {
  let re = tempNames.get(program);
  if (re === undefined) {
    re = new RegExp(`^\\..+\\.${checkProgram(program)}\\.(\\d+)\\.[0-9a-f]{12}\\.tmp$`);
    tempNames.set(program, re);
  }
  return re;
}

/**
 * A temp file beside `target` (absolute), for a rename onto it: `.<name>.<program>.<pid>.<12 hex>.tmp`,
 * hidden, unique per writer, ending in `.tmp` (never in `.prom`: node-exporter's textfile collector
 * ignores it).
 */
export function tempPathFor(target: string, program: string): string {
  return join(
    dirname(target),
    `.${basename(target)}.${checkProgram(program)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
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
 * Removes `program`'s temp files in `dir` whose writer process is gone (a `kill -9` mid-write); returns
 * their names. Best effort: a directory that cannot be listed is left alone.
 */
export async function sweepTempFiles(dir: string, program: string): Promise<string[]> {
  const re = tempName(program);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = re.exec(name);
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

/** Writes all of `data` (at `position`, or at the file position): a short write is followed by the rest. */
export async function writeFully(handle: FileHandle, data: Uint8Array, position?: number): Promise<void> {
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

/** What a path names, for a replace: a file to replace by a rename, or something to write into. */
export type AtomicTarget =
  /** A regular file, or nothing yet (`existing` undefined): replaced by a rename. */
  | { readonly kind: 'file'; readonly target: string; readonly existing: Stats | undefined }
  /**
   * Not a file to replace — a FIFO, a character device such as `/dev/null` or `/dev/stdout`, a socket
   * (renaming over `/dev/null` would put a regular file in its place): open it and write into it.
   */
  | { readonly kind: 'special'; readonly target: string };

/** What `path` names (a symlink followed), for {@link TempFile.create}; rejects `EISDIR` for a directory. */
export async function atomicTarget(path: string): Promise<AtomicTarget> {
  // what the path names, as the kernel follows it (also /dev/stdout's /proc link, which names a pipe)
  const named = await stat(path).catch(() => undefined);
  if (named !== undefined && !named.isFile() && !named.isDirectory())
    return { kind: 'special', target: path };
  const target = await resolveTarget(path);
  const existing = await stat(target).catch(() => undefined);
  if (existing?.isDirectory()) {
    throw Object.assign(new Error(`is a directory: ${target}`), { code: 'EISDIR' });
  }
  if (existing !== undefined && !existing.isFile()) return { kind: 'special', target };
  return { kind: 'file', target, existing };
}

/**
 * A temp file beside its target, written by the caller (`handle`, {@link TempFile.writable}), made
 * durable by `close()` and renamed over the target by `commit()`; `abort()` removes it. While it exists
 * it is pending: a hard exit removes it ({@link removePendingTempFiles}).
 */
export class TempFile {
  readonly tmp: string;
  readonly target: string;
  readonly handle: FileHandle;
  #closed = false;

  private constructor(tmp: string, target: string, handle: FileHandle) {
    this.tmp = tmp;
    this.target = target;
    this.handle = handle;
  }

  /**
   * Creates the temp file for `target` (absolute, symlinks resolved; `existing` is its `stat`, if it
   * exists): refuses a write-protected file ({@link assertWritable}), sweeps the program's leftovers in
   * the directory, and creates the file 0666 less the umask — or with the existing file's mode (and owner,
   * when allowed).
   */
  static async create(target: string, program: string, existing: Stats | undefined): Promise<TempFile> {
    if (existing?.isFile()) await assertWritable(target);
    await sweepTempFiles(dirname(target), program);
    const tmp = tempPathFor(target, program);
    // a new file: 0666 less the umask, as any program creates one
    const handle = await open(tmp, 'wx', 0o666);
    pendingTempFiles.add(tmp);
    const file = new TempFile(tmp, target, handle);
    if (existing !== undefined) {
      try {
        // the file being replaced keeps its mode (and owner, when we may set it)
        await handle.chmod(existing.mode & 0o7777);
        await handle.chown(existing.uid, existing.gid).catch(() => {});
      } catch (error) {
        await file.abort();
        throw error;
      }
    }
    return file;
  }

  /**
   * The temp file for whatever `path` names (a symlink followed), to be renamed over it: a directory is
   * refused (`EISDIR`); anything else is replaced.
   */
  static async open(path: string, program: string): Promise<TempFile> {
    const target = await resolveTarget(path);
    const existing = await stat(target).catch(() => undefined);
    if (existing?.isDirectory()) {
      throw Object.assign(new Error(`is a directory: ${target}`), { code: 'EISDIR' });
    }
    return TempFile.create(target, program, existing);
  }

  /** Writes all of `data` at the file position. */
  write(data: Uint8Array): Promise<void> {
    return writeFully(this.handle, data);
  }

  /** A stream writing into the temp file (it leaves the file open: `commit` or `abort` closes it). */
  writable(): Writable {
    const handle = this.handle;
    return new Writable({
      write(chunk: Buffer, _encoding, callback) {
        writeFully(handle, chunk).then(() => callback(), callback);
      },
    });
  }

  /** The content is complete: make its bytes durable (the file is not visible yet). Once only. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.handle.sync();
    await this.handle.close();
  }

  /** fsync, close, rename over the target, fsync of the directory. */
  async commit(): Promise<void> {
    await this.close();
    await rename(this.tmp, this.target);
    pendingTempFiles.delete(this.tmp);
    await fsyncDir(dirname(this.target));
  }

  /** Closes and removes the temp file; the target is left as it was. */
  async abort(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      await this.handle.close().catch(() => {});
    }
    await unlink(this.tmp).catch(() => {});
    pendingTempFiles.delete(this.tmp);
  }
}

/**
 * Writes `data` to `path` atomically (temp file, fsync, rename, directory fsync; a symlink is followed).
 * A target that is not a regular file (a FIFO, `/dev/null`) is written into instead. For the metrics file.
 */
export async function writeFileAtomic(path: string, data: Uint8Array, program: string): Promise<void> {
  const where = await atomicTarget(path);
  if (where.kind === 'special') {
    const handle = await open(where.target, 'w');
    try {
      await writeFully(handle, data);
    } finally {
      await handle.close().catch(() => {});
    }
    return;
  }
  const file = await TempFile.create(where.target, program, where.existing);
  try {
    await file.write(data);
    await file.commit();
  } catch (error) {
    await file.abort();
    throw error;
  }
}

/**
 * The same, synchronously, for a hard exit (a second Ctrl-C): still temp file + rename, never torn.
 * Best effort: a failure leaves the previous file in place (no fsync, no symlink followed).
 */
export function writeFileAtomicSync(path: string, data: string | Uint8Array, program: string): void {
  const target = resolve(path);
  const tmp = tempPathFor(target, program);
  try {
    writeFileSync(tmp, data, { flag: 'wx', mode: 0o666 });
    renameSync(tmp, target);
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      // never created, or already renamed
    }
  }
}
