/**
 * Results out: NDJSON (one complete line per URL, written in batches of whole lines) or, with `--json`,
 * one document at the end — to stdout, or to `--output FILE` through a temp file renamed over FILE at the
 * end (every line in it complete, also after Ctrl-C). A reader that went away (EPIPE) is told apart from
 * every other write failure (a full disk, an I/O error): the first is quiet, the second an error.
 *
 * The temp file is @bulwark/cli-support's, as http-get's: temp names `.<name>.many-requests.<pid>.<12
 * hex>.tmp` beside the file a path really names (a symlink is followed), an existing file's mode kept,
 * and each run removes such files whose process is gone.
 */
import { write } from 'node:fs';
import { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { hidePasswords } from '@bulwark/cli-support';
import type { FetchResult } from '@bulwark/http';
import type { SummaryData } from './summary.js';

/** The JSON shape of one result (fixed key order; absent fields are left out). */
export interface ResultRecord {
  index: number;
  url: string;
  host: string;
  ok: boolean;
  status?: number;
  bytes: number;
  durationMs: number;
  attempts: number;
  errorCode?: string;
  error?: string;
}

/** Version of the `--json` document layout: 2 since it carries `exitCode` (camelCase, like http-get's). */
export const SCHEMA_VERSION = 2;

export function toRecord(r: FetchResult): ResultRecord {
  return {
    index: r.index,
    url: hidePasswords(r.url),
    host: r.host,
    ok: r.ok,
    status: r.status,
    bytes: r.bytes,
    durationMs: Math.round(r.durationMs * 100) / 100,
    attempts: r.attempts,
    errorCode: r.errorCode,
    error: r.error === undefined ? undefined : hidePasswords(r.error),
  };
}

// --- results ----------------------------------------------------------------------------------------

/** Bytes of NDJSON gathered before a write. */
const BATCH_CHARS = 16 * 1024;

/** How writing the results ended. */
export type WriteFailure =
  { readonly kind: 'epipe' } | { readonly kind: 'error'; readonly error: NodeJS.ErrnoException };

export class ResultWriter {
  readonly #out: Writable;
  readonly #json: boolean;
  readonly #records: ResultRecord[] = [];
  #pending = '';
  #scheduled = false;
  #failure: WriteFailure | undefined;
  #onFailure: (() => void) | undefined;
  /** Settles once the output has taken everything handed to it so far (the last write's callback). */
  #written: Promise<void> = Promise.resolve();
  /** Pending while the output is congested (a write returned false and 'drain' has not come yet). */
  #congested: Promise<void> | undefined;

  /** `onFailure` is called once when a write fails (the run should stop). */
  constructor(out: Writable, json: boolean, onFailure?: () => void) {
    this.#out = out;
    this.#json = json;
    this.#onFailure = onFailure;
    out.on('error', this.#fail);
  }

  /** Set once a write failed: EPIPE (the reader went away) or another error. Nothing more is written. */
  get failure(): WriteFailure | undefined {
    return this.#failure;
  }

  readonly #fail = (error: NodeJS.ErrnoException): void => {
    if (this.#failure !== undefined) return;
    this.#failure = error.code === 'EPIPE' ? { kind: 'epipe' } : { kind: 'error', error };
    this.#pending = '';
    const notify = this.#onFailure;
    this.#onFailure = undefined;
    notify?.();
  };

  /**
   * Adds a result. Returns a promise while the output is congested — also by a batch written on a later
   * tick — (wait for it before adding more, so a slow reader slows the run instead of filling memory),
   * otherwise undefined.
   */
  add(result: FetchResult): Promise<void> | undefined {
    if (this.#failure !== undefined) return undefined;
    const record = toRecord(result);
    if (this.#json) {
      this.#records.push(record);
      return undefined;
    }
    this.#pending += JSON.stringify(record) + '\n';
    if (this.#pending.length >= BATCH_CHARS) this.#flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushLater);
    }
    return this.#congested;
  }

  readonly #flushLater = (): void => {
    this.#scheduled = false;
    this.#flush();
  };

  #flush(): void {
    if (this.#pending === '' || this.#failure !== undefined) return;
    const chunk = this.#pending;
    this.#pending = '';
    this.#write(chunk);
  }

  /** Hands `text` to the output; `#written` settles when it (and everything before it) was taken. */
  #write(text: string): void {
    const out = this.#out;
    const taken = new Promise<void>((resolvePromise) => {
      const accepted = out.write(text, (error) => {
        if (error) this.#fail(error as NodeJS.ErrnoException);
        resolvePromise();
      });
      if (!accepted && this.#congested === undefined) {
        this.#congested = new Promise<void>((resolveDrain) => {
          const done = (): void => {
            out.off('drain', done);
            out.off('error', done);
            this.#congested = undefined;
            resolveDrain();
          };
          out.on('drain', done);
          out.on('error', done);
        });
      }
    });
    this.#written = taken;
  }

  /**
   * Writes what is pending (NDJSON) or the whole document (`--json`, with the exit code it will end with),
   * and resolves once the output has taken every line written (or failed: see `failure`) — the process
   * may exit then without losing any.
   */
  async finish(summary: SummaryData, exitCode: number): Promise<void> {
    if (this.#failure === undefined) {
      const text = this.#json
        ? JSON.stringify({ schemaVersion: SCHEMA_VERSION, exitCode, results: this.#records, summary }) + '\n'
        : this.#pending;
      this.#pending = '';
      if (text !== '') this.#write(text);
    }
    await this.#written;
  }
}

/**
 * The stream to write results to stdout through. Node's stdout on a file or a character device is a
 * `SyncWriteStream`, which calls `write(2)` once per chunk and ignores a short count (a file at its size
 * limit, a disk filling up): the tail of a batch was lost without an error. Such a stdout is written by
 * hand, until every byte is taken or the error comes. Pipes, sockets and terminals are returned as they
 * are (libuv writes them whole).
 */
export function stdoutWritable<T extends Writable>(stdout: T): Writable {
  const fd = (stdout as { fd?: unknown }).fd;
  if (stdout instanceof Socket || typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) return stdout;
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      let offset = 0;
      const next = (): void => {
        if (offset >= chunk.length) {
          callback();
          return;
        }
        write(fd, chunk, offset, chunk.length - offset, null, (error, bytesWritten) => {
          if (error) callback(error);
          else if (!(bytesWritten > 0))
            callback(Object.assign(new Error(`write made no progress`), { code: 'EIO' }));
          else {
            offset += bytesWritten;
            next();
          }
        });
      };
      next();
    },
  });
}
