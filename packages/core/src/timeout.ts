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
 * timer is unref'd, so it never keeps a process alive, and it lapses at its next tick. The call's scope and
 * its queue entry are one object ({@link TimeoutCall}); the clock is read once per call. Inside a pipeline
 * of built-in policies the timeout runs inline (see `InlineStage` in policy.ts): a cooperative one adds no
 * promise at all, an aggressive one only the promise it must be able to settle at the deadline.
 */
import type { Clock, ClockTimer } from './clock.js';
import { Context, ScopeContext, type CallContext, type Operation } from './context.js';
import { TimeoutError, withoutStack } from './errors.js';
import { EventEmitter, type Subscribe } from './events.js';
import * as check from './options.js';
import {
  BasePolicy,
  capturingPromise,
  DETACHED,
  forwardsContext,
  INLINE,
  invoke,
  takeReject,
  takeResolve,
  type InlineStage,
} from './policy.js';

export type TimeoutStrategy = 'aggressive' | 'cooperative';

export interface TimeoutOptions {
  /** Time allowed per call, in ms (> 0, at most 2^31 − 1: it is handed to a timer). Required. */
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

/** The defaults of {@link TimeoutOptions}. */
export const TIMEOUT_DEFAULTS = Object.freeze({ strategy: 'aggressive' as TimeoutStrategy, name: 'timeout' });
const KEYS = ['timeoutMs', 'strategy', 'name', 'clock'] as const;

/**
 * One call under a timeout: its abort scope (the context the operation sees) and its place in the
 * policy's queue, in one object.
 */
class TimeoutCall extends ScopeContext {
  /** This policy's deadline for the call (`deadline` may be earlier: capped by an enclosing one). */
  declare readonly due: number;
  declare prev: TimeoutCall | undefined;
  declare next: TimeoutCall | undefined;
  declare queued: boolean;
  declare fired: boolean;
  /** Aggressive: settle the caller's promise (undefined once the call is over). */
  declare resolve: ((value: unknown) => void) | undefined;
  declare reject: ((error: unknown) => void) | undefined;
  /** Aggressive: stops listening for the caller's abort. */
  declare unlisten: (() => void) | undefined;
  /** Aggressive, inside a pipeline: the promise the stages outside this one go on from. */
  declare promise: Promise<unknown> | undefined;

  constructor(outer: Context, due: number) {
    super(outer, due);
    this.due = due;
    this.prev = undefined;
    this.next = undefined;
    this.queued = false;
    this.fired = false;
    this.resolve = undefined;
    this.reject = undefined;
    this.unlisten = undefined;
    this.promise = undefined;
  }
}

export class TimeoutPolicy extends BasePolicy {
  readonly timeoutMs: number;
  readonly strategy: TimeoutStrategy;
  readonly name: string;
  readonly #onTimeout = new EventEmitter<TimeoutEvent>();
  /** Subscribe to timeouts. */
  readonly onTimeout: Subscribe<TimeoutEvent> = this.#onTimeout.subscribe;

  #head: TimeoutCall | undefined = undefined;
  #tail: TimeoutCall | undefined = undefined;
  #timer: ClockTimer | undefined = undefined;
  #timerRefed = false;

  constructor(options: TimeoutOptions) {
    const o = check.optionsObject('timeout', options, true);
    check.knownKeys('timeout', o, KEYS);
    super(check.clock('timeout.clock', o.clock));
    this.timeoutMs = check.timerMs('timeout.timeoutMs', o.timeoutMs, { above: 0 });
    this.strategy = check.oneOf('timeout.strategy', o.strategy ?? TIMEOUT_DEFAULTS.strategy, [
      'aggressive',
      'cooperative',
    ]);
    this.name = check.string('timeout.name', o.name ?? TIMEOUT_DEFAULTS.name);
  }

