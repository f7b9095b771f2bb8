/**
 * The one call context every policy passes down: signal, deadline, attempt, operation key.
 *
 * The signal is created lazily, only when the operation reads `ctx.signal` (an `AbortSignal` is among the
 * dearest objects a call can make). Policies never read it: they check `ctx.aborted` and wait for an
 * abort with {@link Context.listen}, which a scope serves from a plain list of callbacks.
 */
import type { Clock } from './clock.js';
import { onAbort } from './abort.js';
import { reportListenerError } from './events.js';

/** What an operation sees. */
export interface CallContext {
  /** Aborted when the caller aborts or an enclosing timeout fires. Created on first read. */
  readonly signal: AbortSignal;
  /** True once the caller aborted or an enclosing timeout fired (never allocates a signal). */
  readonly aborted: boolean;
  /** 1 for the first call, 2 for the first retry, … */
  readonly attempt: number;
  /** Absolute time (on {@link CallContext.clock}) by which the call must settle; `Infinity` if none. */
  readonly deadline: number;
  /** The operation key given to `execute` (e.g. a rate-limit or single-flight key), if any. */
  readonly key: string | undefined;
  /** The clock the deadline is measured on. */
  readonly clock: Clock;
  /** Milliseconds left before {@link CallContext.deadline} (`Infinity` if none, never negative). */
  remainingMs(): number;
}

/** Per-call options of `policy.execute`. */
export interface ExecuteOptions {
  /** The caller's signal: aborting it rejects the call with `signal.reason` and aborts the operation. */
  signal?: AbortSignal | undefined;
  /** Operation key (rate-limit key, single-flight key, a label for events). */
  key?: string | undefined;
  /**
   * Absolute time on the policy's clock (`policy.clock.now()`: `performance.now()` by default) by which
   * the call must settle. At that moment the call rejects with `DeadlineExceededError` and the
   * operation's signal is aborted. With `timeoutMs` and an ambient deadline (`runWithDeadline`), the
   * earliest applies. `Infinity`: none of its own.
   */
  deadline?: number | undefined;
  /** Time allowed for the call from now, in ms (≥ 0): the same as `deadline: clock.now() + timeoutMs`. */
  timeoutMs?: number | undefined;
}

/** The operation a policy runs. */
export type Operation<T> = (ctx: CallContext) => T | PromiseLike<T>;

/**
 * The concrete context. Policies derive children from it:
 * - {@link Context.withAttempt} (retry): same abort scope, new attempt number;
 * - {@link Context.scope} (timeout): a new abort scope with its own lazily created signal, linked to the
 *   parent's, and an earlier deadline.
 *
 * Fields are declared, not initialised, and set in the constructor in one order: every context of a
 * class has one shape, and construction is plain stores (class-field initialisers cost more per object).
 * A context that owns no scope carries no scope fields (see {@link ScopeContext}).
 */
export class Context implements CallContext {
  declare readonly clock: Clock;
  declare readonly attempt: number;
  declare readonly deadline: number;
  declare readonly key: string | undefined;
  /** Parent context, or undefined at the root. */
  declare protected readonly parent: Context | undefined;
  /** The caller's signal (root only). */
  declare private readonly external: AbortSignal | undefined;
  /** The signal once read (the caller's, the parent's, or a fresh one). */
  declare protected materialized: AbortSignal | undefined;
  /** The pipeline whose call this context carries (see {@link Context.carrying}), if any. */
  declare private carrier: object | undefined;
  /** That call's operation. */
  declare private operation: Operation<unknown> | undefined;

  protected constructor(
    clock: Clock,
    attempt: number,
    deadline: number,
    key: string | undefined,
    parent: Context | undefined,
    external: AbortSignal | undefined,
  ) {
    this.clock = clock;
    this.attempt = attempt;
    this.deadline = deadline;
    this.key = key;
    this.parent = parent;
    this.external = external;
    this.materialized = undefined;
    this.carrier = undefined;
    this.operation = undefined;
  }

  /** A root context for one `execute` call. */
  static root(clock: Clock, options?: ExecuteOptions): Context {
    return new Context(clock, 1, Infinity, options?.key, undefined, options?.signal);
  }

  /** Accepts any {@link CallContext}; a foreign object becomes a root context that follows its signal. */
  static from(ctx: CallContext, fallbackClock: Clock): Context {
    if (ctx instanceof Context) return ctx;
    return new Context(
      ctx.clock ?? fallbackClock,
      ctx.attempt ?? 1,
      ctx.deadline ?? Infinity,
      ctx.key,
      undefined,
      ctx.signal,
    );
  }

