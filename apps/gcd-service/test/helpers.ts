/**
 * Test helpers: a real server on a loopback port, and a small HTTP client on undici.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { request as undiciRequest } from 'undici';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import type { ExportResult } from '@opentelemetry/core';
import { loadConfig, type GcdConfig } from '../src/config.js';
import { createGcdServer, type GcdServer, type GcdServerDeps } from '../src/server.js';

/**
 * The defaults with a free port, silent logs, and the given overrides. Two production features are
 * off unless a test turns them on (test/kit.test.ts does): the rate limit (tests send bursts from one
 * address) and load shedding (its event-loop gate rightly sheds when this shared 2-core machine is
 * saturated by other test processes or a browser, which would make functional tests flaky).
 */
export function testConfig(overrides: Partial<GcdConfig> = {}): GcdConfig {
  return {
    ...loadConfig({}),
    port: 0,
    logLevel: 'silent',
    rateLimit: undefined,
    shedding: false,
    ...overrides,
  };
}

export interface Running {
  readonly server: GcdServer;
  readonly url: string;
  close(): Promise<void>;
}

export async function start(overrides: Partial<GcdConfig> = {}, deps: GcdServerDeps = {}): Promise<Running> {
  const server = await createGcdServer(testConfig(overrides), deps);
  const url = await server.listen();
  return { server, url, close: () => server.close() };
}

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  json<T = Record<string, unknown>>(): T;
  readonly ms: number;
}

export interface Ask {
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS';
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Form fields, sent as application/x-www-form-urlencoded. */
  form?: Record<string, string | string[]>;
}

/** One request; never throws on an HTTP status. */
export async function ask(url: string, options: Ask = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  let body = options.body;
  if (options.form !== undefined) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(options.form)) {
      for (const one of Array.isArray(v) ? v : [v]) params.append(k, one);
    }
    body = params.toString();
    headers['content-type'] ??= 'application/x-www-form-urlencoded';
  }
  const started = performance.now();
  const res = await undiciRequest(url, {
    method: options.method ?? (body === undefined ? 'GET' : 'POST'),
    headers,
    body,
  });
  const text = await res.body.text();
  const ms = performance.now() - started;
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    ms,
    json<T>() {
      return JSON.parse(text) as T;
    },
  };
}

/** Like {@link ask}, but retries a 503 that carries `Retry-After` (as a well-behaved client does), up to 5 times. */
export async function askPolitely(url: string, options: Ask = {}): Promise<Answer> {
  for (let attempt = 1; ; attempt++) {
    const res = await ask(url, options);
    const retryAfter = Number(res.headers['retry-after']);
    if (res.status !== 503 || !Number.isFinite(retryAfter) || attempt === 5) return res;
    await new Promise((r) => setTimeout(r, Math.min(retryAfter, 1) * 1000));
  }
}

/** Query string for /api/gcd. */
export function q(params: Record<string, string>): string {
  return new URLSearchParams(params).toString();
}

/** Consecutive Fibonacci numbers with at least `digits` digits: Euclid's worst case. */
export function fibonacciPair(digits: number): [bigint, bigint] {
  let a = 1n;
  let b = 1n;
  const min = 10n ** BigInt(digits - 1);
  while (b < min) {
    const t = a + b;
    a = b;
    b = t;
  }
  return [b, a];
}

/**
 * An in-memory span exporter a test can wait on: {@link waitFor} resolves with the first finished span
 * that matches (at once if it already arrived). A span ends when its response closes, which may be just
 * after the client has the answer: tests wait for it instead of polling or sleeping.
 */
export class SpanCollector extends InMemorySpanExporter {
  readonly #waiters: Array<{ match: (s: ReadableSpan) => boolean; resolve: (s: ReadableSpan) => void }> = [];

  override export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    super.export(spans, done);
    for (const span of spans) {
      for (let i = this.#waiters.length - 1; i >= 0; i--) {
        const w = this.#waiters[i]!;
        if (w.match(span)) {
          this.#waiters.splice(i, 1);
          w.resolve(span);
        }
      }
    }
  }

  waitFor(match: (s: ReadableSpan) => boolean): Promise<ReadableSpan> {
    const found = this.getFinishedSpans().find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }
}

