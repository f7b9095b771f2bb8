/**
 * What every policy is, and how policies compose.
 */
import { systemClock, type Clock } from './clock.js';
import { Context, type CallContext, type ExecuteOptions, type Operation } from './context.js';

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

class Pipeline extends BasePolicy {
  readonly policies: readonly Policy[];
  /** Runs stage 1 onwards (each stage's operation is the next stage's runner); undefined: no fast path. */
  readonly #next: Operation<unknown> | undefined;

  constructor(policies: readonly Policy[]) {
    super(policies[0]?.clock);
    this.policies = policies;
    this.#next =
      policies.length > 0 && policies.every((p) => forwarding.has(p.constructor))
        ? this.#runners()
        : undefined;
  }

  /** The stage runners, built once: stage i's runner calls policy i with stage i + 1's runner. */
  #runners(): Operation<unknown> {
    const policies = this.policies;
    const last = policies[policies.length - 1]!;
    let next: Operation<unknown> = (ctx) => last.run(this.#operation(ctx), ctx);
    for (let i = policies.length - 2; i >= 1; i--) {
      const policy = policies[i]!;
      const inner = next;
      next = (ctx) => policy.run(inner, ctx);
    }
    return next;
  }

  #operation(ctx: CallContext): Operation<unknown> {
    const operation = ctx instanceof Context ? ctx.operationFor(this) : undefined;
    if (operation === undefined) throw new Error('pipeline: a stage ran outside the context of its call');
    return operation;
  }

  override execute<T>(fn: Operation<T>, options?: ExecuteOptions): Promise<T> {
    const next = this.#next;
    if (next === undefined) return super.execute(fn, options);
    const signal = options?.signal;
    if (signal !== undefined && signal.aborted) return Promise.reject(signal.reason);
    const ctx = Context.carrying(this, fn, undefined, this.clock, options);
    return this.#first(next, ctx) as Promise<T>;
  }

  run<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    const next = this.#next;
    if (next === undefined) return this.#from(0, fn, ctx);
    const parent = Context.from(ctx, this.clock);
    return this.#first(next, Context.carrying(this, fn, parent, parent.clock)) as Promise<T>;
  }

  #first(next: Operation<unknown>, ctx: Context): Promise<unknown> {
    const first = this.policies[0]!;
    return this.policies.length === 1 ? first.run(this.#operation(ctx), ctx) : first.run(next, ctx);
  }

  #from<T>(index: number, fn: Operation<T>, ctx: CallContext): Promise<T> {
    const policy = this.policies[index];
    if (policy === undefined) return invoke(fn, ctx);
    return policy.run((inner) => this.#from(index + 1, fn, inner), ctx);
  }
}

/**
 * Composes policies in the order given: the first is outermost. One context flows through all of them.
 *
 * Recommended order (outermost first), and why:
 * `fallback → timeout (total deadline) → retry → circuitBreaker → bulkhead → timeout (per attempt) → fn`.
 * The total timeout bounds everything, retries included; retry sits outside the breaker so every attempt
 * is judged (and an open breaker's `retryAfterMs` can inform the backoff); the bulkhead is innermost so a
 * slot is held only while the work really runs, not while a retry sleeps.
 */
export function pipeline(...policies: Policy[]): Policy {
  return new Pipeline(policies.flatMap((p) => (p instanceof Pipeline ? p.policies : [p])));
}
