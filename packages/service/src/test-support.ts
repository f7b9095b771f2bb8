/**
 * Helpers shared by this package's tests (not a test file itself, and not exported from the package):
 * a loopback listener, an in-memory log sink, a strict Prometheus text-format parser, a raw TCP
 * connection — and, re-exported, the public test helpers of `@bulwark/service/testing` (./testing.ts).
 */
import { connect as connectSocket, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { REDIS_URL } from './testing.js';

// The helpers an app's tests need too are defined once, in the package's `testing` entry.
export {
  closeRedisForTests,
  freePort,
  REDIS_URL,
  redisForTests,
  redisReady,
  SpanCollector,
} from './testing.js';

/** Listens on 127.0.0.1, an ephemeral port; returns the base URL. */
export async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

/** A pino destination that keeps every JSON line. */
export class LogSink extends Writable {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly raw: string[] = [];
  readonly #waiters: Array<{
    match: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }> = [];

  override _write(chunk: Buffer, _encoding: string, callback: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      this.raw.push(line);
      const parsed = JSON.parse(line) as Record<string, unknown>;
      this.lines.push(parsed);
      for (let i = this.#waiters.length - 1; i >= 0; i--) {
        const w = this.#waiters[i]!;
        if (w.match(parsed)) {
          this.#waiters.splice(i, 1);
          w.resolve(parsed);
        }
      }
    }
    callback();
  }

  find(msg: string): Array<Record<string, unknown>> {
    return this.lines.filter((l) => l.msg === msg);
  }

  /** The first line (from `from` on) whose message is `msg` (and that matches `match`), once it is written. */
  waitFor(
    msg: string,
    match: (l: Record<string, unknown>) => boolean = () => true,
    from = 0,
  ): Promise<Record<string, unknown>> {
    const hit = (l: Record<string, unknown>) => l.msg === msg && match(l);
    const found = this.lines.slice(from).find(hit);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.#waiters.push({ match: hit, resolve }));
  }
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

/**
 * Parses Prometheus text exposition format 0.0.4 strictly: every sample must belong to a family declared
 * by `# TYPE` (histograms: `_bucket`, `_sum`, `_count`), label syntax and escapes must be valid, values
 * must be numbers; histogram buckets must be cumulative and end in `+Inf` equal to `_count`. Throws on
 * any violation.
 */
export function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const familyOf = (sampleName: string): Family | undefined => {
    const direct = families.get(sampleName);
    if (direct) return direct;
    for (const suffix of ['_bucket', '_sum', '_count']) {
      if (sampleName.endsWith(suffix)) {
        const f = families.get(sampleName.slice(0, -suffix.length));
        if (f && (f.type === 'histogram' || f.type === 'summary')) return f;
      }
    }
    return undefined;
  };
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new Error('exposition must end with a newline');
  for (const [i, line] of lines.entries()) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) {
      const m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (!m) throw new Error(`line ${i + 1}: bad HELP: ${line}`);
      const f = families.get(m[1]!) ?? { name: m[1]!, type: 'untyped', help: '', samples: [] };
      f.help = m[2]!;
      families.set(f.name, f);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (!m) throw new Error(`line ${i + 1}: bad TYPE: ${line}`);
      const f = families.get(m[1]!) ?? { name: m[1]!, type: 'untyped', help: '', samples: [] };
      if (f.samples.length > 0) throw new Error(`line ${i + 1}: TYPE after samples for ${f.name}`);
      f.type = m[2]!;
      families.set(f.name, f);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`line ${i + 1}: bad sample: ${line}`);
    const family = familyOf(m[1]!);
    if (!family) throw new Error(`line ${i + 1}: sample ${m[1]} has no TYPE`);
    const value = parseValue(m[4]!);
    // Prometheus parses values with Go's ParseFloat: NaN in any case is valid (prom-client writes `Nan`).
    if (Number.isNaN(value) && m[4]!.toLowerCase() !== 'nan')
      throw new Error(`line ${i + 1}: bad value ${m[4]}`);
    family.samples.push({ name: m[1]!, labels: parseLabels(m[3] ?? '', i + 1), value });
  }
  for (const f of families.values()) {
    if (f.type === 'counter') {
      for (const s of f.samples) if (s.value < 0) throw new Error(`counter ${s.name} is negative`);
    }
    if (f.type === 'histogram') checkHistogram(f);
  }
  return families;
}