/** A process started by {@link spawnService}. */
export interface Spawned {
  readonly child: ChildProcess;
  /** The base URL from its "listening on" line. */
  readonly url: string;
  /** Every stdout line so far (JSON log lines). */
  readonly lines: string[];
  /** Resolves with the first log line whose `msg` matches (rejects if the process exits first). */
  logged(msg: string | RegExp): Promise<Record<string, unknown>>;
  /** Resolves when it exits, with its code and everything it wrote to stderr. */
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

/**
 * Spawns `command args` (the built `main.js` by default, or `npm start`) with a minimal environment and
 * `PORT=0`, and resolves once it logs "listening on <url>"; rejects (with `code` and `stderr`) if it
 * exits first.
 */
export function spawnService(
  env: Record<string, string>,
  options: { command?: string; args?: string[]; cwd?: string } = {},
): Promise<Spawned> {
  const command = options.command ?? process.execPath;
  const args = options.args ?? [fileURLToPath(new URL('../src/main.js', import.meta.url))];
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', PORT: '0', ...env },
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    const emitter = new EventEmitter();
    let stderr = '';
    let buffered = '';
    let started = false;
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((done) =>
      child.once('exit', (code, signal) => done({ code, signal, stderr })),
    );
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout!.on('data', (c: Buffer) => {
      buffered += c.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        lines.push(line);
        emitter.emit('line', line);
        const m = /listening on (https?:\/\/[^"\s]+)/.exec(line);
        if (m && !started) {
          started = true;
          resolve({ child, url: m[1]!, lines, logged, exit });
        }
      }
    });
    const msgOf = (line: string): string => {
      try {
        return String((JSON.parse(line) as { msg?: unknown }).msg ?? '');
      } catch {
        return '';
      }
    };
    const matches = (line: string, msg: string | RegExp) =>
      typeof msg === 'string' ? msgOf(line) === msg : msg.test(msgOf(line));
    function logged(msg: string | RegExp): Promise<Record<string, unknown>> {
      const found = lines.find((l) => matches(l, msg));
      if (found !== undefined) return Promise.resolve(JSON.parse(found) as Record<string, unknown>);
      return new Promise((res, rej) => {
        const onLine = (line: string) => {
          if (!matches(line, msg)) return;
          emitter.off('line', onLine);
          res(JSON.parse(line) as Record<string, unknown>);
        };
        emitter.on('line', onLine);
        void exit.then(() => {
          emitter.off('line', onLine);
          rej(new Error(`exited without logging ${String(msg)}; stderr: ${stderr}`));
        });
      });
    }
    void exit.then(({ code }) => {
      if (!started)
        reject(Object.assign(new Error(`exited ${code} before listening: ${stderr}`), { code, stderr }));
    });
  });
}

/**
 * A stand-in validator that holds every `POST /validate` until the test lets it answer (valid): while
 * held, the gcd request that called it is in flight — no latency, no timing.
 */
export class HeldValidator {
  readonly server: Server;
  readonly seen = new EventEmitter();
  count = 0;
  #held: Array<() => void> = [];
  #released = false;
  constructor() {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const answer = () => {
          const { n, m } = JSON.parse(body) as { n: string; m: string };
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ valid: true, n, m }));
        };
        if (this.#released) answer();
        else this.#held.push(answer);
        this.seen.emit('request', ++this.count);
      });
    });
  }
  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  /** Resolves once `n` requests arrived in total. */
  async reached(n: number): Promise<void> {
    while (this.count < n) await once(this.seen, 'request');
  }
  /** Answers every held request, and every later one at once. */
  release(): void {
    this.#released = true;
    for (const answer of this.#held.splice(0)) answer();
  }
  close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Checks that Redis answers at `url` (within `timeoutMs`), or fails at once with a clear message — the
 * Redis tests need a real Redis, and without one they must say so, not hang or spam ioredis' errors.
 */
export async function requireRedis(url: string, timeoutMs = 3000): Promise<void> {
  const client = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs, // a Redis that accepts and never answers fails here, not later
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let why = 'no answer';
  client.on('error', (error: Error) => (why = error.message));
  try {
    await client.connect();
    await client.ping();
    await client.quit();
  } catch (error) {
    client.disconnect();
    throw new Error(
      `Redis is not reachable at ${url.replace(/\/\/[^@/]*@/, '//***@')} (${why === 'no answer' ? (error as Error).message : why}): ` +
        'start redis-server there, or point REDIS_URL at one. The Redis tests need a real Redis.',
      { cause: error },
    );
  }
}

/** A loopback port free at the moment of asking (for a server a test starts, or a dead address). */
export async function freePort(): Promise<number> {
  const server = createTcpServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
