/**
 * Results to stdout: NDJSON (one complete line per URL, written in batches of whole lines) or, with
 * `--json`, one document at the end. A closed stdout (EPIPE) is noticed, not thrown.
 */
import type { Writable } from 'node:stream';
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

/** Version of the `--json` document layout. */
export const SCHEMA_VERSION = 1;

export function toRecord(r: FetchResult): ResultRecord {
  return {
    index: r.index,
    url: r.url,
    host: r.host,
    ok: r.ok,
    status: r.status,
    bytes: r.bytes,
    durationMs: Math.round(r.durationMs * 100) / 100,
    attempts: r.attempts,
    errorCode: r.errorCode,
    error: r.error,
  };
}

/** Bytes of NDJSON gathered before a write. */
const BATCH_CHARS = 16 * 1024;

export class ResultWriter {
  readonly #out: Writable;
  readonly #json: boolean;
  readonly #records: ResultRecord[] = [];
  #pending = '';
  #scheduled = false;
  #broken = false;
  #onBroken: (() => void) | undefined;

  constructor(out: Writable, json: boolean, onBroken?: () => void) {
    this.#out = out;
    this.#json = json;
    this.#onBroken = onBroken;
    out.on('error', this.#onError);
  }

  /** True once stdout failed (EPIPE: the reader went away). Nothing more is written then. */
  get broken(): boolean {
    return this.#broken;
  }

  readonly #onError = (error: NodeJS.ErrnoException): void => {
    if (this.#broken) return;
    this.#broken = true;
    this.#pending = '';
    const notify = this.#onBroken;
    this.#onBroken = undefined;
    notify?.();
    void error;
  };

  /**
   * Adds a result. Returns a promise when stdout is congested (wait for it before adding more, so a slow
   * reader slows the run instead of filling memory), otherwise undefined.
   */
  add(result: FetchResult): Promise<void> | undefined {
    if (this.#broken) return undefined;
    const record = toRecord(result);
    if (this.#json) {
      this.#records.push(record);
      return undefined;
    }
    this.#pending += JSON.stringify(record) + '\n';
    if (this.#pending.length >= BATCH_CHARS) return this.#flush();
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushLater);
    }
    return undefined;
  }

  readonly #flushLater = (): void => {
    this.#scheduled = false;
    void this.#flush();
  };

  #flush(): Promise<void> | undefined {
    if (this.#pending === '' || this.#broken) return undefined;
    const chunk = this.#pending;
    this.#pending = '';
    if (this.#out.write(chunk)) return undefined;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.#out.off('drain', done);
        this.#out.off('error', done);
        resolve();
      };
      this.#out.on('drain', done);
      this.#out.on('error', done);
    });
  }

  /** Writes what is pending (NDJSON) or the whole document (`--json`), and resolves once it is handed to the OS. */
  finish(summary: SummaryData): Promise<void> {
    if (this.#broken) return Promise.resolve();
    const text = this.#json
      ? JSON.stringify({ schemaVersion: SCHEMA_VERSION, results: this.#records, summary }) + '\n'
      : this.#pending;
    this.#pending = '';
    if (text === '') return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#out.write(text, () => resolve());
    });
  }
}