function parseValue(raw: string): number {
  if (raw === '+Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  if (raw.toLowerCase() === 'nan') return NaN;
  return Number(raw);
}

function parseLabels(text: string, line: number): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length > 0) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,?)/.exec(rest);
    if (!m) throw new Error(`line ${line}: bad labels {${text}}`);
    if (m[1]! in labels) throw new Error(`line ${line}: duplicate label ${m[1]}`);
    labels[m[1]!] = m[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    rest = rest.slice(m[0].length);
    if (m[3] === '' && rest.length > 0) throw new Error(`line ${line}: missing comma in {${text}}`);
  }
  return labels;
}

function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: Array<[number, number]>; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`${s.name} without le`);
      entry.buckets.push([parseValue(le), s.value]);
    } else if (s.name.endsWith('_count')) entry.count = s.value;
    else if (s.name.endsWith('_sum')) entry.sum = s.value;
  }
  for (const [key, e] of series) {
    const sorted = [...e.buckets].sort((a, b) => a[0] - b[0]);
    const last = sorted.at(-1);
    if (!last || last[0] !== Infinity) throw new Error(`${f.name}${key}: no +Inf bucket`);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]![1] < sorted[i - 1]![1]) throw new Error(`${f.name}${key}: buckets not cumulative`);
    }
    if (e.count === undefined || e.sum === undefined)
      throw new Error(`${f.name}${key}: missing _count or _sum`);
    if (last[1] !== e.count) throw new Error(`${f.name}${key}: +Inf bucket ${last[1]} != count ${e.count}`);
  }
}

/** The value of the one sample of `name` whose labels include `labels` (0 when absent). */
export function sampleValue(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return 0;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs every cleanup step of an `after` hook even when one fails (a Redis that stopped answering fails
 * the first command; the clients must still be closed, or the file never ends), then throws the first
 * failure, saying that Redis stopped answering when it did.
 */
export async function cleanUp(...steps: Array<() => unknown>): Promise<void> {
  const failures: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      failures.push(error);
    }
  }
  if (failures.length === 0) return;
  const first = failures[0] as Error;
  if (/timed out/i.test(String(first?.message)))
    throw new Error(
      `Redis at ${REDIS_URL.replace(/\/\/[^@/]*@/, '//***@')} stopped answering during the tests (${first.message}): ` +
        'is it paused, overloaded or not a Redis? The Redis tests need a Redis that answers.',
      { cause: first },
    );
  throw first;
}

/** Resolves with the next value `subscribe` delivers that matches `match`, then unsubscribes. */
export function nextEvent<T>(
  subscribe: (listener: (event: T) => void) => { dispose(): void },
  match: (event: T) => boolean = () => true,
): Promise<T> {
  return new Promise((resolve) => {
    const sub = subscribe((event) => {
      if (!match(event)) return;
      sub.dispose();
      resolve(event);
    });
  });
}

/**
 * One raw TCP connection for HTTP/1.1 tests that need control a client library does not give: write any
 * bytes at any time, reset, and see exactly what came back and when the server closed.
 */
export class RawConnection {
  readonly socket: Socket;
  /** Everything received so far, as latin1 text. */
  received = '';
  /** Resolves once the socket is closed (by either side). */
  readonly closed: Promise<void>;
  readonly #waiters: Array<{ test: (s: string) => boolean; resolve: () => void }> = [];

  constructor(port: number, host = '127.0.0.1') {
    this.socket = connectSocket(port, host);
    this.socket.on('data', (chunk: Buffer) => {
      this.received += chunk.toString('latin1');
      for (let i = this.#waiters.length - 1; i >= 0; i--) {
        const w = this.#waiters[i]!;
        if (w.test(this.received)) {
          this.#waiters.splice(i, 1);
          w.resolve();
        }
      }
    });
    this.socket.on('error', () => {});
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  /** Resolves once the socket is connected. */
  ready(): Promise<void> {
    if (!this.socket.connecting) return Promise.resolve();
    return new Promise((resolve) => this.socket.once('connect', () => resolve()));
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Resolves once what was received satisfies `test` (at once if it already does), or the socket closed. */
  until(test: (received: string) => boolean): Promise<void> {
    if (test(this.received)) return Promise.resolve();
    return Promise.race([new Promise<void>((resolve) => this.#waiters.push({ test, resolve })), this.closed]);
  }

  /** Resolves once a complete response head has arrived (or the socket closed); the status code, or 0. */
  async status(): Promise<number> {
    await this.until((r) => r.includes('\r\n\r\n'));
    const m = /^HTTP\/1\.1 (\d{3})/.exec(this.received);
    return m ? Number(m[1]) : 0;
  }

  /** Closes with a FIN. */
  end(): void {
    this.socket.end();
  }

  /** Closes with a TCP RST (unread data is dropped on both sides). */
  reset(): void {
    this.socket.resetAndDestroy();
  }
}