  /**
   * A root context (`options` given) or a child of this one (same scope, attempt and deadline) that
   * carries `operation` for `carrier` (a pipeline), found again by {@link Context.operationFor} from
   * this context or any context derived from it.
   */
  static carrying(
    carrier: object,
    operation: Operation<unknown>,
    parent: Context | undefined,
    clock: Clock,
    options?: ExecuteOptions,
  ): Context {
    const ctx =
      parent === undefined
        ? new Context(clock, 1, Infinity, options?.key, undefined, options?.signal)
        : new Context(parent.clock, parent.attempt, parent.deadline, parent.key, parent, undefined);
    ctx.carrier = carrier;
    ctx.operation = operation;
    return ctx;
  }

  /** The operation carried for `carrier` by this context or its nearest ancestor that carries one. */
  operationFor(carrier: object): Operation<unknown> | undefined {
    if (this.carrier === carrier) return this.operation;
    for (let c = this.parent; c !== undefined; c = c.parent) {
      if (c.carrier === carrier) return c.operation;
    }
    return undefined;
  }

  /** Marks this context as carrying `operation` for `carrier` (a pipeline); see {@link Context.carrying}. */
  carry(carrier: object, operation: Operation<unknown>): this {
    this.carrier = carrier;
    this.operation = operation;
    return this;
  }

  /**
   * Ends, now, every call deadline at or above this context that is due at `now` (see `DeadlineCall`),
   * so that a policy's own timer firing at the same moment as the caller's deadline yields to it: the
   * caller's deadline is the caller's abort, which no policy counts as the dependency's failure.
   */
  expireDue(now: number): void {
    this.parent?.expireDue(now);
  }

  /** Same abort scope and deadline, another attempt number. */
  withAttempt(attempt: number): Context {
    return new Context(this.clock, attempt, this.deadline, this.key, this, undefined);
  }

  /** A new abort scope (owned by a timeout) with the given deadline (capped by this one's). */
  scope(deadline: number): Context {
    return new ScopeContext(this, deadline);
  }

  get aborted(): boolean {
    if (this.external !== undefined) return this.external.aborted;
    return this.parent !== undefined && this.parent.aborted;
  }

  /** Why the context was aborted (`undefined` while it is not). */
  get reason(): unknown {
    if (this.external !== undefined) return this.external.aborted ? this.external.reason : undefined;
    return this.parent?.reason;
  }

  /** True when something could abort this context: a caller's signal or an enclosing scope. */
  get abortable(): boolean {
    if (this.external !== undefined) return true;
    return this.parent !== undefined && this.parent.abortable;
  }

  remainingMs(): number {
    if (this.deadline === Infinity) return Infinity;
    return Math.max(0, this.deadline - this.clock.now());
  }

  get signal(): AbortSignal {
    if (this.materialized !== undefined) return this.materialized;
    if (this.external !== undefined) return (this.materialized = this.external);
    if (this.parent !== undefined) return (this.materialized = this.parent.signal);
    // a root with no caller signal: a fresh one per call (never shared, so listeners cannot pile up)
    return (this.materialized = new AbortController().signal);
  }

  /** The nearest scope at or above this context (undefined: only a caller's signal, or nothing, can abort it). */
  scopeOf(): ScopeContext | undefined {
    return this.parent?.scopeOf();
  }

  /**
   * Calls `callback(reason)` once when this context is aborted; returns a function that stops listening
   * (idempotent). Call it only while `aborted` is false and `abortable` is true. Unlike reading `signal`,
   * it creates no `AbortSignal` for a scope: how policies wait for an abort.
   */
  listen(callback: (reason: unknown) => void): () => void {
    const external = this.external;
    if (external !== undefined) return onAbort(external, () => callback(external.reason));
    return this.parent !== undefined ? this.parent.listen(callback) : ignore;
  }

  /** Aborts this scope (a timeout fired): the signal, if materialised, aborts with `reason`. */
  abort(reason: unknown): void {
    void reason;
    throw new Error('Context.abort() is only for contexts created by scope()');
  }

  /** Drops the link to the parent's signal. Call when the scope's operation settles. */
  release(): void {}
}

