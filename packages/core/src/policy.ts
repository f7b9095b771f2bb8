/**
 * What every policy is, and how policies compose.
 */
import { systemClock, type Clock } from './clock.js';
import { Context, type CallContext, type ExecuteOptions, type Operation } from './context.js';
import { bounded, executeBounded } from './deadline.js';
import { capturingPromise, takeReject, takeResolve } from './promise.js';

export { capturingPromise, takeReject, takeResolve };

/** How a call ended: a value or an error. Predicates (`isFailure`, `shouldRetry`, …) receive one. */
export type Outcome<T = unknown> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

export interface Policy {
  /** Runs `fn` under this policy with a fresh context. */
  execute<T>(fn: Operation<T>, options?: ExecuteOptions): Promise<T>;
  /** Runs `fn` under this policy inside an existing context (how pipelines nest policies). */
  run<T>(fn: Operation<T>, ctx: CallContext): Promise<T>;
  /** The clock this policy measures time with. */
  readonly clock: Clock;
}

/** Calls `fn(ctx)` and always returns a promise (a synchronous throw becomes a rejection). */
export function invoke<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
  try {
    return Promise.resolve(fn(ctx));
  } catch (error) {
    return Promise.reject(error);
  }
}

/** The shared `execute` of every policy: check the caller's signal, make the root context, `run`. */
export abstract class BasePolicy implements Policy {
  readonly clock: Clock;

  constructor(clock: Clock | undefined) {
    this.clock = clock ?? systemClock;
  }

  execute<T>(fn: Operation<T>, options?: ExecuteOptions): Promise<T> {
    const signal = options?.signal;
    if (signal !== undefined && signal.aborted) return Promise.reject(signal.reason);
    if (bounded(options)) {
      return executeBounded(this.clock, options, (ctx) => this.run(fn, ctx)) as Promise<T>;
    }
    return this.run(fn, Context.root(this.clock, options));
  }

  abstract run<T>(fn: Operation<T>, ctx: CallContext): Promise<T>;
}

/**
 * Policy classes whose `run` passes the context it was given (or a context derived from it with
 * {@link Context} methods) to the operation. A pipeline made only of these carries the caller's
 * operation in the context instead of allocating a closure per stage and call.
 */
type PolicyClass = abstract new (...args: never[]) => Policy;
const forwarding = new Set<unknown>();

/** Marks a policy class as forwarding its context (see {@link forwarding}); not for subclasses. */
export function forwardsContext(policyClass: PolicyClass): void {
  forwarding.add(policyClass);
}

/** Returned by {@link InlineStage.enter}: run this stage through its own `run` for this call. */
export const DECLINE: unique symbol = Symbol('bulwark.decline');

/**
 * Returned by {@link InlineStage.exit} of a stage that `detaches`: it has settled its own promise (or
 * did so earlier, at its deadline or the caller's abort), and the stages outside it go on from there.
 */
export const DETACHED: unique symbol = Symbol('bulwark.detached');

/**
 * How a pipeline runs a built-in policy as a stage without a promise of its own. The pipeline enters
 * stages while they accept, calls the operation (or runs the first stage that declined, with the rest
 * as its operation), puts one `then` on that promise and calls the entered stages' `exit` hooks,
 * innermost first. A stage whose work cannot start synchronously (a full bulkhead, an open breaker)
 * declines and runs through `run`.
 *
 * A stage that may end the call before its inner stages settle (an aggressive timeout) `detaches`: it
 * has a promise of its own, settled by its `exit` or earlier by itself, and the stages outside it continue
 * from a `then` on that promise — registered when the call entered, so they run in the caller's async
 * context (AsyncLocalStorage), never in that of whatever timer or signal ended the call.
 */
