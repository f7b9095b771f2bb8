/**
 * retry: runs the operation again when it fails, waiting a backoff between attempts.
 *
 * - `maxAttempts` counts calls, the first one included (default 3: one call and up to two retries).
 * - What is retried is the classifier's call (classify.ts, shared with the circuit breaker): outcomes
 *   judged `failure` or `rejected`. By default every error but an open breaker, an invalid option and
 *   an error with `retryable: false`; a value only when a `result` rule (or a custom function) says so.
 * - Backoff: exponential with Polly's decorrelated jitter V2 by default (see backoff/exponential.ts), or
 *   any {@link Backoff}. The wait uses the injected clock and ends at once when the call is aborted.
 * - A `retryAfterMs` hint on the error (RateLimitedError, an HTTP 429/503 error) is a lower bound for
 *   the wait; a hint longer than `maxRetryAfterMs` ends the retries instead.
 * - Never sleeps past the context's deadline: if the wait would end at or after it, gives up at once.
 * - A shared {@link RetryBudget} can cap retries across calls.
 *
 * When the first attempt succeeds the policy adds one `then` on the operation's promise (none inside a
 * pipeline): no backoff state, timer, listener or clock read (a budget, when given, reads the clock to
 * count the request). After a failure one {@link RetryCall} carries the call: per wait a timer and a
 * promise (the next attempt is its continuation, so it runs in the caller's async context whatever the
 * clock), per attempt a `then`; no `async` frame.
 */
import { MAX_TIMER_MS, type Clock, type ClockTimer } from './clock.js';
import {
  classify,
  errorVerdictOf,
  judgesValues,
  valueVerdictOf,
  type ClassifyFn,
  type Verdict,
} from './classify.js';
import { Context, type CallContext, type Operation } from './context.js';
import { InvalidOptionError } from './errors.js';
import { EventEmitter, type Subscribe } from './events.js';
import * as check from './options.js';
import {
  BasePolicy,
  capturingPromise,
  forwardsContext,
  INLINE,
  invoke,
  takeReject,
  takeResolve,
  type InlineStage,
  type Outcome,
} from './policy.js';
import type { Backoff, BackoffSequence } from './backoff/backoff.js';
import {
  EXPONENTIAL_BACKOFF_DEFAULTS,
  EXPONENTIAL_BACKOFF_KEYS,
  ExponentialBackoff,
  type ExponentialBackoffOptions,
} from './backoff/exponential.js';
import type { RetryBudget } from './retry-budget.js';

/** Why a retry policy stopped retrying. */
export type GiveUpReason =
  /** `maxAttempts` calls were made. */
  | 'max-attempts'
  /** The shared retry budget had no retry left. */
  | 'budget'
  /** The next wait would have ended at or after the context's deadline. */
  | 'deadline'
  /** The classifier's verdict was `success` or `ignore` (e.g. an open breaker, `retryable: false`). */
  | 'not-retryable'
  /** The outcome's `retryAfterMs` hint was longer than `maxRetryAfterMs`. */
  | 'retry-after-too-long'
  /** The call was aborted (before or during the wait); it rejects with the signal's reason. */
  | 'aborted';

/** Options of {@link retry}. The five backoff fields and `backoff` are mutually exclusive. */
export interface RetryOptions extends ExponentialBackoffOptions {
  /** Calls in all, the first included (`Infinity`: bounded only by budget, deadline or abort). @default 3 */
  maxAttempts?: number;
  /** A custom backoff instead of the exponential one configured by the fields above. */
  backoff?: Backoff;
  /**
   * The longest `retryAfterMs` hint honoured, in ms. A longer hint gives up at once
   * (reason `retry-after-too-long`): retrying before the server said it is ready would only add load.
   * @default 60_000
   */
  maxRetryAfterMs?: number;
  /**
   * What each outcome means (see {@link classify}): `failure` and `rejected` are retried, `success` and
   * `ignore` end the call with that outcome. Share one classifier with the circuit breaker. An aborted
   * call is never retried, whatever the verdict.
   * @default classify — every error but an open breaker, an InvalidOptionError and `retryable: false`; no value
   */
  classify?: ClassifyFn;
  /**
   * The server's wait hint for an outcome, in ms, or undefined for none.
   * @default the error's numeric `retryAfterMs` property
   */
  readRetryAfterMs?: (outcome: Outcome) => number | undefined;
  /** A retry budget shared across calls and policies (see {@link retryBudget}). @default none */
  budget?: RetryBudget;
  /** Name used in events. @default 'retry' */
  name?: string;
  /** @default systemClock */
  clock?: Clock;
}

