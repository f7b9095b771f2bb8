/**
 * `@bulwark/service/testing`: helpers for tests of a service built on the kit — and of the kit itself.
 *
 * Importing this entry loads no optional peer dependency: `SpanCollector` implements the SDK's
 * `SpanExporter` on its own (the SDK's types only), and ioredis loads when `redisForTests` or
 * `requireRedis` is first called (a clear `MissingDependencyError` when it is not installed). The
 * declarations name ioredis and OpenTelemetry SDK types, as the main entry's do.
 */
import { once } from 'node:events';
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import type * as IORedis from 'ioredis';
import type { Redis } from 'ioredis';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import type { ExportResult, ExportResultCode } from '@opentelemetry/core';
import { loadOptional, REDIS_PACKAGES } from './optional.js';

const SUCCESS = 0 satisfies ExportResultCode.SUCCESS;
const FAILED = 1 satisfies ExportResultCode.FAILED;

interface SpanWaiter {
  match: (s: ReadableSpan) => boolean;
  resolve: (s: ReadableSpan) => void;
}

/**
 * An in-memory span exporter that a test can wait on (pass it as `setupTracing({ exporter })`, with
 * `processor: 'simple'`): {@link waitFor} resolves with the first finished span that matches — at once
 * if one has already arrived — so a test never polls or sleeps for a span (a span ends when its response
 * closes, which may be just after the client has the answer). Otherwise it behaves as the SDK's
 * `InMemorySpanExporter`: `getFinishedSpans()`, `reset()`, and after `shutdown()` it keeps nothing and
 * fails every export.
 */
export class SpanCollector implements SpanExporter {
  #spans: ReadableSpan[] = [];
  #stopped = false;
  readonly #waiters: SpanWaiter[] = [];

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    if (this.#stopped) {
      done({ code: FAILED, error: new Error('Exporter has been stopped') });
      return;
    }
    this.#spans.push(...spans);
    setTimeout(() => done({ code: SUCCESS }), 0);
    for (const span of spans) {
      for (let i = this.#waiters.length - 1; i >= 0; i--) {
        const w = this.#waiters[i] as SpanWaiter;
        if (w.match(span)) {
          this.#waiters.splice(i, 1);
          w.resolve(span);
        }
      }
    }
  }

  /** The first finished span that matches, at once if it already arrived, else when it does. */
  waitFor(match: (s: ReadableSpan) => boolean): Promise<ReadableSpan> {
    const found = this.#spans.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  /** Every span exported so far (since the last {@link reset}). */
  getFinishedSpans(): ReadableSpan[] {
    return this.#spans;
  }

  /** Forgets the spans exported so far. */
  reset(): void {
    this.#spans = [];
  }

  shutdown(): Promise<void> {
    this.#stopped = true;
    this.#spans = [];
    return this.forceFlush();
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

/** The Redis the tests use: the `REDIS_URL` environment variable when the module loads, else the local default. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

function unreachable(url: string, why: string): Error {
  return new Error(
    `Redis is not reachable at ${url.replace(/\/\/[^@/]*@/, '//***@')} (${why}): start redis-server there, ` +
      'or point REDIS_URL at one. The Redis tests need a real Redis.',
  );
}

/**
 * An ioredis client for a test's own checks (keys, CLIENT KILL): connected, or — when Redis does not
 * answer within `timeoutMs` — a clear error instead of a hang or ioredis' "Unhandled error event" lines.
 * Every command it sends is bounded too (`commandTimeout`): a Redis that stops answering mid-run (paused,
 * or a listener that says nothing) fails the test that asked within `timeoutMs`, never hangs the file.
 * It never reconnects; end it with {@link closeRedisForTests}. Needs ioredis (loaded on the first call).
 */
export async function redisForTests(url = REDIS_URL, timeoutMs = 3000): Promise<Redis> {
  const { Redis: RedisClient } = loadOptional<typeof IORedis>(
    'ioredis',
    'redisForTests (@bulwark/service/testing)',
    REDIS_PACKAGES,
  );
  const client = new RedisClient(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    retryStrategy: () => null,
  });
  let lastError = 'no answer';
  client.on('error', (error: Error) => {
    lastError = error.message;
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return client;
  } catch (error) {
    client.disconnect();
    throw unreachable(url, lastError === 'no answer' ? (error as Error).message : lastError);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Ends a test's Redis client: QUIT when Redis answers (bounded by the client's commandTimeout), else a
 * hard disconnect — never a wait on a Redis that stopped answering.
 */
export async function closeRedisForTests(client: Redis | undefined): Promise<void> {
  if (client === undefined) return;
  try {
    if (client.status === 'ready') await client.quit();
  } catch {
    // no answer: disconnect below
  } finally {
    client.disconnect();
  }
}

/**
 * Checks that Redis answers PING at `url` within `timeoutMs`, or fails at once with a clear message: a
 * test file that needs a real Redis calls it first, so that without one it says so instead of hanging.
 */
export async function requireRedis(url = REDIS_URL, timeoutMs = 3000): Promise<void> {
  const client = await redisForTests(url, timeoutMs);
  try {
    await client.ping();
  } catch (error) {
    throw unreachable(url, (error as Error).message);
  } finally {
    await closeRedisForTests(client);
  }
}

/** Resolves once a client is ready; rejects with a clear message if it is not within `timeoutMs`. */
export function redisReady(client: Redis, url = REDIS_URL, timeoutMs = 3000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let lastError = 'no answer';
    const onError = (error: Error) => {
      lastError = error.message;
    };
    const onReady = () => {
      clearTimeout(timer);
      client.off('error', onError);
      resolve();
    };
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      client.off('error', onError);
      reject(unreachable(url, `${lastError}; not ready within ${timeoutMs} ms`));
    }, timeoutMs);
    client.once('ready', onReady);
    client.on('error', onError);
  });
}

/** A loopback port free at the moment of asking (for a server a test starts, or an address nothing serves). */
export async function freePort(): Promise<number> {
  const server = createTcpServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening'); // rejects on the server's 'error'
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A `node --import` argument (a `data:` URL) that makes packages unresolvable in that process, as if they
 * were not installed — to test what a program does without an optional peer (`MissingDependencyError`,
 * or that a plain start never loads it): `spawn(process.execPath, ['--import', hidePackages(['ioredis']),
 * 'main.js'])`. A string hides that exact specifier, a RegExp every specifier it matches (e.g.
 * `/^@opentelemetry\/(?!api$)/`). Both `import` and `require` go through it (`module.registerHooks`).
 */
export function hidePackages(packages: ReadonlyArray<string | RegExp>): string {
  const names = packages.filter((p): p is string => typeof p === 'string');
  const patterns = packages.filter((p): p is RegExp => p instanceof RegExp).map((r) => [r.source, r.flags]);
  return `data:text/javascript,${encodeURIComponent(`
    import { registerHooks } from 'node:module';
    const names = new Set(${JSON.stringify(names)});
    const patterns = ${JSON.stringify(patterns)}.map(([source, flags]) => new RegExp(source, flags));
    registerHooks({
      resolve(specifier, context, next) {
        if (names.has(specifier) || patterns.some((p) => p.test(specifier))) {
          throw Object.assign(new Error("Cannot find module '" + specifier + "'"), { code: 'MODULE_NOT_FOUND' });
        }
        return next(specifier, context);
      },
    });
  `)}`;
}
