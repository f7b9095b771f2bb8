/**
 * Deadlines: per call (`execute(fn, { deadline | timeoutMs })`) and ambient (`runWithDeadline`).
 *
 * A call with a deadline runs in a {@link DeadlineCall}: a root abort scope that ends at the deadline. At
 * that moment the call rejects with {@link DeadlineExceededError} (the caller can rely on the bound, as
 * with an aggressive timeout) and the operation's signal, if it read one, is aborted with that error.
 * Every policy inside sees the deadline as `ctx.deadline` / `ctx.remainingMs()`, and the tighter of its
 * own limit and the caller's applies: an inner timeout's deadline is capped by it, retry does not sleep
 * past it, a bulkhead waiter, a rate-limiter waiter and a pending hedge end with it. To the policies the
 * deadline is the caller's abort: a breaker does not count it and retry does not retry it.
 *
 * The ambient deadline lives in an `AsyncLocalStorage` (a Node builtin): `runWithDeadline({ timeoutMs },
 * fn)` sets it for everything `fn` starts, and every `execute` in that async context honours it without
 * parameter threading (the earliest of it and the call's own applies). A server sets a request's
 * deadline once; every outgoing call made through Bulwark in that request sees it. The storage is shared
 * through a `Symbol.for` registry on `globalThis`, so two copies of @bulwark/core in one process see the
 * same ambient deadline; it is created on the first `runWithDeadline`: until then `execute` pays one
 * property read.
 *
 * Cost: nothing for a call without a deadline (when no ambient deadline was ever set, one global read);
 * with one, two objects (the root context and its scope), one promise, and an entry in the clock's shared
 * {@link TimerQueue} (no timer per call).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { systemClock, type Clock } from './clock.js';
import { onAbort } from './abort.js';
import { Context, ScopeContext, type ExecuteOptions, type Operation } from './context.js';
import { DeadlineExceededError, InvalidOptionError, withoutStack } from './errors.js';
import * as check from './options.js';
import { capturingPromise, takeReject, takeResolve } from './promise.js';
import { TimerQueue, type TimerEntry } from './timer-queue.js';

/** What `runWithDeadline` stores: a deadline on a clock, and a signal (either may be absent). */
interface Ambient {
  readonly deadline: number;
  readonly clock: Clock;
  readonly signal: AbortSignal | undefined;
}

/** Options of {@link runWithDeadline}. */
export interface DeadlineScopeOptions {
  /** Absolute time on `clock` by which everything started inside must settle. */
  deadline?: number;
  /** Time allowed from now, in ms (≥ 0). With `deadline`, the earlier applies. */
  timeoutMs?: number;
  /** Aborting it aborts every call made through Bulwark inside (e.g. the request's own signal). */
  signal?: AbortSignal;
  /** The clock `deadline` is on. @default systemClock (`performance.now()`) */
  clock?: Clock;
}

type Storage = AsyncLocalStorage<Ambient | undefined>;

/**
 * Where the ambient storage lives, shared by every copy of @bulwark/core in the process (found under a
 * `Symbol.for` key of `globalThis`). Each copy keeps a direct reference to this one object, so a call
 * reads a plain property, not the global object, to learn whether any ambient deadline was ever set.
 */
interface Registry {
  storage: Storage | undefined;
}
const REGISTRY = Symbol.for('bulwark.deadline.registry');
const registry: Registry = ((globalThis as { [REGISTRY]?: Registry })[REGISTRY] ??= { storage: undefined });

/** The ambient deadline of the current async context, if any (one property read until one was ever set). */
function ambient(): Ambient | undefined {
  const storage = registry.storage;
  return storage === undefined ? undefined : storage.getStore();
}

/** True when `execute` must look further than the fast path: per-call or ambient bounds. */
export function bounded(options: ExecuteOptions | undefined): boolean {
  if (options !== undefined && (options.deadline !== undefined || options.timeoutMs !== undefined))
    return true;
  const storage = registry.storage;
  return storage !== undefined && storage.getStore() !== undefined;
}

/** `deadline` (on `from`) as a time on `to`. */
function convert(deadline: number, from: Clock, to: Clock): number {
  if (from === to || deadline === Infinity || deadline === -Infinity) return deadline;
  return to.now() + (deadline - from.now());
}

/**
 * Runs `fn` with an ambient deadline (and/or signal): every `execute` of a Bulwark policy started inside
 * `fn` — synchronously or in any continuation — honours it. Nested calls never extend an outer deadline:
 * the earlier one applies, and both signals abort.
 *
 * ```ts
 * // a server, once per request:
 * runWithDeadline({ timeoutMs: budgetFromHeader, signal: request.signal }, () => handle(request));
 * ```
 */