/** The defaults of {@link RetryOptions}. */
export const RETRY_DEFAULTS = Object.freeze({
  maxAttempts: 3,
  maxRetryAfterMs: 60_000,
  classify: classify as ClassifyFn,
  name: 'retry',
  ...EXPONENTIAL_BACKOFF_DEFAULTS,
});

const KEYS = [
  'maxAttempts',
  'backoff',
  'maxRetryAfterMs',
  'classify',
  'readRetryAfterMs',
  'budget',
  'name',
  'clock',
  ...EXPONENTIAL_BACKOFF_KEYS,
] as const;

interface EventBase {
  readonly name: string;
  readonly key: string | undefined;
}

/** Emitted before each wait. `attempt` is the attempt that failed; the next one is `attempt + 1`. */
export type RetryEvent = Outcome & EventBase & { readonly attempt: number; readonly delayMs: number };

/** Emitted once when a call stops retrying; the outcome is the last attempt's. */
export type GiveUpEvent = Outcome & EventBase & { readonly attempts: number; readonly reason: GiveUpReason };

/** Emitted when a call succeeds (after any number of attempts). */
export interface RetrySuccessEvent extends EventBase {
  readonly attempts: number;
}

/** The verdicts retry acts on. */
const retried = (verdict: Verdict): boolean => verdict === 'failure' || verdict === 'rejected';

