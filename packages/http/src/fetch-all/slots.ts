/**
 * The slots of `fetchAll`: a global concurrency limit, a limit per origin, and an optional pace per origin
 * (core `rateLimiter`, asked with `tryAcquire`), in one scheduler.
 *
 * Why not two core `bulkhead`s and a rate-limit wait. A run holds up to `concurrency + readAhead` URLs and
 * nearly all of them may wait for a slot. Measured (fake dispatcher, 100k URLs, concurrency 50):
 * - A bulkhead waiter listens for the caller's abort; every call of a run shares one signal, and Node's
 *   `EventTarget` walks its whole listener list on each add/remove, so 1000 waiters made every request
 *   O(1000): `fetchAll` ran at a fraction of raw undici's speed (docs/many-requests.md, "Performance"). Here a waiter holds no listener; the run aborts them all
 *   at once ({@link SlotScheduler.abortAll}).
 * - A URL waiting *inside* the policies (retry frame, contexts, closures, promises) lives long enough to
 *   be promoted out of the young generation: per-URL cost doubled from `readAhead` 0 to 1000. So a URL's
 *   first attempt waits here as a bare {@link Entry} (the URL's own record) and its policies start only
 *   once it holds a slot; later attempts (retries) queue as a small waiter.
 * - Pacing costs one timer per paced origin, not a sleeping waiter per URL.
 *
 * Fairness: each origin queues in FIFO order; origins that could start one take turns (round robin) when
 * a global slot frees up.
 *
 * An origin that has not answered yet holds at most `probeLimit` requests in flight (fetchAll passes its
 * the failures that open its breaker): if it is dead, that first wave is exactly enough failures to open its breaker in one
 * timeout, and the global slots it ties up meanwhile are as few as that allows. Its first success lifts the
 * limit to `maxConcurrent`; {@link HostSlots.unanswered} (its breaker opened) lowers it again.
 */
import {
  TimeoutError,
  type CallContext,
  type Clock,
  type ClockTimer,
  type Operation,
  type RateLimiterPolicy,
} from '@bulwark/core';
import { BasePolicy, invoke } from '@bulwark/core/internal';
import { Queue } from './queue.js';

/** Something waiting for a slot. `grant` is called with the slot already taken. */
export interface Entry {
  grant(slots: HostSlots): void;
  /** Leaves the queue without a slot: the run was aborted, or the origin's breaker opened. */
  cancel(reason: unknown): void;
}

/** A later attempt (a retry) waiting for its slot inside the policies. */
class Waiter implements Entry {
  constructor(
    readonly fn: Operation<unknown>,
    readonly ctx: CallContext,
    readonly resolve: (value: unknown) => void,
    readonly reject: (error: unknown) => void,
  ) {}

  grant(slots: HostSlots): void {
    slots.runHeld(this.fn, this.ctx).then(this.resolve, this.reject);
  }

  cancel(reason: unknown): void {
    this.reject(reason);
  }
}

export class SlotScheduler {
  running = 0;
  aborted = false;
  abortReason: unknown = undefined;
  readonly #ready = new Queue<HostSlots>();
  readonly #hosts = new Set<HostSlots>();

  constructor(
    readonly maxConcurrent: number,
    /** Times the pace of paced origins. */
    readonly clock: Clock,
  ) {}

  /** The slots of one origin (at most `probeLimit` in flight until one of its requests succeeds). */
  host(
    key: string,
    maxConcurrent: number,
    limiter: RateLimiterPolicy | undefined,
    probeLimit = maxConcurrent,
  ): HostSlots {
    const host = new HostSlots(this, key, maxConcurrent, limiter, probeLimit);
    this.#hosts.add(host);
    return host;
  }

  /** Forgets an origin that holds nothing. */
  forget(host: HostSlots): void {
    this.#hosts.delete(host);
  }

  /** Cancels every waiting entry of every origin with `reason`; nothing is granted afterwards. */
  abortAll(reason: unknown): void {
    this.aborted = true;
    this.abortReason = reason;
    for (const host of this.#hosts) host.cancelAll(reason);
  }

  markReady(host: HostSlots): void {
    if (host.inReady) return;
    host.inReady = true;
    this.#ready.push(host);
  }

  /** True when no origin is waiting for a global slot (a newcomer may take a free one at once). */
  get noneReady(): boolean {
    return this.#ready.size === 0;
  }

  #pumpScheduled = false;

  /**
   * Hands freed slots out on the check phase of this event-loop turn, not at once: when a black-holed
   * host's requests time out together, every one of those failures reaches its breaker before a slot goes
   * to the next URL of that host — granted at once, it would be admitted by a breaker that had seen only
   * the first failure, and cost one more full timeout.
   */
  schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    setImmediate(this.#pumpLater);
  }

  readonly #pumpLater = (): void => {
    this.#pumpScheduled = false;
    this.pump();
  };

  /** Hands free global slots to ready origins, one each in turn. */
  pump(): void {
    while (this.running < this.maxConcurrent) {
      const host = this.#ready.shift();
      if (host === undefined) return;
      host.inReady = false;
      host.grantNext();
    }
  }
}

/**
 * The slots of one origin. As a policy (`run`) it admits an operation when a slot is free; `enqueue`
 * queues a bare entry whose `grant` starts the work with the slot held (it must end with `runHeld` or
 * `release`).
 */