export function runWithDeadline<R>(options: DeadlineScopeOptions, fn: () => R): R {
  const o = check.optionsObject('runWithDeadline', options, true);
  check.knownKeys('runWithDeadline', o, ['deadline', 'timeoutMs', 'signal', 'clock']);
  const clock = check.clock('runWithDeadline.clock', o.clock);
  let deadline =
    o.deadline === undefined ? Infinity : deadlineValue('runWithDeadline.deadline', o.deadline, clock.now());
  if (o.timeoutMs !== undefined) {
    deadline = Math.min(deadline, clock.now() + timeoutValue('runWithDeadline.timeoutMs', o.timeoutMs));
  }
  let signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidOptionError('runWithDeadline.signal', signal, 'an AbortSignal');
  }
  check.fn('runWithDeadline.fn', fn);
  const outer = ambient();
  if (outer !== undefined) {
    deadline = Math.min(deadline, convert(outer.deadline, outer.clock, clock));
    if (outer.signal !== undefined)
      signal = signal === undefined ? outer.signal : AbortSignal.any([signal, outer.signal]);
  }
  const storage = (registry.storage ??= new AsyncLocalStorage<Ambient | undefined>());
  return storage.run({ deadline, clock, signal }, fn);
}

/**
 * Runs `fn` outside any ambient deadline: for work started in a request that must outlive it (a cache
 * refresh, a write-behind). Calls made inside still honour their own `deadline` / `timeoutMs`.
 */
export function runWithoutDeadline<R>(fn: () => R): R {
  check.fn('runWithoutDeadline.fn', fn);
  const storage = registry.storage;
  return storage === undefined ? fn() : storage.run(undefined, fn);
}

/**
 * The ambient deadline as a time on `clock` (`Infinity` when there is none): what an `execute` made here
 * would be bounded by. `currentDeadline() - performance.now()` is the request's remaining budget.
 */
export function currentDeadline(clock: Clock = systemClock): number {
  const a = ambient();
  return a === undefined ? Infinity : convert(a.deadline, a.clock, clock);
}

/** The ambient signal (from `runWithDeadline({ signal })`), if any. */
export function currentSignal(): AbortSignal | undefined {
  return ambient()?.signal;
}

/** A finite deadline further than this from now is taken for a mistake (a `Date.now()` value). */
const FARTHEST_MS = 365 * 24 * 3600 * 1000;

function deadlineValue(option: string, value: unknown, now: number): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value === -Infinity) {
    throw new InvalidOptionError(option, value, 'a time on the clock (a number, or Infinity for none)');
  }
  if (value !== Infinity && value - now > FARTHEST_MS) {
    // performance.now() counts from the process start; Date.now() from 1970: ~55 years apart
    throw new InvalidOptionError(
      option,
      value,
      `a time on the policy's clock (performance.now() by default, now ${Math.round(now)}), at most a year ahead; this one is ${Math.round((value - now) / 86_400_000)} days away (a Date.now() value? use timeoutMs for a relative bound)`,
    );
  }
  return value;
}

/**
 * A relative bound: ms ≥ 0, at most a year ({@link FARTHEST_MS}, the bound `deadline` has), or `Infinity`
 * for none. A longer finite one would make a deadline that every `execute` given it (`deadline:
 * currentDeadline()`, degrade's single flight) refuses.
 */
function timeoutValue(option: string, value: unknown): number {
  const ms = check.number(option, value, { min: 0, infinite: true });
  if (ms !== Infinity && ms > FARTHEST_MS) {
    throw new InvalidOptionError(
      option,
      value,
      `ms >= 0, at most a year (${FARTHEST_MS}, the bound of a deadline), or Infinity for none`,
    );
  }
  return ms;
}

/**
 * A call under a deadline: the root abort scope every policy of the call runs in, its entry in the
 * clock's timer queue, and the caller's promise. Ends at the deadline (rejecting with
 * {@link DeadlineExceededError}), on the caller's or the ambient signal (rejecting with its reason), or
 * when the policy's promise settles.
 */
export class DeadlineCall extends ScopeContext implements TimerEntry {
  declare timerAt: number;
  declare timerIndex: number;
  declare timerKeepAlive: boolean;
  declare timerSeq: number;
  /** The time the call had when it started, in ms. */
  declare readonly budgetMs: number;
  declare readonly promise: Promise<unknown>;
  declare resolve: ((value: unknown) => void) | undefined;
  declare reject: ((error: unknown) => void) | undefined;
  declare unlisten: (() => void) | undefined;
  /** Stops following the ambient signal (when the caller gave a signal of its own too). */
  declare unfollow: (() => void) | undefined;