  /** Calls currently in flight under this policy. */
  get inFlight(): number {
    let n = 0;
    for (let e = this.#head; e; e = e.next) n++;
    return n;
  }

  run<T>(fn: Operation<T>, parent: CallContext): Promise<T> {
    const outer = Context.from(parent, this.clock);
    const call = new TimeoutCall(outer, this.clock.now() + this.timeoutMs);
    this.#enqueue(call);
    return this.strategy === 'aggressive' ? this.#aggressive(fn, call, outer) : this.#cooperative(fn, call);
  }

  /**
   * Inside a pipeline: the call is the inner stages' context. A cooperative timeout only has to see the
   * outcome; an aggressive one has a promise of its own, which it settles at the deadline or on the
   * caller's abort, or with the inner stages' outcome (see {@link InlineStage.promise}).
   */
  [INLINE](): InlineStage {
    const aggressive = this.strategy === 'aggressive';
    return {
      scopes: true,
      detaches: aggressive,
      enter: (ctx) => {
        const call = new TimeoutCall(ctx, this.clock.now() + this.timeoutMs);
        this.#enqueue(call);
        if (aggressive) {
          call.promise = capturingPromise();
          call.resolve = takeResolve();
          call.reject = takeReject();
          if (ctx.abortable) this.#listen(call);
        }
        return call;
      },
      exit: aggressive
        ? (_ctx, token, ok, result) => {
            const call = token as TimeoutCall;
            const resolve = call.resolve;
            const reject = call.reject;
            this.#settle(call);
            if (ok) resolve?.(result);
            else reject?.(result);
            return DETACHED;
          }
        : (_ctx, token) => {
            const call = token as TimeoutCall;
            this.#dequeue(call);
            call.release();
            if (call.fired) throw call.reason;
            return undefined;
          },
      promise: (token) => (token as TimeoutCall).promise!,
    };
  }

  #cooperative<T>(fn: Operation<T>, call: TimeoutCall): Promise<T> {
    return invoke(fn, call).then(
      (value) => {
        this.#dequeue(call);
        call.release();
        if (call.fired) throw call.reason;
        return value;
      },
      (error: unknown) => {
        this.#dequeue(call);
        call.release();
        throw call.fired ? call.reason : error;
      },
    );
  }

  #aggressive<T>(fn: Operation<T>, call: TimeoutCall, outer: Context): Promise<T> {
    const promise = capturingPromise<T>();
    call.resolve = takeResolve();
    call.reject = takeReject();
    // The caller's abort settles the call at once too (only when something could abort).
    if (outer.abortable) this.#listen(call);
    invoke(fn, call).then(
      (value) => {
        const resolve = call.resolve;
        this.#settle(call);
        if (resolve !== undefined) resolve(value);
      },
      (error: unknown) => {
        const reject = call.reject;
        this.#settle(call);
        if (reject !== undefined) reject(error);
      },
    );
    return promise;
  }

  /**
   * Aggressive: the caller's abort ends the call at once. The call's own scope follows the caller's
   * (one registration there, shared with the operation's signal if it reads one), and the call ends when
   * that scope aborts.
   */
  #listen(call: TimeoutCall): void {
    call.unlisten = call.listen((reason) => this.#end(call, reason));
  }

  /** Aggressive: the call ends before the operation settles (deadline or caller's abort). */
  #end(call: TimeoutCall, error: unknown): void {
    const reject = call.reject;
    this.#settle(call);
    if (reject !== undefined) reject(error);
  }

  /** Aggressive: the call is over (settled, timed out or aborted by the caller). */
  #settle(call: TimeoutCall): void {
    this.#dequeue(call);
    call.release();
    call.resolve = call.reject = undefined;
    const unlisten = call.unlisten;
    if (unlisten !== undefined) {
      call.unlisten = undefined;
      unlisten();
    }
  }

  #enqueue(entry: TimeoutCall): void {
    entry.queued = true;
    if (this.#tail === undefined) {
      this.#head = this.#tail = entry;
    } else {
      entry.prev = this.#tail;
      this.#tail.next = entry;
      this.#tail = entry;
    }
    if (this.#timer === undefined) this.#arm(entry.due);
    else if (!this.#timerRefed) {
      this.#timer.ref?.();
      this.#timerRefed = true;
    }
  }

  #dequeue(entry: TimeoutCall): void {
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
    for (let e = this.#head; e !== undefined && e.due <= now; e = this.#head) {
      this.#dequeue(e);
      // The caller's deadline, due now too, goes first: the call is then the caller's abort (which a
      // breaker does not count), whichever of the two timers happened to fire first.
      if (e.deadline <= now) e.expireDue(now);
      if (e.aborted) {
        if (e.resolve !== undefined) this.#end(e, e.reason);
        continue;
      }
      this.#fire(e);
    }
    if (this.#head !== undefined) this.#arm(this.#head.due);
  };

  #fire(call: TimeoutCall): void {
    call.fired = true;
    const error = withoutStack(() => new TimeoutError(this.timeoutMs));
    call.abort(error);
    if (this.#onTimeout.active)
      this.#onTimeout.emit({ name: this.name, timeoutMs: this.timeoutMs, key: call.key });
    this.#end(call, error);
  }

  /** Cancels the shared timer (only needed to drop it before it lapses by itself, e.g. in tests). */
  dispose(): void {
    if (this.#timer !== undefined && this.#head === undefined) {
      this.clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }
}

forwardsContext(TimeoutPolicy);

/** Creates a {@link TimeoutPolicy}. */
export function timeout(options: TimeoutOptions): TimeoutPolicy {
  return new TimeoutPolicy(options);
}
