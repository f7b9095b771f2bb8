/**
 * bulkhead: at most `maxConcurrent` operations run at once; up to `maxQueue` more wait in a FIFO queue.
 *
 * - A full queue rejects at once with {@link BulkheadRejectedError} (`queue-full`), without a stack trace.
 * - A waiter that waits longer than `queueTimeoutMs` is rejected (`queue-timeout`).
 * - A waiter whose call is aborted (caller's signal, enclosing timeout) leaves the queue at once and
 *   rejects with the abort reason; the next waiter keeps its place.
 * - A slot is freed only when the operation's own promise settles. If an enclosing aggressive timeout
 *   gives up on the call, the slot stays taken until the abandoned work really ends, so the limit holds
 *   for the dependency, not just for the callers.
 *
 * Cost: a call that finds a free slot allocates nothing but the promise it returns (no closure, no
 * signal, no timer). The queue is a doubly linked list (O(1) removal on abort); since `queueTimeoutMs` is
 * fixed, waiters' deadlines are in queue order, so one shared timer (armed only while the queue is not
 * empty) serves them all. The abort listener is added only when a call really queues.
 */
import type { Clock, ClockTimer } from './clock.js';
import { Context, type CallContext, type Operation } from './context.js';
import { BulkheadRejectedError, withoutStack } from './errors.js';
import { EventEmitter, type Subscribe } from './events.js';
import * as check from './options.js';
import {
  BasePolicy,
  capturingPromise,
  DECLINE,
  forwardsContext,
  INLINE,
  takeReject,
  takeResolve,
  type InlineStage,
} from './policy.js';

export interface BulkheadOptions {
  /** Operations allowed to run at once (an integer ≥ 1, or `Infinity`). Required. */
  maxConcurrent: number;
  /**
   * Calls allowed to wait for a slot (an integer ≥ 0, or `Infinity` for an unbounded queue).
   * `0` rejects at once when every slot is taken.
   * @default 0
   */
  maxQueue?: number;
  /**
   * Longest time a call may wait in the queue, in ms, before it is rejected with reason `queue-timeout`
   * (> 0 and at most 2^31 − 1, since it is handed to a timer; `Infinity`: no limit).
   * @default Infinity
   */
  queueTimeoutMs?: number;
  /** Name used in events. @default 'bulkhead' */
  name?: string;
  /** @default systemClock */
  clock?: Clock;
}

/** The defaults of {@link BulkheadOptions}. */
export const BULKHEAD_DEFAULTS = Object.freeze({
  maxQueue: 0,
  queueTimeoutMs: Infinity,
  name: 'bulkhead',
});

const KEYS = ['maxConcurrent', 'maxQueue', 'queueTimeoutMs', 'name', 'clock'] as const;

export interface BulkheadRejectEvent {
  readonly name: string;
  readonly reason: 'queue-full' | 'queue-timeout';
  readonly key: string | undefined;
  /** Operations running when the call was rejected. */
  readonly running: number;
  /** Calls waiting when the call was rejected (not counting the rejected one). */
  readonly queued: number;
}

/** A call waiting for a slot: its place in the queue and how to settle its promise. */
class Waiter {
  declare readonly fn: Operation<unknown>;
  /** The context the operation will see (the one passed to `run`). */
  declare readonly ctx: CallContext;
  declare readonly deadline: number;
  declare readonly resolve: (value: unknown) => void;
  declare readonly reject: (error: unknown) => void;
  declare prev: Waiter | undefined;
  declare next: Waiter | undefined;
  declare unlisten: (() => void) | undefined;

  constructor(fn: Operation<unknown>, ctx: CallContext, deadline: number, prev: Waiter | undefined) {
    this.fn = fn;
    this.ctx = ctx;
    this.deadline = deadline;
    this.resolve = takeResolve();
    this.reject = takeReject();
    this.prev = prev;
    this.next = undefined;
    this.unlisten = undefined;
  }
}

export class BulkheadPolicy extends BasePolicy {
  readonly maxConcurrent: number;
  readonly maxQueue: number;
  readonly queueTimeoutMs: number;
  readonly name: string;
  readonly #onReject = new EventEmitter<BulkheadRejectEvent>();
  /** Subscribe to rejections (queue full, queue wait timed out). An aborted waiter is not a rejection. */
  readonly onReject: Subscribe<BulkheadRejectEvent> = this.#onReject.subscribe;

  #running = 0;
  #queued = 0;
  #head: Waiter | undefined = undefined;
  #tail: Waiter | undefined = undefined;
  #timer: ClockTimer | undefined = undefined;

  constructor(options: BulkheadOptions) {
    const o = check.optionsObject('bulkhead', options, true);
    check.knownKeys('bulkhead', o, KEYS);
    super(check.clock('bulkhead.clock', o.clock));
    this.maxConcurrent = check.positiveInteger('bulkhead.maxConcurrent', o.maxConcurrent, true);
    this.maxQueue = check.number('bulkhead.maxQueue', o.maxQueue ?? BULKHEAD_DEFAULTS.maxQueue, {
      min: 0,
      integer: true,
      infinite: true,
    });
    this.queueTimeoutMs = check.timerMs(
      'bulkhead.queueTimeoutMs',
      o.queueTimeoutMs ?? BULKHEAD_DEFAULTS.queueTimeoutMs,
      {
        above: 0,
        infinite: true,
      },
    );
    this.name = check.string('bulkhead.name', o.name ?? BULKHEAD_DEFAULTS.name);
  }

