/**
 * Test helpers: a real server on a loopback port, and a small HTTP client on undici; and, re-exported,
 * the kit's own (`@bulwark/service/testing`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { request as undiciRequest } from 'undici';
import { loadConfig, type GcdConfig } from '../src/config.js';
import { createGcdServer, type GcdServer, type GcdServerDeps } from '../src/server.js';

// The kit's test helpers (a span exporter to wait on, Redis readiness, a free port, packages hidden from a
// child process), defined there once.
export { freePort, hidePackages, REDIS_URL, requireRedis, SpanCollector } from '@bulwark/service/testing';

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
