/**
 * rate-limit/ — the kit's per-client rate limiting: this file (the {@link HttpRateLimiter}, its options
 * and defaults, the request's key) and the Redis token-bucket store it shares across a fleet
 * (`redis-store.ts`); the 429 itself is answered in `../hooks.ts`.
 *
 * Per-client rate limiting for the HTTP server, built on @bulwark/core's `rateLimiter` (token bucket).
 *
 * - Key: the client IP (Fastify's `request.ip`, which honours `trustProxy`), or a header such as an API
 *   key (hashed before use: a secret never reaches Redis or a log), or your own function.
 * - Store: in memory by default; Redis when `redisUrl` (or a `redis` client) is given, so a fleet shares
 *   one limit per key.
 * - When Redis fails, `onStoreError` decides: `'local'` (default) falls back to an in-memory bucket per
 *   instance, `'allow'` lets requests through, `'deny'` answers 429. The degraded state shows in logs,
 *   in the `bulwark_ratelimit_store_degraded` gauge and in `/healthz`.
 */
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import {
  InvalidOptionError,
  memoryRateLimitStore,
  rateLimiter,
  type RateLimiterPolicy,
  type RateLimitStore,
  type TakeResult,
} from '@bulwark/core';
import { checks } from '@bulwark/core/internal';
import { RedisRateLimitStore, REDIS_STORE_DEFAULTS, type StoreHealthEvent } from './redis-store.js';

export type StoreErrorMode = 'allow' | 'deny' | 'local';

export interface RateLimitOptions {
  /** Tokens added to each client's bucket per second. @default 20 */
  ratePerSecond?: number;
  /** Bucket capacity: requests a client may make at once after being idle. @default 40 */
  burst?: number;
  /**
   * Take the client key from this request header (e.g. `x-api-key`; hashed with SHA-256 before use);
   * requests without it are keyed by IP. @default undefined (key by IP)
   */
  keyHeader?: string;
  /** Compute the key yourself (overrides `keyHeader`). @default undefined */
  keyGenerator?: (request: FastifyRequest) => string;
  /** Redis URL: when set, buckets live in Redis and every instance shares them. @default undefined (memory) */
  redisUrl?: string;
  /** An ioredis client to use instead of `redisUrl` (you close it). @default undefined */
  redis?: Redis;
  /** Prefix of the Redis keys. @default 'bulwark:rl:' */
  keyPrefix?: string;
  /** What a Redis failure means: a local in-memory bucket, let through, or 429. @default 'local' */
  onStoreError?: StoreErrorMode;
  /** A Redis command that takes longer fails, in ms. @default 100 */
  storeTimeoutMs?: number;
  /** After a Redis failure, skip Redis for this long before trying again, in ms. @default 1000 */
  storeRetryAfterFailureMs?: number;
  /**
   * Send the IETF httpapi draft's `RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-10)
   * on every limited response. @default true
   */
  headers?: boolean;
  /** The `name` label of the limiter's metrics. @default 'http' */
  name?: string;
  /** Most client keys held in memory (memory store and local fallback). @default 10000 */
  maxKeys?: number;
}

export const RATE_LIMIT_DEFAULTS = Object.freeze({
  ratePerSecond: 20,
  burst: 40,
  keyPrefix: REDIS_STORE_DEFAULTS.keyPrefix,
  onStoreError: 'local' as StoreErrorMode,
  storeTimeoutMs: REDIS_STORE_DEFAULTS.commandTimeoutMs,
  storeRetryAfterFailureMs: REDIS_STORE_DEFAULTS.retryAfterFailureMs,
  headers: true,
  name: 'http',
  maxKeys: 10_000,
});

const KEYS = [...Object.keys(RATE_LIMIT_DEFAULTS), 'keyHeader', 'keyGenerator', 'redisUrl', 'redis'];

export interface RateLimitStatus {
  name: string;
  /** Where buckets live: `memory`, or `redis` (shared by the fleet). */
  store: 'memory' | 'redis';
  /** True while Redis is failing and `onStoreError` applies. */
  degraded: boolean;
  onStoreError: StoreErrorMode;
  /** What is in force now: `memory`, `redis`, or while degraded `local`, `allow` or `deny`. */
  mode: 'memory' | 'redis' | StoreErrorMode;
  ratePerSecond: number;
  burst: number;
  /** The last store failure's message, while degraded. */
  lastError?: string;
}

export class HttpRateLimiter {
  readonly name: string;
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly onStoreError: StoreErrorMode;
  readonly headers: boolean;
  /** The `RateLimit-Policy` field value: `"<name>";q=<burst>;w=<seconds to refill the bucket>`. */
  readonly policyField: string;
  readonly #fieldPrefix: string;
  readonly policy: RateLimiterPolicy;
  /** The Redis store, when one is configured. */
  readonly redis: RedisRateLimitStore | undefined;
  readonly #keyOf: (request: FastifyRequest) => string;