  /** Operations running now (including abandoned ones whose promise has not settled yet). */
  get running(): number {
    return this.#running;
  }

  /** Calls waiting for a slot. */
  get queued(): number {
    return this.#queued;
  }

  /** Free slots (a call made now would start at once when this is > 0). */
  get available(): number {
    return this.maxConcurrent - this.#running;
  }

  run<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    if (ctx.aborted) return Promise.reject(abortReason(ctx));
    if (this.#running < this.maxConcurrent && this.#head === undefined) {
      this.#running++;
      return this.#exec(fn, ctx);
    }
    return this.#enqueue(fn, ctx);
  }

  /** Inside a pipeline: a call that finds a free slot runs inline; one that must queue declines. */
  [INLINE](): InlineStage {
    return {
      scopes: false,
      detaches: false,
      enter: (ctx) => {
        if (ctx.aborted || this.#running >= this.maxConcurrent || this.#head !== undefined) return DECLINE;
        this.#running++;
        return undefined;
      },
      exit: () => {
        this.#release();
        return undefined;
      },
    };
  }

  #exec<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    let result: T | PromiseLike<T>;
    try {
      result = fn(ctx);
    } catch (error) {
      // Released a microtask later like any other settle: no re-entrant hand-off chain on the stack.
      result = Promise.reject(error);
    }
    return Promise.resolve(result).then(this.#onValue, this.#onError) as Promise<T>;
  }

  readonly #onValue = (value: unknown): unknown => {
    this.#release();
    return value;
  };

  readonly #onError = (error: unknown): never => {
    this.#release();
    throw error;
  };

  /** A slot is free: hand it to the oldest live waiter, or give it back. */
  #release(): void {
    for (let w = this.#head; w !== undefined; w = this.#head) {
      this.#unlink(w);
      if (w.ctx.aborted) {
        w.reject(abortReason(w.ctx));
        continue;
      }
      // settles the waiter's promise with the operation's outcome (no extra `then` of our own)
      w.resolve(this.#exec(w.fn, w.ctx));
      return;
    }
    this.#running--;
  }

  #enqueue<T>(fn: Operation<T>, parent: CallContext): Promise<T> {
    if (this.#queued >= this.maxQueue) return this.#reject('queue-full', parent.key);
    const promise = capturingPromise<T>();
    const deadline = this.queueTimeoutMs === Infinity ? Infinity : this.clock.now() + this.queueTimeoutMs;
    const waiter = new Waiter(fn as Operation<unknown>, parent, deadline, this.#tail);
    if (this.#tail === undefined) this.#head = waiter;
    else this.#tail.next = waiter;
    this.#tail = waiter;
    this.#queued++;
    const ctx = Context.from(parent, this.clock);
    if (ctx.abortable) {
      waiter.unlisten = ctx.listen((reason) => {
        this.#unlink(waiter);
        waiter.reject(reason);
      });
    }
    if (this.#timer === undefined && this.queueTimeoutMs !== Infinity) {
      this.#timer = this.clock.setTimeout(this.#onTimer, this.queueTimeoutMs);
    }
    return promise;
  }

  /** Takes a waiter out of the queue (it got a slot, timed out or was aborted). O(1). */
  #unlink(w: Waiter): void {
    if (w.prev !== undefined) w.prev.next = w.next;
    else this.#head = w.next;
    if (w.next !== undefined) w.next.prev = w.prev;
    else this.#tail = w.prev;
    w.prev = w.next = undefined;
    this.#queued--;
    if (w.unlisten !== undefined) {
      w.unlisten();
      w.unlisten = undefined;
    }
    if (this.#head === undefined && this.#timer !== undefined) {
      this.clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** The shared queue timer: expire every waiter whose deadline passed, re-arm for the new head. */
  readonly #onTimer = (): void => {
    this.#timer = undefined;
    const now = this.clock.now();
    for (let w = this.#head; w !== undefined && w.deadline <= now; w = this.#head) {
      this.#unlink(w);
      w.reject(this.#rejection('queue-timeout', w.ctx.key));
    }
    if (this.#head !== undefined) {
      this.#timer = this.clock.setTimeout(this.#onTimer, Math.max(0, this.#head.deadline - now));
    }
  };

  #reject<T>(reason: 'queue-full', key: string | undefined): Promise<T> {
    return Promise.reject(this.#rejection(reason, key));
  }

  #rejection(reason: 'queue-full' | 'queue-timeout', key: string | undefined): BulkheadRejectedError {
    if (this.#onReject.active) {
      this.#onReject.emit({ name: this.name, reason, key, running: this.#running, queued: this.#queued });
    }
    return withoutStack(() => new BulkheadRejectedError(reason, this.maxConcurrent, this.maxQueue));
  }
}

/** Why a context was aborted (a foreign {@link CallContext} is asked through its signal). */
function abortReason(ctx: CallContext): unknown {
  return ctx instanceof Context ? ctx.reason : ctx.signal.reason;
}

forwardsContext(BulkheadPolicy);

/** Creates a {@link BulkheadPolicy}. */
export function bulkhead(options: BulkheadOptions): BulkheadPolicy {
  return new BulkheadPolicy(options);
}