  constructor(root: Context, deadline: number, budgetMs: number) {
    super(root, deadline);
    this.timerAt = Infinity;
    this.timerIndex = -1;
    this.timerKeepAlive = true;
    this.timerSeq = 0;
    this.budgetMs = budgetMs;
    this.promise = capturingPromise();
    this.resolve = takeResolve();
    this.reject = takeReject();
    this.unlisten = undefined;
    this.unfollow = undefined;
  }

  /** The deadline passed. */
  onTimer(): void {
    this.abort(withoutStack(() => new DeadlineExceededError(this.budgetMs)));
  }

  override expireDue(now: number): void {
    if (this.timerIndex >= 0 && this.timerAt <= now) {
      TimerQueue.for(this.clock).remove(this);
      this.onTimer();
    }
  }

  /** The call ends with (`ok`, `result`) unless it already ended. */
  settle(ok: boolean, result: unknown): void {
    const resolve = this.resolve;
    const reject = this.reject;
    if (resolve === undefined) return;
    this.resolve = this.reject = undefined;
    TimerQueue.for(this.clock).remove(this);
    const unlisten = this.unlisten;
    if (unlisten !== undefined) {
      this.unlisten = undefined;
      unlisten();
    }
    const unfollow = this.unfollow;
    if (unfollow !== undefined) {
      this.unfollow = undefined;
      unfollow();
    }
    this.release();
    if (ok) resolve(result);
    else reject!(result);
  }

  readonly #onValue = (value: unknown): void => this.settle(true, value);
  readonly #onError = (error: unknown): void => this.settle(false, error);

  /** Starts waiting: queues the deadline, listens for aborts, and settles with `promise`. */
  track(promise: Promise<unknown>): Promise<unknown> {
    promise.then(this.#onValue, this.#onError);
    return this.promise;
  }
}

/** Rejects with the abort of an ended call. */
function ended(call: DeadlineCall, reason: unknown): void {
  call.settle(false, reason);
}

/**
 * Starts a call for `execute` when {@link bounded} said it has bounds: resolves the deadline and the
 * signals, and runs `start(ctx)` in the right root context. Returns the caller's promise.
 */
export function executeBounded(
  clock: Clock,
  options: ExecuteOptions | undefined,
  start: (ctx: Context) => Promise<unknown>,
  carrier?: object,
  operation?: Operation<unknown>,
): Promise<unknown> {
  let deadline = Infinity;
  const now = clock.now();
  try {
    if (options?.deadline !== undefined) deadline = deadlineValue('execute.deadline', options.deadline, now);
    if (options?.timeoutMs !== undefined) {
      deadline = Math.min(deadline, now + timeoutValue('execute.timeoutMs', options.timeoutMs));
    }
  } catch (error) {
    return Promise.reject(error);
  }
  const amb = ambient();
  let ambientSignal: AbortSignal | undefined;
  if (amb !== undefined) {
    deadline = Math.min(deadline, convert(amb.deadline, amb.clock, clock));
    ambientSignal = amb.signal;
    if (ambientSignal?.aborted) return Promise.reject(ambientSignal.reason);
  }
  const explicit = options?.signal;
  const budgetMs = Math.max(0, deadline - now);
  if (deadline <= now) return Promise.reject(withoutStack(() => new DeadlineExceededError(budgetMs)));
  const root = Context.root(clock, {
    key: options?.key,
    signal: explicit ?? ambientSignal,
  });
  const both = explicit !== undefined && ambientSignal !== undefined;
  if (deadline === Infinity && !both) {
    if (carrier !== undefined) root.carry(carrier, operation!);
    return start(root);
  }
  const call = new DeadlineCall(root, deadline, budgetMs);
  if (carrier !== undefined) call.carry(carrier, operation!);
  if (deadline !== Infinity) TimerQueue.for(clock).add(call, deadline, true);
  // the call ends at once on an abort: its own scope follows the caller's signal (one registration)
  call.unlisten = call.listen((reason) => ended(call, reason));
  if (both) {
    const signal = ambientSignal!;
    call.unfollow = onAbort(signal, () => call.abort(signal.reason));
  }
  let promise: Promise<unknown>;
  try {
    promise = start(call);
  } catch (error) {
    promise = Promise.reject(error);
  }
  return call.track(promise);
}
