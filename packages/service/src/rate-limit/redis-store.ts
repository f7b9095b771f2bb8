/**
 * A Redis-backed token-bucket store: a fleet of servers pointing at one Redis shares one limit per key.
 *
 * - One Lua script (registered with ioredis `defineCommand`, so it runs by `EVALSHA` and falls back to
 *   `EVAL` once) refills and takes atomically. It uses Redis `TIME`, never the caller's clock: processes
 *   on different machines disagree about time, Redis does not. The decision matches the in-memory
 *   store's exactly (same refill, same 1 ns tolerance, same rounding of `retryAfterMs`).
 * - Each key is a hash `{tokens, at}` that expires once it would have refilled to `burst` (+1 s), so idle
 *   keys cost nothing.
 * - A dead Redis fails fast: no offline queue, a command timeout, and after a failure the store refuses
 *   at once (without touching the network) for `retryAfterFailureMs`, then lets one round of calls probe.
 *   The rate limiter's `onStoreError` decides what a failure means (allow, deny, or a local bucket).
 */
import type * as IORedis from 'ioredis';
import type { Redis, RedisOptions } from 'ioredis';
import {
  InvalidOptionError,
  type RateLimitRule,
  type RateLimitStore,
  type Subscribe,
  type TakeResult,
} from '@bulwark/core';
import { checks, EventEmitter } from '@bulwark/core/internal';
import { loadOptional, REDIS_FEATURE } from '../optional.js';

export interface RedisRateLimitStoreOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS). One of `url` / `client` is required. */
  url?: string;
  /** An ioredis client to use instead (the store never closes a client it did not create). */
  client?: Redis;
  /** Prefix of every key the store writes. @default 'bulwark:rl:' */
  keyPrefix?: string;
  /** A command that takes longer fails (ioredis `commandTimeout`), in ms. @default 100 */
  commandTimeoutMs?: number;
  /** Connecting takes at most this long, in ms. @default 1000 */
  connectTimeoutMs?: number;
  /** After a failure, refuse at once for this long before trying Redis again, in ms. @default 1000 */
  retryAfterFailureMs?: number;
}

export const REDIS_STORE_DEFAULTS = Object.freeze({
  keyPrefix: 'bulwark:rl:',
  commandTimeoutMs: 100,
  connectTimeoutMs: 1000,
  retryAfterFailureMs: 1000,
});

const KEYS = ['url', 'client', ...Object.keys(REDIS_STORE_DEFAULTS)];

export interface StoreHealthEvent {
  /** True when the store just became unusable, false when it just recovered. */
  readonly degraded: boolean;
  /** The failure that degraded it (absent on recovery). */
  readonly error?: unknown;
}

/** The token-bucket step, in Lua. KEYS[1] = bucket; ARGV = ratePerSecond, burst, cost. */
export const TAKE_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tokens = burst
local at = now
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
if b[1] then
  tokens = tonumber(b[1])
  at = tonumber(b[2])
  local elapsed = now - at
  if elapsed > 0 then
    tokens = math.min(burst, tokens + elapsed * rate / 1000)
    at = now
  elseif tokens > burst then
    tokens = burst
  end
end
local wait = (cost - tokens) * 1000 / rate
local allowed = 0
local retry = 0
if wait <= 1e-6 then
  tokens = math.max(0, tokens - cost)
  allowed = 1
else
  retry = math.ceil(wait - 1e-6)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', at))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return { allowed, string.format('%.17g', tokens), retry }
