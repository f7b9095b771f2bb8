/**
 * Test helpers: a real server on a loopback port, and a small HTTP client on undici.
 */
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
    loadShedding: false,
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