  constructor(options: RateLimitOptions) {
    const o = checks.optionsObject('rateLimit', options);
    checks.knownKeys('rateLimit', o, KEYS);
    const d = RATE_LIMIT_DEFAULTS;
    this.name = checks.string('rateLimit.name', o.name ?? d.name);
    this.ratePerSecond = checks.number('rateLimit.ratePerSecond', o.ratePerSecond ?? d.ratePerSecond, {
      above: 0,
    });
    this.burst = checks.positiveInteger('rateLimit.burst', o.burst ?? d.burst);
    this.onStoreError = checks.oneOf('rateLimit.onStoreError', o.onStoreError ?? d.onStoreError, [
      'allow',
      'deny',
      'local',
    ]);
    this.headers = checks.boolean('rateLimit.headers', o.headers ?? d.headers);
    if (!/^[\x20-\x7e]*$/.test(this.name)) {
      throw new InvalidOptionError(
        'rateLimit.name',
        this.name,
        'printable ASCII (it is sent in RateLimit fields)',
      );
    }
    const quoted = `"${this.name.replace(/[\\"]/g, (c) => `\\${c}`)}"`; // a Structured Fields string
    this.policyField = `${quoted};q=${this.burst};w=${Math.max(1, Math.ceil(this.burst / this.ratePerSecond))}`;
    this.#fieldPrefix = `${quoted};r=`;
    const maxKeys = checks.positiveInteger('rateLimit.maxKeys', o.maxKeys ?? d.maxKeys);
    this.#keyOf = keyFunction(o);

    if (o.redisUrl !== undefined || o.redis !== undefined) {
      this.redis = new RedisRateLimitStore({
        ...(o.redis !== undefined
          ? { client: o.redis }
          : { url: checks.string('rateLimit.redisUrl', o.redisUrl) }),
        keyPrefix: checks.string('rateLimit.keyPrefix', o.keyPrefix ?? d.keyPrefix),
        commandTimeoutMs: checks.positiveMs('rateLimit.storeTimeoutMs', o.storeTimeoutMs ?? d.storeTimeoutMs),
        retryAfterFailureMs: checks.nonNegativeMs(
          'rateLimit.storeRetryAfterFailureMs',
          o.storeRetryAfterFailureMs ?? d.storeRetryAfterFailureMs,
        ),
      });
    }
    const memory = memoryRateLimitStore({ maxKeys });
    const store: RateLimitStore = this.redis ?? memory;
    this.policy = rateLimiter({
      ratePerSecond: this.ratePerSecond,
      burst: this.burst,
      store,
      onStoreError: this.onStoreError === 'local' ? memory : this.onStoreError,
      name: this.name,
    });
  }

  /** The client key of a request. */
  keyOf(request: FastifyRequest): string {
    return this.#keyOf(request);
  }

  /** Takes one token for `key` (synchronous with the memory store; a promise with Redis). Never rejects. */
  take(key: string): TakeResult | Promise<TakeResult> {
    return this.policy.tryAcquire(key, 1);
  }

  /** The `RateLimit` field value after a take: `"<name>";r=<remaining>;t=<seconds until the bucket is full>`. */
  field(remaining: number): string {
    return `${this.#fieldPrefix}${remaining};t=${this.resetSeconds(remaining)}`;
  }

  /** Seconds until a client that just used its last token has a full bucket again. */
  resetSeconds(remaining: number): number {
    return Math.max(0, Math.ceil((this.burst - remaining) / this.ratePerSecond));
  }

  get degraded(): boolean {
    return this.redis?.degraded ?? false;
  }

  status(): RateLimitStatus {
    const degraded = this.degraded;
    const lastError = this.redis?.lastError;
    return {
      name: this.name,
      store: this.redis === undefined ? 'memory' : 'redis',
      degraded,
      onStoreError: this.onStoreError,
      mode: this.redis === undefined ? 'memory' : degraded ? this.onStoreError : 'redis',
      ratePerSecond: this.ratePerSecond,
      burst: this.burst,
      ...(degraded && lastError instanceof Error ? { lastError: lastError.message } : {}),
    };
  }

  /** Subscribes to the Redis store degrading and recovering (no-op for the memory store). */
  onHealthChange(listener: (event: StoreHealthEvent) => void): void {
    this.redis?.onHealthChange(listener);
  }

  /**
   * Waits for the first connection attempt to Redis (at most `timeoutMs`), so the first requests use the
   * shared store. Resolves true once connected, false when the attempt failed or took too long.
   */
  async connected(timeoutMs: number): Promise<boolean> {
    const client = this.redis?.client;
    if (client === undefined || client.status === 'ready') return true;
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        client.off('ready', onReady);
        client.off('error', onError);
        resolve(ok);
      };
      const onReady = () => done(true);
      const onError = () => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      client.on('ready', onReady);
      client.on('error', onError);
    });
  }

  async close(): Promise<void> {
    await this.redis?.close();
  }
}

function keyFunction(o: RateLimitOptions): (request: FastifyRequest) => string {
  if (o.keyGenerator !== undefined) {
    const fn = checks.fn<(request: FastifyRequest) => string>('rateLimit.keyGenerator', o.keyGenerator);
    return (request) => String(fn(request));
  }
  if (o.keyHeader !== undefined) {
    const header = checks.string('rateLimit.keyHeader', o.keyHeader).toLowerCase();
    if (!/^[a-z0-9-]+$/.test(header)) {
      throw new InvalidOptionError('rateLimit.keyHeader', o.keyHeader, 'an HTTP header name');
    }
    return (request) => {
      const value = request.headers[header];
      return typeof value === 'string' && value !== '' ? `h:${hashKey(value)}` : `ip:${request.ip}`;
    };
  }
  return (request) => `ip:${request.ip}`;
}

/** SHA-256 of a secret key, shortened: stable, unguessable, and safe to store or log. */
export function hashKey(value: string): string {
  return createHash('sha256').update(value).digest('base64url').slice(0, 22);
}