/**
 * A context that owns an abort scope (made by {@link Context.scope}; a timeout's call is one).
 *
 * A scope tells three kinds of followers when it aborts: its signal (once the operation has read it),
 * callbacks registered with {@link Context.listen}, and the scopes nested in it. A scope follows the
 * scope (or caller's signal) above it only while it has followers of its own, and a nested scope is
 * adopted directly, without a closure or an `AbortSignal`: that is what keeps nested timeouts cheap.
 */
export class ScopeContext extends Context {
  declare private scopeAborted: boolean;
  declare private scopeReason: unknown;
  declare private controller: AbortController | undefined;
  /** What waits for this scope's abort (callbacks and nested scopes): the first inline, others in a set. */
  declare private first: Follower | undefined;
  declare private rest: Set<Follower> | undefined;
  /** While this scope follows the one above: that scope, or how to stop listening to the caller's signal. */
  declare private upstream: ScopeContext | (() => void) | undefined;

  constructor(parent: Context, deadline: number) {
    super(parent.clock, parent.attempt, Math.min(deadline, parent.deadline), parent.key, parent, undefined);
    this.scopeAborted = false;
    this.scopeReason = undefined;
    this.controller = undefined;
    this.first = undefined;
    this.rest = undefined;
    this.upstream = undefined;
  }

  override get aborted(): boolean {
    return this.scopeAborted || this.parent!.aborted;
  }

  override get reason(): unknown {
    return this.scopeAborted ? this.scopeReason : this.parent!.reason;
  }

  override get abortable(): boolean {
    return true;
  }

  override scopeOf(): ScopeContext {
    return this;
  }

  override get signal(): AbortSignal {
    if (this.materialized !== undefined) return this.materialized;
    const controller = new AbortController();
    this.controller = controller;
    this.materialized = controller.signal;
    const parent = this.parent!;
    if (this.scopeAborted) controller.abort(this.scopeReason);
    else if (parent.aborted) controller.abort(parent.reason);
    else this.follow();
    return this.materialized;
  }

  override listen(callback: (reason: unknown) => void): () => void {
    this.add(callback);
    return () => this.drop(callback);
  }

  override abort(reason: unknown): void {
    if (this.scopeAborted) return;
    this.scopeAborted = true;
    this.scopeReason = reason;
    this.release();
    this.fire(reason);
  }

  /** Stops following the scope above (its operation settled, or nothing here listens any more). */
  override release(): void {
    const upstream = this.upstream;
    if (upstream === undefined) return;
    this.upstream = undefined;
    if (upstream instanceof ScopeContext) upstream.drop(this);
    else upstream();
  }

  /** Adds a follower, and follows the scope above (once) if anything can abort it. */
  private add(follower: Follower): void {
    if (this.first === undefined) this.first = follower;
    else (this.rest ??= new Set()).add(follower);
    this.follow();
  }

  /** Removes a follower; with none left (and no signal made), stops following the scope above. */
  private drop(follower: Follower): void {
    if (this.first === follower) this.first = undefined;
    else this.rest?.delete(follower);
    if (this.controller === undefined && this.first === undefined && !this.rest?.size) this.release();
  }

  private follow(): void {
    if (this.upstream !== undefined) return;
    const parent = this.parent!;
    const owner = parent.scopeOf();
    if (owner !== undefined) {
      this.upstream = owner;
      owner.add(this);
    } else if (parent.abortable) {
      this.upstream = parent.listen((reason) => this.parentAborted(reason));
    }
  }

  /** The scope (or caller's signal) above aborted: so has this scope, with the same reason. */
  private parentAborted(reason: unknown): void {
    this.upstream = undefined;
    if (!this.scopeAborted) this.fire(reason);
  }

  /**
   * Aborts the signal, if made, and tells every follower once: callbacks are called, nested scopes abort
   * in turn (one that stops following meanwhile is skipped).
   */
  private fire(reason: unknown): void {
    this.controller?.abort(reason);
    const first = this.first;
    this.first = undefined;
    if (first !== undefined) ScopeContext.tell(first, reason);
    const rest = this.rest;
    if (rest === undefined) return;
    for (const follower of rest) {
      rest.delete(follower);
      ScopeContext.tell(follower, reason);
    }
    this.rest = undefined;
  }

  private static tell(follower: Follower, reason: unknown): void {
    if (follower instanceof ScopeContext) return follower.parentAborted(reason);
    try {
      follower(reason);
    } catch (error) {
      reportListenerError(error);
    }
  }
}

/** What follows a scope's abort: a callback, or a scope nested in it. */
type Follower = ((reason: unknown) => void) | ScopeContext;

/** The stop function of a listener that can never fire. */
function ignore(): void {}