`;

type TakeCommand = (
  key: string,
  rate: number,
  burst: number,
  cost: number,
) => Promise<[number, string, number]>;

/** Raised without touching the network while the store is in its fail-fast window. */
class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}
const UNAVAILABLE = Object.freeze(
  (() => {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return new StoreUnavailableError('rate-limit store unavailable (failing fast after a recent failure)');
    } finally {
      Error.stackTraceLimit = limit;
    }
  })(),
);

export class RedisRateLimitStore implements RateLimitStore {
  readonly client: Redis;
  readonly keyPrefix: string;
  readonly retryAfterFailureMs: number;
  readonly #owned: boolean;
  readonly #take: TakeCommand;
  readonly #onHealthChange = new EventEmitter<StoreHealthEvent>();
  /** Subscribe to the store becoming unusable (`degraded: true`) and usable again (`false`). */
  readonly onHealthChange: Subscribe<StoreHealthEvent> = this.#onHealthChange.subscribe;
  #degraded = false;
  #failFastUntil = 0;
  #lastError: unknown = undefined;
  /** While degraded: pings Redis every `retryAfterFailureMs`, so recovery is noticed without traffic. */
  #probeTimer: ReturnType<typeof setInterval> | undefined;
  #probing = false;
  #closed = false;

  constructor(options: RedisRateLimitStoreOptions) {
    const o = checks.optionsObject('redisStore', options, true);
    checks.knownKeys('redisStore', o, KEYS);
    const d = REDIS_STORE_DEFAULTS;
    this.keyPrefix = checks.string('redisStore.keyPrefix', o.keyPrefix ?? d.keyPrefix);
    const commandTimeoutMs = checks.positiveMs(
      'redisStore.commandTimeoutMs',
      o.commandTimeoutMs ?? d.commandTimeoutMs,
    );
    const connectTimeoutMs = checks.positiveMs(
      'redisStore.connectTimeoutMs',
      o.connectTimeoutMs ?? d.connectTimeoutMs,
    );
    this.retryAfterFailureMs = checks.nonNegativeMs(
      'redisStore.retryAfterFailureMs',
      o.retryAfterFailureMs ?? d.retryAfterFailureMs,
    );
    if (o.client !== undefined) {
      const c = o.client as Partial<Redis>;
      if (typeof c.defineCommand !== 'function' || typeof c.status !== 'string') {
        throw new InvalidOptionError('redisStore.client', o.client, 'an ioredis client');
      }
      this.client = o.client;
      this.#owned = false;
    } else {
      const url = checks.string('redisStore.url', o.url);
      if (!/^rediss?:\/\//.test(url)) {
        throw new InvalidOptionError('redisStore.url', redactUrl(url), 'a redis:// or rediss:// URL');
      }
      // ioredis (an optional peer dependency) loads only when a Redis store is made (~0.3 s to import).
      const { Redis: RedisClient } = loadOptional<typeof IORedis>(
        'ioredis',
        REDIS_FEATURE.feature,
        REDIS_FEATURE.packages,
      );
      this.client = new RedisClient(url, redisClientOptions(commandTimeoutMs, connectTimeoutMs));
      this.#owned = true;
    }
    // Errors arrive here (and as failed commands); without a listener ioredis prints them itself.
    this.client.on('error', (error: unknown) => this.#failed(error));
    this.client.on('ready', () => {
      this.#failFastUntil = 0;
      // Reconnected: find out now, not at the next rate-limited request, whether Redis answers again.
      if (this.#degraded) this.#probe();
    });
    if (typeof (this.client as unknown as Record<string, unknown>).bulwarkTake !== 'function') {
      this.client.defineCommand('bulwarkTake', { numberOfKeys: 1, lua: TAKE_SCRIPT });
    }
    const command = (this.client as unknown as { bulwarkTake: TakeCommand }).bulwarkTake;
    this.#take = command.bind(this.client);
  }

  /** True while the store is failing (the limiter applies `onStoreError`). */
  get degraded(): boolean {
    return this.#degraded;
  }

  /** The last failure (message only is safe to show: it never holds the URL's password). */
  get lastError(): unknown {
    return this.#lastError;
  }

  take(key: string, cost: number, _nowMs: number, rule: RateLimitRule): Promise<TakeResult> {
    if (this.client.status !== 'ready' || performance.now() < this.#failFastUntil) {
      if (!this.#degraded) this.#failed(UNAVAILABLE);
      return Promise.reject(UNAVAILABLE);
    }
    return this.#take(this.keyPrefix + key, rule.ratePerSecond, rule.burst, cost).then(
      (reply) => {
        if (this.#degraded) this.#recovered();
        const tokens = Number(reply[1]);
        return {
          allowed: reply[0] === 1,
          remaining: Math.max(0, Math.floor(tokens + 1e-9)),
          retryAfterMs: Number(reply[2]),
        };
      },
      (error: unknown) => {
        this.#failed(error);
        throw error;
      },
    );
  }

  /** Round-trips a PING (for a readiness or health check). */
  async ping(): Promise<void> {
    await this.client.ping();
  }

  /** Deletes every key under this store's prefix (tests, or a reset). Uses SCAN, never KEYS. */
  async clear(): Promise<number> {
    let cursor = '0';
    let deleted = 0;
    do {
      const [next, keys] = await this.client.scan(
        cursor,
        'MATCH',
        `${escapeGlob(this.keyPrefix)}*`,
        'COUNT',
        500,
      );
      cursor = next;
      if (keys.length > 0) deleted += await this.client.del(...keys);
    } while (cursor !== '0');
    return deleted;
  }

  /** Stops the recovery probe and closes the connection if the store opened it. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#probeTimer);
    this.#probeTimer = undefined;
    if (!this.#owned) return;
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
        return;
      } catch {
        // fall through to a hard disconnect
      }
    }
    this.client.disconnect();
  }

  #failed(error: unknown): void {
    this.#lastError = error;
    if (error !== UNAVAILABLE) this.#failFastUntil = performance.now() + this.retryAfterFailureMs;
    if (!this.#degraded) {
      this.#degraded = true;
      if (this.#onHealthChange.active) this.#onHealthChange.emit({ degraded: true, error });
    }
    if (this.#probeTimer === undefined && !this.#closed) {
      this.#probeTimer = setInterval(() => this.#probe(), Math.max(100, this.retryAfterFailureMs));
      this.#probeTimer.unref();
    }
  }

  /** One PING while degraded (never two at once); success ends the degraded state. */
  #probe(): void {
    if (!this.#degraded || this.#probing || this.#closed || this.client.status !== 'ready') return;
    this.#probing = true;
    this.client.ping().then(
      () => {
        this.#probing = false;
        if (this.#degraded && !this.#closed) this.#recovered();
      },
      (error: unknown) => {
        this.#probing = false;
        this.#lastError = error;
      },
    );
  }

  #recovered(): void {
    this.#degraded = false;
    this.#lastError = undefined;
    this.#failFastUntil = 0;
    clearInterval(this.#probeTimer);
    this.#probeTimer = undefined;
    if (this.#onHealthChange.active) this.#onHealthChange.emit({ degraded: false });
  }
}

/** ioredis settings that make a dead Redis fail fast instead of queueing commands. */
export function redisClientOptions(commandTimeoutMs: number, connectTimeoutMs: number): RedisOptions {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: commandTimeoutMs,
    connectTimeout: connectTimeoutMs,
    // Reconnect forever, backing off to one attempt every 2 s.
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    connectionName: 'bulwark-ratelimit',
  };
}

/** `redis://user:secret@host` → `redis://user:***@host` (for messages and logs). */
export function redactUrl(url: string): string {
  return url.replace(/^(\w+:\/\/[^:/@]*:)[^@]*@/, '$1***@');
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}
