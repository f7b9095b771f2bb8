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

class Pipeline extends BasePolicy {
  readonly policies: readonly Policy[];

  constructor(policies: readonly Policy[]) {
    super(policies[0]?.clock);
    this.policies = policies;
  }

  run<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    return this.#from(0, fn, ctx);
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