export interface InlineStage {
  /** True when the token `enter` returns is the context the inner stages see. */
  readonly scopes: boolean;
  /** True when the stage has a promise of its own for the call (see {@link InlineStage.promise}). */
  readonly detaches: boolean;
  /** Admits a call: {@link DECLINE}, or a token for `exit`. May throw (the call then fails with it). */
  enter(ctx: Context): unknown;
  /**
   * The inner stages settled with (`ok`, `result`). Returns undefined to pass that outcome on, throws to
   * fail the call with another error, returns a promise whose outcome replaces it (a retry runs `inner`
   * again, with a context derived from `ctx`), or {@link DETACHED} (a stage that `detaches`).
   */
  exit(
    ctx: Context,
    token: unknown,
    ok: boolean,
    result: unknown,
    inner: Operation<unknown>,
  ): Promise<unknown> | undefined | typeof DETACHED;
  /** A stage that `detaches`: its promise for the call whose token this is. */
  promise?(token: unknown): Promise<unknown>;
}

/** The key under which a built-in policy offers its {@link InlineStage} (built once per pipeline). */
export const INLINE: unique symbol = Symbol('bulwark.inline');

interface Inlinable {
  [INLINE](): InlineStage;
}

/** One pass of a call through pipeline stages `first`…: the stages it entered and what they hold. */
class Run {
  declare readonly stages: readonly (InlineStage | undefined)[];
  declare readonly runners: readonly Operation<unknown>[];
  declare readonly first: number;
  /** Per entered stage i, at 2 × (i − first): the context it got, then its token. */
  declare readonly rows: unknown[];
  /** Stages `first` … `end − 1` were entered. */
  declare end: number;

  constructor(
    stages: readonly (InlineStage | undefined)[],
    runners: readonly Operation<unknown>[],
    first: number,
  ) {
    this.stages = stages;
    this.runners = runners;
    this.first = first;
    this.rows = new Array<unknown>(2 * (stages.length - first));
    this.end = first;
  }

  /**
   * Calls the `exit` hooks of stages `from − 1` down to `first`, each seeing the outcome so far, and
   * stops at a stage that detaches (it settles its own promise; the stages outside it go on from there).
   */
  leave(from: number, ok: boolean, result: unknown): unknown {
    const rows = this.rows;
    for (let i = from - 1; i >= this.first; i--) {
      const k = 2 * (i - this.first);
      let next: Promise<unknown> | undefined | typeof DETACHED;
      try {
        next = this.stages[i]!.exit(rows[k] as Context, rows[k + 1], ok, result, this.runners[i + 1]!);
      } catch (error) {
        ok = false;
        result = error;
        continue;
      }
      if (next === undefined) continue;
      if (next === DETACHED) return undefined;
      return next.then(
        (value) => this.leave(i, true, value),
        (error: unknown) => this.leave(i, false, error),
      );
    }
    if (ok) return result;
    throw result;
  }

  /** The stages outside detaching stage `stage` go on when its promise settles. */
  after(stage: number, promise: Promise<unknown>): Promise<unknown> {
    if (stage === this.first) return promise;
    return promise.then(
      (value) => this.leave(stage, true, value),
      (error: unknown) => this.leave(stage, false, error),
    );
  }
}

class Pipeline extends BasePolicy {
  readonly policies: readonly Policy[];
  /** Whether every stage forwards its context (the fast path: see {@link forwarding}). */
  readonly #fast: boolean;
  /** Per stage: its inline hooks, or undefined (it always runs through `run`). */
  readonly #stages: readonly (InlineStage | undefined)[];
  /** `runners[i]` runs stages i… for a context that carries the call's operation; `runners[n]` runs it. */
  readonly #runners: readonly Operation<unknown>[];