export class HostSlots extends BasePolicy {
  running = 0;
  inReady = false;
  readonly #queue = new Queue<Entry>();
  #paced: ClockTimer | undefined = undefined;
  /**
   * Set when an attempt of this origin timed out: no new attempt starts until every attempt in flight
   * has settled. A dead origin's requests time out one batch at a time (they started at slightly
   * different moments); a slot freed by the first timeouts would otherwise go to a new request that the
   * breaker — not yet open — lets through, and that request costs another full timeout. A live origin
   * with one slow request pauses only while its other requests finish.
   */
  #holding = false;
  /** `maxConcurrent` once the origin has answered; until then (and after its breaker opened) `probeLimit`. */
  #limit: number;
  readonly probeLimit: number;

  constructor(
    readonly scheduler: SlotScheduler,
    readonly key: string,
    readonly maxConcurrent: number,
    readonly limiter: RateLimiterPolicy | undefined,
    probeLimit = maxConcurrent,
  ) {
    super(undefined);
    this.probeLimit = Math.max(1, Math.min(probeLimit, maxConcurrent));
    this.#limit = this.probeLimit;
  }

  /** Requests this origin may have in flight now. */
  get limit(): number {
    return this.#limit;
  }

  /** The origin is treated as unproven again (its breaker opened): `probeLimit` in flight until a success. */
  unanswered(): void {
    this.#limit = this.probeLimit;
  }

  /**
   * Takes every entry out of the queue and cancels it with `reason` (the origin's breaker opened: URLs
   * waiting for their first slot fail fast at once instead of each taking a slot to be refused).
   */
  cancelQueued(reason: unknown): void {
    for (const entry of this.#queue.drain()) entry.cancel(reason);
  }

  /** Entries waiting for a slot. */
  get queued(): number {
    return this.#queue.size;
  }

  /** Nothing runs and nothing waits. */
  get idle(): boolean {
    return this.running === 0 && this.#queue.size === 0;
  }

  /** Grants `entry` a slot now if one is free (and the pace allows), else queues it. */
  enqueue(entry: Entry): void {
    if (this.#canStartNow()) {
      this.#take();
      entry.grant(this);
      return;
    }
    this.#queue.push(entry);
    if (this.running < this.#limit && this.#paced === undefined && !this.#holding)
      this.scheduler.markReady(this);
  }

  run<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    if (this.scheduler.aborted) return Promise.reject(this.scheduler.abortReason);
    if (this.#canStartNow()) {
      this.#take();
      return this.runHeld(fn, ctx);
    }
    return new Promise<T>((resolve, reject) => {
      this.enqueue(new Waiter(fn, ctx, resolve as (value: unknown) => void, reject));
    });
  }

  /** Runs `fn` in a slot already taken for it; the slot is released when `fn` settles. */
  runHeld<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    const promise = invoke(fn, ctx);
    promise.then(this.#succeeded, this.#failed);
    return promise;
  }

  readonly #succeeded = (): void => {
    if (this.#limit < this.maxConcurrent) {
      // the first answer: the origin may use all its slots (release marks it ready if it waits)
      this.#limit = this.maxConcurrent;
    }
    this.release();
  };

  readonly #failed = (error: unknown): void => {
    if (error instanceof TimeoutError) this.#holding = true;
    this.release();
  };

  /** Gives back a slot taken for a granted entry. */
  readonly release = (): void => {
    this.running--;
    this.scheduler.running--;
    if (this.#holding && this.running === 0) this.#holding = false;
    if (this.#queue.size > 0 && this.#paced === undefined && !this.#holding) this.scheduler.markReady(this);
    this.scheduler.schedulePump();
  };

  /** Called by the scheduler with a global slot free: grant the next entry if this origin may. */
  grantNext(): void {
    if (this.#queue.size === 0 || this.running >= this.#limit || this.#paced !== undefined) return;
    if (this.#holding) return;
    if (this.scheduler.aborted || !this.#paceAllows()) return;
    const entry = this.#queue.shift()!;
    this.#take();
    entry.grant(this);
    if (this.#queue.size > 0 && this.running < this.#limit) this.scheduler.markReady(this);
  }

  cancelAll(reason: unknown): void {
    if (this.#paced !== undefined) {
      this.scheduler.clock.clearTimeout(this.#paced);
      this.#paced = undefined;
    }
    for (const entry of this.#queue.drain()) entry.cancel(reason);
  }

  #canStartNow(): boolean {
    return (
      !this.scheduler.aborted &&
      this.#queue.size === 0 &&
      this.running < this.#limit &&
      this.scheduler.running < this.scheduler.maxConcurrent &&
      this.scheduler.noneReady &&
      this.#paced === undefined &&
      !this.#holding &&
      this.#paceAllows()
    );
  }

  #take(): void {
    this.running++;
    this.scheduler.running++;
  }

  /** Takes a token when the origin is paced; when there is none, waits (one timer) and says no. */
  #paceAllows(): boolean {
    const limiter = this.limiter;
    if (limiter === undefined) return true;
    const taken = limiter.tryAcquire(this.key);
    // the in-memory store answers synchronously; fetchAll never gives the limiter another store
    if (taken instanceof Promise || taken.allowed) return true;
    this.#paced = this.scheduler.clock.setTimeout(this.#paceEnded, Math.max(1, taken.retryAfterMs));
    return false;
  }

  readonly #paceEnded = (): void => {
    this.#paced = undefined;
    if (this.#queue.size > 0 && this.running < this.#limit && !this.#holding) {
      this.scheduler.markReady(this);
      this.scheduler.pump();
    }
  };
}
