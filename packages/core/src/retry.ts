/**
 * retry: runs the operation again when it fails, waiting a backoff between attempts.
 *
 * - `maxAttempts` counts calls, the first one included (default 3: one call and up to two retries).
 * - Backoff: exponential with Polly's decorrelated jitter V2 by default (see backoff/exponential.ts), or
 *   any {@link Backoff}. The wait uses the injected clock and ends at once when the call is aborted.
 * - A `retryAfterMs` hint on the error (CircuitOpenError, RateLimitedError, an HTTP 429/503 error) is a
 *   lower bound for the wait; a hint longer than `maxRetryAfterMs` ends the retries instead.
 * - Never sleeps past the context's deadline: if the wait would end at or after it, gives up at once.
 * - A shared {@link RetryBudget} can cap retries across calls.
 *
 * Cost when the first attempt succeeds: one `then` on the operation's promise (its error handler is the one
 * closure per call); no backoff state, timer, listener or clock read
 * (a budget, when given, reads the clock to count the request).
 */
import { MAX_TIMER_MS, type Clock } from './clock.js';
import { Context, type CallContext, type Operation } from './context.js';
import { InvalidOptionError } from './errors.js';
import { EventEmitter, type Subscribe } from './events.js';
import * as check from './options.js';
import { BasePolicy, forwardsContext, INLINE, invoke, type InlineStage, type Outcome } from './policy.js';
import type { Backoff, BackoffSequence } from './backoff/backoff.js';
import {
  EXPONENTIAL_BACKOFF_DEFAULTS,
  EXPONENTIAL_BACKOFF_KEYS,
  ExponentialBackoff,
  type ExponentialBackoffOptions,
} from './backoff/exponential.js';
import { sleep } from './backoff/sleep.js';
import type { RetryBudget } from './retry-budget.js';

/** Why a retry policy stopped retrying. */
export type GiveUpReason =
  /** `maxAttempts` calls were made. */
  | 'max-attempts'
  /** The shared retry budget had no retry left. */
  | 'budget'
  /** The next wait would have ended at or after the context's deadline. */
  | 'deadline'
  /** `shouldRetry` said no (by default: an InvalidOptionError, or an error with `retryable: false`). */
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
   * Whether to retry after `outcome` (the result of attempt number `attempt`). Called for errors and,
   * when given, for values too (return true to retry on a result). An aborted call is never retried.
   * @default defaultShouldRetry — every error except InvalidOptionError and errors with `retryable: false`; no value
   */
  shouldRetry?: (outcome: Outcome, attempt: number) => boolean;
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

/** The defaults of {@link RetryOptions} (backoff fields: `EXPONENTIAL_BACKOFF_DEFAULTS`). */
export const RETRY_DEFAULTS = Object.freeze({
  maxAttempts: 3,
  maxRetryAfterMs: 60_000,
  name: 'retry',
  ...EXPONENTIAL_BACKOFF_DEFAULTS,
});