  constructor(policies: readonly Policy[]) {
    super(policies[0]?.clock);
    this.policies = policies;
    this.#fast = policies.length > 0 && policies.every((p) => forwarding.has(p.constructor));
    this.#stages = policies.map((p) => {
      const inline = (p as Partial<Inlinable>)[INLINE];
      return this.#fast && typeof inline === 'function' ? inline.call(p) : undefined;
    });
    const runners: Operation<unknown>[] = policies.map(
      (_, i) => (ctx) => this.#run(i, ctx as Context, this.#operation(ctx)),
    );
    runners.push((ctx) => invoke(this.#operation(ctx), ctx));
    this.#runners = runners;
  }

  /** The operation of the call `ctx` belongs to. */
  #operation(ctx: CallContext): Operation<unknown> {
    const operation = ctx instanceof Context ? ctx.operationFor(this) : undefined;
    if (operation === undefined) throw new Error('pipeline: a stage ran outside the context of its call');
    return operation;
  }

  override execute<T>(fn: Operation<T>, options?: ExecuteOptions): Promise<T> {
    if (!this.#fast) return super.execute(fn, options);
    const signal = options?.signal;
    if (signal !== undefined && signal.aborted) return Promise.reject(signal.reason);
    if (bounded(options)) {
      return executeBounded(
        this.clock,
        options,
        (ctx) => this.#run(0, ctx, fn),
        this,
        fn as Operation<unknown>,
      ) as Promise<T>;
    }
    return this.#run(0, Context.carrying(this, fn, undefined, this.clock, options), fn) as Promise<T>;
  }

  run<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    if (!this.#fast) return this.#nested(0, fn, ctx);
    const parent = Context.from(ctx, this.clock);
    return this.#run(0, Context.carrying(this, fn, parent, parent.clock), fn) as Promise<T>;
  }

  /**
   * Runs stages `first`… and the operation: enters stages inline while they accept, then calls the
   * operation (or runs the stage that declined, with the rest as its operation), and leaves the entered
   * stages when that settles.
   */
  #run(first: number, ctx: Context, operation: Operation<unknown>): Promise<unknown> {
    const stages = this.#stages;
    const n = stages.length;
    if (stages[first] === undefined) return this.policies[first]!.run(this.#runners[first + 1]!, ctx);
    const run = new Run(stages, this.#runners, first);
    /** The outermost detaching stage's continuation: what the caller gets, if one was entered. */
    let outer: Promise<unknown> | undefined;
    let promise: Promise<unknown>;
    let i = first;
    try {
      for (; i < n; i++) {
        const stage = stages[i];
        if (stage === undefined) break;
        const token = stage.enter(ctx);
        if (token === DECLINE) break;
        const k = 2 * (i - first);
        run.rows[k] = ctx;
        run.rows[k + 1] = token;
        run.end = i + 1;
        if (stage.detaches) {
          const continued = run.after(i, stage.promise!(token));
          // an inner detaching stage's continuation stops at the next one out (it never rejects)
          outer ??= continued;
        }
        if (stage.scopes) ctx = token as Context;
      }
      promise = i === n ? invoke(operation, ctx) : this.policies[i]!.run(this.#runners[i + 1]!, ctx);
    } catch (error) {
      promise = Promise.reject(error);
    }
    const end = run.end;
    if (end === first) return promise;
    const settled = promise.then(
      (value) => run.leave(end, true, value),
      (error: unknown) => run.leave(end, false, error),
    );
    return outer ?? settled;
  }

  /** A pipeline with a stage that may not forward its context: a closure per stage and call. */
  #nested<T>(index: number, fn: Operation<T>, ctx: CallContext): Promise<T> {
    const policy = this.policies[index];
    if (policy === undefined) return invoke(fn, ctx);
    return policy.run((inner) => this.#nested(index + 1, fn, inner), ctx);
  }
}

/**
 * Composes policies in the order given: the first is outermost. One context flows through all of them.
 *
 * Recommended order (outermost first), and why:
 * `fallback → timeout (total deadline) → retry → circuitBreaker → bulkhead → timeout (per attempt) → fn`.
 * The total timeout bounds everything, retries included; retry sits outside the breaker so every attempt
 * is judged (and an open breaker ends the retries at once); the bulkhead is innermost so a slot is held
 * only while the work really runs, not while a retry sleeps.
 */
export function pipeline(...policies: Policy[]): Policy {
  return new Pipeline(policies.flatMap((p) => (p instanceof Pipeline ? p.policies : [p])));
}
