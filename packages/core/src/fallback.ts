/**
 * fallback: when the operation fails (or returns a result judged bad), answer with something else.
 *
 * The fallback function receives the reason, as an {@link Outcome} (`{ ok: false, error }` for a
 * failure, `{ ok: true, value }` for a bad result), and the call context (signal, key, attempt,
 * deadline), so it can pick its answer by cause and stop when the caller does.
 *
 * A call that was aborted (the caller's signal, or a timeout placed outside this policy) gets no
 * fallback: the caller has stopped waiting, so the fallback's work would be wasted, and turning a
 * cancellation into a success would hide it (an aborted call rejects, as `fetch` does). To answer with a
 * fallback when a deadline passes, put the timeout inside: `pipeline(fallback(…), timeout(…), …)` — its
 * `TimeoutError` is then an ordinary failure.
 */
import type { Clock } from './clock.js';
import type { CallContext, Operation } from './context.js';
import { EventEmitter, type Subscribe } from './events.js';
import * as check from './options.js';
import { BasePolicy, forwardsContext, invoke, type Outcome } from './policy.js';

export interface FallbackOptions<R = unknown> {
  /**
   * Produces the answer instead of the operation: a value, or a promise of one. It may throw to fail
   * the call with another error. Required.
   */
  fallback: (reason: Outcome<R>, ctx: CallContext) => R | PromiseLike<R>;
  /**
   * Which outcomes get the fallback. Called with every failure, and with every value when given (so
   * a result such as an HTTP 503 response can be replaced too).
   * @default (outcome) => !outcome.ok — every error, never a value
   */
  shouldFallback?: (outcome: Outcome<R>) => boolean;
  /** Name used in events. @default 'fallback' */
  name?: string;
  /** @default systemClock */
  clock?: Clock;
}

const DEFAULTS = Object.freeze({ name: 'fallback' });
const KEYS = ['fallback', 'shouldFallback', 'name', 'clock'] as const;

export interface FallbackEvent {
  readonly name: string;
  readonly key: string | undefined;
  /** Why the fallback was used. */
  readonly reason: Outcome;
}

/**
 * `R` is the type of the fallback's answer. It stands in for the operation's result, so it should be
 * the operation's type: `execute`/`run` are typed by the operation (the generic `Policy` contract).
 */
export class FallbackPolicy<R = unknown> extends BasePolicy {
  readonly name: string;
  readonly #fallback: (reason: Outcome<R>, ctx: CallContext) => R | PromiseLike<R>;
  readonly #shouldFallback: ((outcome: Outcome<R>) => boolean) | undefined;
  readonly #onFallback = new EventEmitter<FallbackEvent>();
  /** Subscribe to each use of the fallback. */
  readonly onFallback: Subscribe<FallbackEvent> = this.#onFallback.subscribe;

  constructor(options: FallbackOptions<R>) {
    const o = check.optionsObject('fallback', options, true);
    check.knownKeys('fallback', o, KEYS);
    super(check.clock('fallback.clock', o.clock));
    this.#fallback = check.fn('fallback.fallback', o.fallback);
    this.#shouldFallback =
      o.shouldFallback === undefined
        ? undefined
        : check.fn<(outcome: Outcome<R>) => boolean>('fallback.shouldFallback', o.shouldFallback);
    this.name = check.string('fallback.name', o.name ?? DEFAULTS.name);
  }

  run<T>(fn: Operation<T>, ctx: CallContext): Promise<T> {
    const onError = (error: unknown): T | PromiseLike<T> => this.#onError(error, ctx) as T | PromiseLike<T>;
    if (this.#shouldFallback === undefined) return invoke(fn, ctx).then(undefined, onError);
    return invoke(fn, ctx).then((value) => this.#onValue(value, ctx), onError);
  }

  #onError(error: unknown, ctx: CallContext): R | PromiseLike<R> {
    if (ctx.aborted || (this.#shouldFallback !== undefined && !this.#shouldFallback({ ok: false, error }))) {
      throw error;
    }
    return this.#use({ ok: false, error }, ctx);
  }

  #onValue<T>(value: T, ctx: CallContext): T | PromiseLike<T> {
    if (ctx.aborted) return value;
    const outcome: Outcome<R> = { ok: true, value: value as unknown as R };
    return this.#shouldFallback!(outcome) ? (this.#use(outcome, ctx) as T | PromiseLike<T>) : value;
  }

  #use(reason: Outcome<R>, ctx: CallContext): R | PromiseLike<R> {
    if (this.#onFallback.active) this.#onFallback.emit({ name: this.name, key: ctx.key, reason });
    return this.#fallback(reason, ctx);
  }
}

forwardsContext(FallbackPolicy);

/** Creates a {@link FallbackPolicy}. */
export function fallback<R = unknown>(options: FallbackOptions<R>): FallbackPolicy<R> {
  return new FallbackPolicy(options);
}