/** The default hint: an error's numeric `retryAfterMs`. */
function retryAfterOf(ok: boolean, result: unknown): number | undefined {
  if (ok || typeof result !== 'object' || result === null) return undefined;
  const hint = (result as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof hint === 'number' ? hint : undefined;
}

/** What a {@link RetryCall} needs from its policy: the options resolved once, shared by every call. */
type Plan = Readonly<
  Required<Pick<RetryOptions, 'name' | 'clock' | 'maxAttempts' | 'maxRetryAfterMs' | 'backoff' | 'classify'>>
> & {
  readonly budget: RetryBudget | undefined;
  /** undefined: the default (the error's `retryAfterMs`), read without building an Outcome. */
  readonly readRetryAfterMs: RetryOptions['readRetryAfterMs'];
  /** Whether values are classified (else every value is a success). */
  readonly judgesValues: boolean;
  readonly onRetry: EventEmitter<RetryEvent>;
  readonly onGiveUp: EventEmitter<GiveUpEvent>;
  readonly onSuccess: EventEmitter<RetrySuccessEvent>;
};

export class RetryPolicy extends BasePolicy {
  readonly maxAttempts: number;
  readonly maxRetryAfterMs: number;
  readonly backoff: Backoff;
  readonly budget: RetryBudget | undefined;
  readonly name: string;
  readonly #plan: Plan;

  readonly #onRetry = new EventEmitter<RetryEvent>();
  readonly #onGiveUp = new EventEmitter<GiveUpEvent>();
  readonly #onSuccess = new EventEmitter<RetrySuccessEvent>();
  /** Before each wait. */
  readonly onRetry: Subscribe<RetryEvent> = this.#onRetry.subscribe;
  /** When a call stops retrying (and fails, or returns a value the classifier wanted retried). */
  readonly onGiveUp: Subscribe<GiveUpEvent> = this.#onGiveUp.subscribe;
  /** When a call succeeds. */
  readonly onSuccess: Subscribe<RetrySuccessEvent> = this.#onSuccess.subscribe;

  constructor(options?: RetryOptions) {
    const o = check.optionsObject('retry', options);
    check.knownKeys('retry', o, KEYS);
    super(check.clock('retry.clock', o.clock));
    this.maxAttempts = check.positiveInteger(
      'retry.maxAttempts',
      o.maxAttempts ?? RETRY_DEFAULTS.maxAttempts,
      true,
    );
    this.maxRetryAfterMs = check.timerMs(
      'retry.maxRetryAfterMs',
      o.maxRetryAfterMs ?? RETRY_DEFAULTS.maxRetryAfterMs,
      { min: 0 },
    );
    if (o.backoff !== undefined) {
      const conflict = EXPONENTIAL_BACKOFF_KEYS.find((k) => o[k] !== undefined);
      if (conflict !== undefined) {
        throw new InvalidOptionError(
          `retry.${conflict}`,
          o[conflict],
          'no value when retry.backoff is given',
        );
      }
      const b = o.backoff as Partial<Backoff> | null;
      if (typeof b !== 'object' || b === null || typeof b.start !== 'function') {
        throw new InvalidOptionError('retry.backoff', o.backoff, 'a Backoff ({ start() })');
      }
      this.backoff = o.backoff;
    } else {
      this.backoff = new ExponentialBackoff(o, 'retry');
    }
    const classifyFn = check.fn<ClassifyFn>('retry.classify', o.classify ?? RETRY_DEFAULTS.classify);
    const readRetryAfterMs =
      o.readRetryAfterMs === undefined
        ? undefined
        : check.fn<(outcome: Outcome) => number | undefined>('retry.readRetryAfterMs', o.readRetryAfterMs);
    if (
      o.budget !== undefined &&
      (typeof o.budget !== 'object' ||
        typeof o.budget.tryWithdraw !== 'function' ||
        typeof o.budget.deposit !== 'function')
    ) {
      throw new InvalidOptionError('retry.budget', o.budget, 'a RetryBudget (from retryBudget())');
    }
    this.budget = o.budget;
    this.name = check.string('retry.name', o.name ?? RETRY_DEFAULTS.name);
    this.#plan = Object.freeze({
      name: this.name,
      clock: this.clock,
      maxAttempts: this.maxAttempts,
      maxRetryAfterMs: this.maxRetryAfterMs,
      backoff: this.backoff,
      budget: this.budget,
      classify: classifyFn,
      judgesValues: judgesValues(classifyFn),
      readRetryAfterMs,
      onRetry: this.#onRetry,
      onGiveUp: this.#onGiveUp,
      onSuccess: this.#onSuccess,
    });
  }

  run<T>(fn: Operation<T>, parent: CallContext): Promise<T> {
    const ctx = Context.from(parent, this.clock);
    if (this.budget !== undefined) {
      try {
        this.budget.deposit();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const first = ctx.attempt === 1 ? ctx : ctx.withAttempt(1);
    const promise = invoke(fn, first);
    const onError = (error: unknown): Promise<T> => this.#retrying(fn, ctx, first, false, error);
    if (!this.#plan.judgesValues && !this.#onSuccess.active) return promise.then(undefined, onError);
    return promise.then((value) => this.#judgeFirst(fn, ctx, first, value), onError);
  }

  /** Inside a pipeline: attempt 1 runs inline; a failure (or a value to retry on) goes on as in `run`. */
  [INLINE](): InlineStage {
    return {
      scopes: true,
      detaches: false,
      enter: (ctx) => {
        if (this.budget !== undefined) this.budget.deposit();
        return ctx.attempt === 1 ? ctx : ctx.withAttempt(1);
      },
      exit: (ctx, token, ok, result, inner) => {
        if (!ok) return this.#retrying(inner, ctx, token as Context, false, result);
        if (!this.#plan.judgesValues && !this.#onSuccess.active) return undefined;
        const judged = this.#judgeFirst(inner, ctx, token as Context, result);
        return judged instanceof Promise ? judged : undefined;
      },
    };
  }

  /** Attempt 1 returned `value`: retry on it if the classifier says so, else succeed. */
  #judgeFirst<T>(fn: Operation<T>, ctx: Context, first: Context, value: T): T | Promise<T> {
    const plan = this.#plan;
    if (plan.judgesValues && retried(valueVerdictOf(plan.classify, value, first))) {
      return this.#retrying(fn, ctx, first, true, value, true);
    }
    if (this.#onSuccess.active) this.#onSuccess.emit({ name: this.name, key: ctx.key, attempts: 1 });
    return value;
  }

  /** The slow path, after attempt 1 failed (or returned a value to retry on: `judged`). */
  #retrying<T>(
    fn: Operation<T>,
    ctx: Context,
    first: Context,
    ok: boolean,
    result: unknown,
    judged = false,
  ): Promise<T> {
    const call = new RetryCall<T>(this.#plan, fn, ctx);
    call.settled(first, ok, result, judged);
    return call.promise;
  }
}

forwardsContext(RetryPolicy);

/**
 * One call past its first failure: the attempt number, the backoff, the pending timer, and the caller's
 * promise. Decides after each attempt, then sets a timer for the next one (or settles the promise).
 */
class RetryCall<T> {
  readonly promise: Promise<T>;
  readonly #resolve: (value: unknown) => void;
  readonly #reject: (error: unknown) => void;
  readonly #plan: Plan;
  readonly #fn: Operation<T>;
  /** The call's context (each attempt's is derived from it). */
  readonly #ctx: Context;
  #attempt = 1;
  #attemptCtx: Context | undefined = undefined;
  #backoff: BackoffSequence | undefined = undefined;
  #timer: ClockTimer | undefined = undefined;
  #unlisten: (() => void) | undefined = undefined;
  /** The last attempt's outcome. */
  #ok = false;
  #result: unknown = undefined;

  constructor(plan: Plan, fn: Operation<T>, ctx: Context) {
    this.promise = capturingPromise<T>();
    this.#resolve = takeResolve();
    this.#reject = takeReject();
    this.#plan = plan;
    this.#fn = fn;
    this.#ctx = ctx;
  }

  readonly #onValue = (value: unknown): void => this.settled(this.#attemptCtx!, true, value, false);
  readonly #onError = (error: unknown): void => this.settled(this.#attemptCtx!, false, error, false);

  /** The wait is over: run the next attempt. */
  readonly #wake = (): void => {
    this.#timer = undefined;
    this.#stopListening();
    const attemptCtx = (this.#attemptCtx = this.#ctx.withAttempt(++this.#attempt));
    invoke(this.#fn, attemptCtx).then(this.#onValue, this.#onError);
  };

  /** The call was aborted during the wait: it ends now, with the abort's reason. */
  readonly #onAbort = (): void => {
    this.#unlisten = undefined;
    if (this.#timer !== undefined) this.#plan.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#giveUp('aborted');
  };

  /**
   * Attempt `this.#attempt` ended with (`ok`, `result`); `judged`: the classifier already asked for a
   * retry. Settles the call or sets the timer for the next attempt. A throwing classifier, backoff,
   * hint reader or clock rejects the call with its error.
   */
  settled(attemptCtx: Context, ok: boolean, result: unknown, judged: boolean): void {
    this.#ok = ok;
    this.#result = result;
    try {
      this.#decide(attemptCtx, ok, result, judged);
    } catch (error) {
      this.#stopListening();
      this.#reject(error);
    }
  }

  #decide(attemptCtx: Context, ok: boolean, result: unknown, judged: boolean): void {
    const plan = this.#plan;
    const ctx = this.#ctx;
    const attempt = this.#attempt;
    if (ok) {
      // a value the classifier accepts is returned even if the call was aborted meanwhile
      if (!judged && (!plan.judgesValues || !retried(valueVerdictOf(plan.classify, result, attemptCtx)))) {
        return this.#succeed(result);
      }
      if (ctx.aborted) return this.#giveUp('aborted');
    } else {
      // an aborted call is never retried, whatever the verdict
      if (ctx.aborted) return this.#giveUp('aborted');
      if (!judged && !retried(errorVerdictOf(plan.classify, result, attemptCtx))) {
        return this.#giveUp('not-retryable');
      }
    }
    if (attempt >= plan.maxAttempts) return this.#giveUp('max-attempts');

    this.#backoff ??= plan.backoff.start();
    let delayMs = this.#backoff.next();
    if (!(delayMs >= 0)) delayMs = 0; // NaN or negative from a custom backoff
    const hint =
      plan.readRetryAfterMs === undefined
        ? retryAfterOf(ok, result)
        : plan.readRetryAfterMs(ok ? { ok: true, value: result } : { ok: false, error: result });
    if (hint !== undefined && hint >= 0) {
      if (hint > plan.maxRetryAfterMs) return this.#giveUp('retry-after-too-long');
      if (hint > delayMs) delayMs = hint;
    }
    if (delayMs > MAX_TIMER_MS) delayMs = MAX_TIMER_MS;
    if (ctx.deadline !== Infinity && delayMs >= ctx.remainingMs()) return this.#giveUp('deadline');
    if (plan.budget !== undefined && !plan.budget.tryWithdraw()) return this.#giveUp('budget');

    if (plan.onRetry.active) {
      const base = { name: plan.name, key: ctx.key, attempt, delayMs };
      plan.onRetry.emit(ok ? { ok: true, value: result, ...base } : { ok: false, error: result, ...base });
    }
    const wait = capturingPromise<void>();
    const resolve = takeResolve() as () => void;
    const reject = takeReject();
    this.#timer = plan.clock.setTimeout(resolve, delayMs);
    if (ctx.abortable) this.#unlisten = ctx.listen(reject);
    wait.then(this.#wake, this.#onAbort); // neither throws
  }

  #stopListening(): void {
    const unlisten = this.#unlisten;
    if (unlisten !== undefined) {
      this.#unlisten = undefined;
      unlisten();
    }
  }

  #succeed(value: unknown): void {
    const plan = this.#plan;
    if (plan.onSuccess.active) {
      plan.onSuccess.emit({ name: plan.name, key: this.#ctx.key, attempts: this.#attempt });
    }
    this.#resolve(value);
  }

  /** Emits the give-up event, then ends the call with the last outcome (the abort reason if aborted). */
  #giveUp(reason: GiveUpReason): void {
    const plan = this.#plan;
    const ok = this.#ok;
    const result = this.#result;
    if (plan.onGiveUp.active) {
      const base = { name: plan.name, key: this.#ctx.key, attempts: this.#attempt, reason };
      plan.onGiveUp.emit(ok ? { ok: true, value: result, ...base } : { ok: false, error: result, ...base });
    }
    if (reason === 'aborted') this.#reject(this.#ctx.reason);
    else if (ok) this.#resolve(result);
    else this.#reject(result);
  }
}

/** Creates a {@link RetryPolicy}. */
export function retry(options?: RetryOptions): RetryPolicy {
  return new RetryPolicy(options);
}
