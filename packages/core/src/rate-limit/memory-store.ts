/**
 * The in-memory token-bucket store: one bucket per key in a `Map`, bounded by `maxKeys`, no timers.
 *
 * Memory stays bounded without a sweeper. Buckets also sit in a queue (a doubly linked list through the
 * buckets themselves), kept in approximate least-recently-used order by the CLOCK ("second chance")
 * scheme: using a key only sets a flag (no reordering, so a take is one `get`). Once the map is half
 * full, each new key makes the store look at a few buckets at the old end of the queue: one that has
 * refilled to `burst` is dropped (it is indistinguishable from a new bucket, so nothing is lost), one used
 * since it was last looked at moves to the young end. If the map is still at `maxKeys`, the oldest bucket
 * not used since it was last looked at is evicted (that key starts again with a full bucket).
 *
 * The queue is explicit rather than the `Map`'s own insertion order because a `for…of` over a `Map`
 * restarts at its first slot, and after deletions at the front V8 walks every deleted slot again: a new
 * key cost O(store size). With the queue every new key is O(1) (amortised over the used flags it clears).
 */
import * as check from '../options.js';
import type { RateLimitRule, RateLimitStore, TakeResult } from './store.js';

export interface MemoryRateLimitStoreOptions {
  /**
   * Most keys held at once; beyond it the least recently used key is evicted. An integer ≥ 1.
   * @default 10000
   */
  maxKeys?: number;
}

const DEFAULTS = Object.freeze({ maxKeys: 10_000 });
const KEYS = ['maxKeys'] as const;

/** Buckets looked at per new key by the idle sweep (keeps an insert O(1) while memory drains steadily). */
const SWEEP_PER_INSERT = 4;

/**
 * Tolerance for float rounding, in ms of refill time (1 ns). A take that is short by less than this is
 * allowed, and `retryAfterMs` is rounded up from `wait - EPSILON_MS`, so that after waiting exactly
 * `retryAfterMs` the same take succeeds.
 */
export const EPSILON_MS = 1e-6;

class Bucket {
  declare readonly key: string;
  declare tokens: number;
  /** When `tokens` was last brought up to date. */
  declare atMs: number;
  declare rule: RateLimitRule;
  /** Used since the sweep last looked at it (CLOCK's reference bit). */
  declare used: boolean;
  /** Neighbours in the store's queue (older, younger). */
  declare older: Bucket | undefined;
  declare younger: Bucket | undefined;

  constructor(key: string, tokens: number, atMs: number, rule: RateLimitRule) {
    this.key = key;
    this.tokens = tokens;
    this.atMs = atMs;
    this.rule = rule;
    this.used = false;
    this.older = undefined;
    this.younger = undefined;
  }
}

export class MemoryRateLimitStore implements RateLimitStore {
  readonly maxKeys: number;
  readonly #buckets = new Map<string, Bucket>();
  /** The queue's old end (looked at first) and young end (where new and second-chance buckets go). */
  #oldest: Bucket | undefined = undefined;
  #youngest: Bucket | undefined = undefined;

  constructor(options?: MemoryRateLimitStoreOptions) {
    const o = check.optionsObject('memoryRateLimitStore', options);
    check.knownKeys('memoryRateLimitStore', o, KEYS);
    this.maxKeys = check.positiveInteger('memoryRateLimitStore.maxKeys', o.maxKeys ?? DEFAULTS.maxKeys);
  }

  /** Keys currently held. */
  get size(): number {
    return this.#buckets.size;
  }

  take(key: string, cost: number, nowMs: number, rule: RateLimitRule): TakeResult {
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      this.#makeRoom(nowMs);
      bucket = new Bucket(key, rule.burst, nowMs, rule);
      this.#buckets.set(key, bucket);
      this.#append(bucket);
    } else {
      bucket.used = true;
      bucket.rule = rule;
    }
    return takeTokens(bucket, cost, nowMs, rule);
  }

  /** Forgets every bucket. */
  clear(): void {
    this.#buckets.clear();
    this.#oldest = this.#youngest = undefined;
  }

  #makeRoom(nowMs: number): void {
    const buckets = this.#buckets;
    // Below half full, a key whose bucket refilled stays: re-using it is cheaper than re-creating it.
    if (buckets.size < this.maxKeys / 2) return;
    for (let budget = SWEEP_PER_INSERT; budget > 0; budget--) {
      const bucket = this.#oldest;
      if (bucket === undefined) break;
      if (isFull(bucket, nowMs)) {
        this.#remove(bucket);
      } else if (bucket.used) {
        bucket.used = false;
        this.#unlink(bucket);
        this.#append(bucket);
      } else {
        break;
      }
    }
    // Still full: evict the oldest bucket not used since the sweep last passed (each pass clears a
    // used bit, so this ends within one round of the queue).
    while (buckets.size >= this.maxKeys) {
      const bucket = this.#oldest!;
      if (!bucket.used) {
        this.#remove(bucket);
        break;
      }
      bucket.used = false;
      this.#unlink(bucket);
      this.#append(bucket);
    }
  }

  #remove(bucket: Bucket): void {
    this.#unlink(bucket);
    this.#buckets.delete(bucket.key);
  }

  #append(bucket: Bucket): void {
    const youngest = this.#youngest;
    bucket.older = youngest;
    bucket.younger = undefined;
    if (youngest === undefined) this.#oldest = bucket;
    else youngest.younger = bucket;
    this.#youngest = bucket;
  }

  #unlink(bucket: Bucket): void {
    const { older, younger } = bucket;
    if (older === undefined) this.#oldest = younger;
    else older.younger = younger;
    if (younger === undefined) this.#youngest = older;
    else younger.older = older;
    bucket.older = bucket.younger = undefined;
  }
}

/** Brings a bucket up to date at `nowMs` (time going backwards adds nothing). */
function refill(bucket: Bucket, nowMs: number, rule: RateLimitRule): void {
  const elapsedMs = nowMs - bucket.atMs;
  if (elapsedMs > 0) {
    bucket.tokens = Math.min(rule.burst, bucket.tokens + (elapsedMs * rule.ratePerSecond) / 1000);
    bucket.atMs = nowMs;
  } else if (bucket.tokens > rule.burst) {
    bucket.tokens = rule.burst;
  }
}

function isFull(bucket: Bucket, nowMs: number): boolean {
  const { ratePerSecond, burst } = bucket.rule;
  return bucket.tokens + (Math.max(0, nowMs - bucket.atMs) * ratePerSecond) / 1000 >= burst;
}

/** The token-bucket decision (the semantics a shared store must reproduce; see docs/rate-limiter.md). */
function takeTokens(bucket: Bucket, cost: number, nowMs: number, rule: RateLimitRule): TakeResult {
  refill(bucket, nowMs, rule);
  const waitMs = ((cost - bucket.tokens) * 1000) / rule.ratePerSecond;
  if (waitMs <= EPSILON_MS) {
    bucket.tokens = Math.max(0, bucket.tokens - cost);
    return { allowed: true, remaining: wholeTokens(bucket.tokens), retryAfterMs: 0 };
  }
  return {
    allowed: false,
    remaining: wholeTokens(bucket.tokens),
    retryAfterMs: Math.ceil(waitMs - EPSILON_MS),
  };
}

/** Whole tokens, forgiving float noise (2.9999999999 counts as 3). */
function wholeTokens(tokens: number): number {
  return Math.floor(tokens + 1e-9);
}

/** Creates a {@link MemoryRateLimitStore}. */
export function memoryRateLimitStore(options?: MemoryRateLimitStoreOptions): MemoryRateLimitStore {
  return new MemoryRateLimitStore(options);
}