const KEYS = [
  'maxAttempts',
  'backoff',
  'maxRetryAfterMs',
  'shouldRetry',
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

/**
 * The default `shouldRetry`: retry every error except those that cannot succeed on another attempt —
 * {@link InvalidOptionError} and any error carrying `retryable: false` (the convention @bulwark/http's
 * errors follow) — and never retry on a value.
 */
export function defaultShouldRetry(outcome: Outcome): boolean {
  if (outcome.ok) return false;
  const error = outcome.error;
  if (error instanceof InvalidOptionError) return false;
  return !(
    typeof error === 'object' &&
    error !== null &&
    (error as { retryable?: unknown }).retryable === false
  );
}

function defaultReadRetryAfterMs(outcome: Outcome): number | undefined {
  if (outcome.ok) return undefined;
  const error = outcome.error;
  if (typeof error !== 'object' || error === null) return undefined;
  const hint = (error as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof hint === 'number' ? hint : undefined;
}

export class RetryPolicy extends BasePolicy {
  readonly maxAttempts: number;
  readonly maxRetryAfterMs: number;
  readonly backoff: Backoff;
  readonly budget: RetryBudget | undefined;
  readonly name: string;
  readonly #shouldRetry: (outcome: Outcome, attempt: number) => boolean;
  /** True when `shouldRetry` was given, so values are judged too. */
  readonly #judgesValues: boolean;
  readonly #readRetryAfterMs: (outcome: Outcome) => number | undefined;

  readonly #onRetry = new EventEmitter<RetryEvent>();
  readonly #onGiveUp = new EventEmitter<GiveUpEvent>();
  readonly #onSuccess = new EventEmitter<RetrySuccessEvent>();
  /** Before each wait. */
  readonly onRetry: Subscribe<RetryEvent> = this.#onRetry.subscribe;
  /** When a call stops retrying (and fails, or returns a value `shouldRetry` rejected). */
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
    this.#judgesValues = o.shouldRetry !== undefined;
    this.#shouldRetry = check.fn('retry.shouldRetry', o.shouldRetry ?? defaultShouldRetry);
    this.#readRetryAfterMs = check.fn(
      'retry.readRetryAfterMs',
      o.readRetryAfterMs ?? defaultReadRetryAfterMs,
    );
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
    const first = invoke(fn, ctx.attempt === 1 ? ctx : ctx.withAttempt(1));
    const onError = (error: unknown): Promise<T> => this.#retrying(fn, ctx, { ok: false, error }, false);
    if (!this.#judgesValues && !this.#onSuccess.active) return first.then(undefined, onError);
    return first.then((value) => this.#judgeFirst(fn, ctx, value), onError);
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
      exit: (ctx, _token, ok, result, inner) => {
        if (!ok) return this.#retrying(inner, ctx, { ok: false, error: result }, false);
        if (!this.#judgesValues && !this.#onSuccess.active) return undefined;
        const judged = this.#judgeFirst(inner, ctx, result);
        return judged instanceof Promise ? judged : undefined;
      },
    };
  }

  /** Attempt 1 returned `value`: retry on it if `shouldRetry` says so, else succeed. */
  #judgeFirst<T>(fn: Operation<T>, ctx: Context, value: T): T | Promise<T> {
    if (this.#judgesValues) {
      const outcome: Outcome<T> = { ok: true, value };
      if (this.#shouldRetry(outcome, 1)) return this.#retrying(fn, ctx, outcome, true);
    }
    return this.#succeeded(ctx, 1, value);
  }

  /**
   * The slow path, entered after attempt 1 failed (or returned a value to retry on).
   * `judged`: `shouldRetry` already said yes for `outcome` (a value from attempt 1).
   */
  async #retrying<T>(fn: Operation<T>, ctx: Context, outcome: Outcome<T>, judged: boolean): Promise<T> {
    let backoff: BackoffSequence | undefined;
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1) {
        // Run attempt `attempt`, then judge it.
        try {
          const value = await fn(ctx.withAttempt(attempt));
          outcome = { ok: true, value };
          judged = false;
          if (!this.#judgesValues) return this.#succeeded(ctx, attempt, value);
        } catch (error) {
          outcome = { ok: false, error };
          judged = false;
        }
      }
      if (outcome.ok) {
        // a value the predicate accepts is returned even if the call was aborted meanwhile
        if (!judged && !this.#shouldRetry(outcome, attempt))
          return this.#succeeded(ctx, attempt, outcome.value);
        if (ctx.aborted) return this.#giveUp(ctx, attempt, outcome, 'aborted');
      } else {
        // an aborted call is never retried, whatever shouldRetry would say
        if (ctx.aborted) return this.#giveUp(ctx, attempt, outcome, 'aborted');
        if (!this.#shouldRetry(outcome, attempt)) return this.#giveUp(ctx, attempt, outcome, 'not-retryable');
      }
      if (attempt >= this.maxAttempts) return this.#giveUp(ctx, attempt, outcome, 'max-attempts');

      backoff ??= this.backoff.start();
      let delayMs = backoff.next();
      if (!(delayMs >= 0)) delayMs = 0; // NaN or negative from a custom backoff
      const hint = this.#readRetryAfterMs(outcome);
      if (hint !== undefined && hint >= 0) {
        if (hint > this.maxRetryAfterMs) return this.#giveUp(ctx, attempt, outcome, 'retry-after-too-long');
        if (hint > delayMs) delayMs = hint;
      }
      if (delayMs > MAX_TIMER_MS) delayMs = MAX_TIMER_MS;
      if (ctx.deadline !== Infinity && delayMs >= ctx.remainingMs()) {
        return this.#giveUp(ctx, attempt, outcome, 'deadline');
      }
      if (this.budget !== undefined && !this.budget.tryWithdraw()) {
        return this.#giveUp(ctx, attempt, outcome, 'budget');
      }

      if (this.#onRetry.active) {
        this.#onRetry.emit(
          outcome.ok
            ? { ok: true, value: outcome.value, name: this.name, key: ctx.key, attempt, delayMs }
            : { ok: false, error: outcome.error, name: this.name, key: ctx.key, attempt, delayMs },
        );
      }
      try {
        await sleep(this.clock, delayMs, ctx);
      } catch (error) {
        if (!ctx.aborted) throw error; // the clock itself failed
        return this.#giveUp(ctx, attempt, outcome, 'aborted');
      }
    }
  }

  #succeeded<T>(ctx: Context, attempts: number, value: T): T {
    if (this.#onSuccess.active) this.#onSuccess.emit({ name: this.name, key: ctx.key, attempts });
    return value;
  }

  /** Emits the give-up event, then ends the call with the last outcome (the abort reason if aborted). */
  #giveUp<T>(ctx: Context, attempts: number, outcome: Outcome<T>, reason: GiveUpReason): T {
    if (this.#onGiveUp.active) {
      this.#onGiveUp.emit(
        outcome.ok
          ? { ok: true, value: outcome.value, name: this.name, key: ctx.key, attempts, reason }
          : { ok: false, error: outcome.error, name: this.name, key: ctx.key, attempts, reason },
      );
    }
    if (reason === 'aborted') throw ctx.reason;
    if (outcome.ok) return outcome.value;
    throw outcome.error;
  }
}

forwardsContext(RetryPolicy);

/** Creates a {@link RetryPolicy}. */
export function retry(options?: RetryOptions): RetryPolicy {
  return new RetryPolicy(options);
}
