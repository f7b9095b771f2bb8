/**
 * timeout: bounds how long an operation may take.
 *
 * - `aggressive` (default): the call settles with {@link TimeoutError} the moment the time is up, and the
 *   operation's signal is aborted so the work can stop. The caller can rely on the bound.
 * - `cooperative`: the operation's signal is aborted when the time is up, and the call waits for the
 *   operation to settle; if the deadline passed, the result is a {@link TimeoutError} whatever it returned.
 *
 * Cost: no `AbortController` unless the operation reads `ctx.signal`, and no timer per call. In-flight
 * calls sit in a FIFO (their deadlines are in order, since `timeoutMs` is fixed per policy); one timer
 * per policy is armed for the earliest deadline and re-armed when it fires. When nothing is in flight the
 * timer is unref'd, so it never keeps a process alive, and it lapses at its next tick.
 */
import type { Clock, ClockTimer } from './clock.js';
import { onAbort } from './abort.js';
import { Context, type CallContext, type Operation } from './context.js';
import { TimeoutError, withoutStack } from './errors.js';
import { EventEmitter, type Subscribe } from './events.js';
import * as check from './options.js';
import { BasePolicy, invoke } from './policy.js';

export type TimeoutStrategy = 'aggressive' | 'cooperative';

export interface TimeoutOptions {
  /** Time allowed per call, in ms. Required. */
  timeoutMs: number;
  /**
   * `aggressive` settles at the deadline; `cooperative` aborts the signal and waits for the operation.
   * @default 'aggressive'
   */
  strategy?: TimeoutStrategy;
  /** Name used in events. @default 'timeout' */
  name?: string;
  /** @default systemClock */
  clock?: Clock;
}

export interface TimeoutEvent {
  readonly name: string;
  readonly timeoutMs: number;
  readonly key: string | undefined;
}

const DEFAULTS = Object.freeze({ strategy: 'aggressive' as TimeoutStrategy, name: 'timeout' });
const KEYS = ['timeoutMs', 'strategy', 'name', 'clock'] as const;

interface Entry {
  readonly deadline: number;
  readonly ctx: Context;
  prev: Entry | undefined;
  next: Entry | undefined;
  queued: boolean;
  fired: boolean;
  /** Aggressive mode: rejects the caller's promise at the deadline. */
  onFire: ((error: TimeoutError) => void) | undefined;
}

export class TimeoutPolicy extends BasePolicy {
  readonly timeoutMs: number;
  readonly strategy: TimeoutStrategy;
  readonly name: string;
  readonly #onTimeout = new EventEmitter<TimeoutEvent>();
  /** Subscribe to timeouts. */
  readonly onTimeout: Subscribe<TimeoutEvent> = this.#onTimeout.subscribe;

  #head: Entry | undefined = undefined;
  #tail: Entry | undefined = undefined;
  #timer: ClockTimer | undefined = undefined;
  #timerRefed = false;

  constructor(options: TimeoutOptions) {
    const o = check.optionsObject('timeout', options, true);
    check.knownKeys('timeout', o, KEYS);
    super(check.clock('timeout.clock', o.clock));
    this.timeoutMs = check.positiveMs('timeout.timeoutMs', o.timeoutMs);
    this.strategy = check.oneOf('timeout.strategy', o.strategy ?? DEFAULTS.strategy, [
      'aggressive',
      'cooperative',
    ]);
    this.name = check.string('timeout.name', o.name ?? DEFAULTS.name);
  }

  /** Calls currently in flight under this policy. */
  get inFlight(): number {
    let n = 0;
    for (let e = this.#head; e; e = e.next) n++;
    return n;
  }

  run<T>(fn: Operation<T>, parent: CallContext): Promise<T> {
    const outer = Context.from(parent, this.clock);
    const deadline = this.clock.now() + this.timeoutMs;
    const ctx = outer.scope(deadline);
    const entry: Entry = {
      deadline,
      ctx,
      prev: undefined,
      next: undefined,
      queued: false,
      fired: false,
      onFire: undefined,
    };
    this.#enqueue(entry);
    return this.strategy === 'aggressive' ? this.#aggressive(fn, entry, outer) : this.#cooperative(fn, entry);
  }

  async #cooperative<T>(fn: Operation<T>, entry: Entry): Promise<T> {
    try {
      const value = await invoke(fn, entry.ctx);
      if (entry.fired) throw entry.ctx.reason;
      return value;
    } catch (error) {
      if (entry.fired) throw entry.ctx.reason;
      throw error;
    } finally {
      this.#dequeue(entry);
      entry.ctx.release();
    }
  }

  #aggressive<T>(fn: Operation<T>, entry: Entry, outer: Context): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let unlisten: (() => void) | undefined;
      const settle = (): void => {
        this.#dequeue(entry);
        entry.ctx.release();
        if (unlisten !== undefined) unlisten();
      };
      entry.onFire = (error) => {
        if (unlisten !== undefined) unlisten();
        reject(error);
      };
      // The caller's abort settles the call at once too (only when something could abort).
      if (outer.abortable) {
        const signal = outer.signal;
        unlisten = onAbort(signal, () => {
          // propagate to the operation's signal before dropping the links
          entry.ctx.abort(signal.reason);
          settle();
          reject(signal.reason);
        });
      }
      invoke(fn, entry.ctx).then(
        (value) => {
          settle();
          resolve(value);
        },
        (error: unknown) => {
          settle();
          reject(error);
        },
      );
    });
  }

  #enqueue(entry: Entry): void {
    entry.queued = true;
    if (this.#tail === undefined) {
      this.#head = this.#tail = entry;
    } else {
      entry.prev = this.#tail;
      this.#tail.next = entry;
      this.#tail = entry;
    }
    if (this.#timer === undefined) this.#arm(entry.deadline);
    else if (!this.#timerRefed) {
      this.#timer.ref?.();
      this.#timerRefed = true;
    }
  }

  #dequeue(entry: Entry): void {
    if (!entry.queued) return;
    entry.queued = false;
    if (entry.prev !== undefined) entry.prev.next = entry.next;
    else this.#head = entry.next;
    if (entry.next !== undefined) entry.next.prev = entry.prev;
    else this.#tail = entry.prev;
    entry.prev = entry.next = undefined;
    if (this.#head === undefined && this.#timer !== undefined && this.#timerRefed) {
      this.#timer.unref?.();
      this.#timerRefed = false;
    }
  }

  #arm(at: number): void {
    this.#timer = this.clock.setTimeout(this.#onTimer, Math.max(0, at - this.clock.now()));
    this.#timerRefed = true;
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    const now = this.clock.now();
    for (let e = this.#head; e !== undefined && e.deadline <= now; e = this.#head) {
      this.#dequeue(e);
      this.#fire(e);
    }
    if (this.#head !== undefined) this.#arm(this.#head.deadline);
  };

  #fire(entry: Entry): void {
    entry.fired = true;
    const error = withoutStack(() => new TimeoutError(this.timeoutMs));
    entry.ctx.abort(error);
    if (this.#onTimeout.active)
      this.#onTimeout.emit({ name: this.name, timeoutMs: this.timeoutMs, key: entry.ctx.key });
    entry.onFire?.(error);
  }

  /** Cancels the shared timer (only needed to drop it before it lapses by itself, e.g. in tests). */
  dispose(): void {
    if (this.#timer !== undefined && this.#head === undefined) {
      this.clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }
}

/** Creates a {@link TimeoutPolicy}. */
export function timeout(options: TimeoutOptions): TimeoutPolicy {
  return new TimeoutPolicy(options);
}
