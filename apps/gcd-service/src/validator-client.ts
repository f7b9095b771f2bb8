/**
 * The call from the gcd service to the upstream validator (`VALIDATOR_URL`), through @bulwark/core:
 *
 *     timeout (deadline for the whole step) → retry → circuit breaker → timeout (per attempt)
 *       [→ a game day's chaos fault / latency, CHAOS_*: src/chaos.ts] → HTTP call
 *
 * - A verdict ("these numbers are not acceptable") is an answer, not a failure: it is returned as a
 *   value, so it neither trips the breaker nor is retried, and the client gets a 400.
 * - Anything else (connection refused, 5xx, 429, a hang past the per-attempt timeout, an open breaker,
 *   the deadline) means the validator could not answer: the service degrades to its own validation,
 *   says so in the `x-gcd-validation: local-fallback` header, a log line (the caller's), a metric and
 *   `/healthz`, and keeps serving.
 * - Trace context travels in the request headers (W3C `traceparent`), so one trace crosses both services.
 * - The request's deadline travels too: a gcd request that came with `bulwark-timeout-ms` runs under that
 *   ambient deadline (the kit sets it), and the validator step is bounded by it minus
 *   {@link VALIDATOR_RESERVE_MS} — the time kept to answer locally — so a validator too slow for the
 *   caller's budget means `local-fallback` within the budget, not a 504. Each attempt tells the
 *   validator what it has left in its own `bulwark-timeout-ms` header.
 */
import { Agent, request, type Dispatcher } from 'undici';
import {
  CIRCUIT_BREAKER_DEFAULTS,
  DEADLINE_HEADER,
  RETRY_DEFAULTS,
  DeadlineExceededError,
  circuitBreaker,
  currentDeadline,
  formatDeadlineHeader,
  pipeline,
  retry,
  timeout,
  type CircuitBreakerOptions,
  type CircuitBreakerPolicy,
  type CircuitState,
  type Clock,
  type CallContext,
  type Policy,
  type RetryOptions,
  type Subscribe,
} from '@bulwark/core';
import { EventEmitter } from '@bulwark/core/internal';
import { RETRYABLE_STATUSES, parseRetryAfter } from '@bulwark/http';
import { injectTraceHeaders, traceAttempt } from '@bulwark/service';
import { GcdError } from './errors.js';
import type { ValidationMode } from './routes.js';

/** The validator answered, but not with a verdict (5xx, 429, an unexpected status or body). */
export class ValidatorUnavailableError extends Error {
  override readonly name = 'ValidatorUnavailableError';
  readonly code = 'GCD_ERR_VALIDATOR_UNAVAILABLE';
  constructor(
    message: string,
    readonly statusCode: number | undefined,
    /** A wait hint from `Retry-After`, in ms (retry honours it). */
    readonly retryAfterMs: number | undefined,
    /** False for answers another attempt cannot change (a wrong URL: 404, 405, 415). */
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/** The longest `VALIDATOR_OPEN_MS` (1 h): the cap of the breaker's (fixed) open duration. */
export const MAX_OPEN_DURATION_MS = 3_600_000;

/**
 * The validator client's options, in core's words: `circuitBreaker` and `retry` are core's option objects,
 * merged over {@link VALIDATOR_DEFAULTS} (which take core's defaults where the validator has no reason
 * to differ). `timeoutMs` bounds the whole step, retries included; `attemptTimeoutMs` each attempt.
 */
export interface ValidatorOptions {
  /** The validator's base URL (`VALIDATOR_URL`); the client posts to `/validate` on it. */
  readonly url: string;
  /** The whole validation step, retries included; then local validation is used. */
  readonly timeoutMs?: number;
  /** Each call to the validator (and its connect). */
  readonly attemptTimeoutMs?: number;
  /** core `retry` options, merged over {@link VALIDATOR_DEFAULTS}`.retry`. */
  readonly retry?: Partial<Omit<RetryOptions, 'clock'>>;
  /** core `circuitBreaker` options, merged over {@link VALIDATOR_DEFAULTS}`.circuitBreaker`. */
  readonly circuitBreaker?: Partial<Omit<CircuitBreakerOptions, 'clock'>>;
  /** Share the breaker's trips through Redis (`REDIS_URL`) with the other instances (server.ts). */
  readonly fleetBreaker?: boolean;
}

/**
 * The validator's defaults, each chosen once (the env table, docs/gcd-service.md, takes its defaults from here):
 * - `timeoutMs` 1 s for the whole step and `attemptTimeoutMs` 300 ms: a validation answers in
 *   milliseconds; past that the service answers locally rather than keep its caller waiting.
 * - retry: core's `maxAttempts` (3: two retries), with short delays (25 ms growing to 250 ms) that fit
 *   inside the step's second.
 * - circuitBreaker: the chapter's breaker — open after 5 failures in a row (not core's time window: a
 *   validator sees every request, so a run of failures is news at once), one half-open probe, core's
 *   `openDurationMs` (5 s) **fixed**: `multiplier: 1`, so the breaker stays open `VALIDATOR_OPEN_MS`
 *   each time however many probes fail (core's default would double it up to 60 s; here the documented
 *   time is the time, and a recovered validator is used again within it).
 */
export const VALIDATOR_DEFAULTS = Object.freeze({
  timeoutMs: 1_000,
  attemptTimeoutMs: 300,
  retry: Object.freeze({
    name: 'validator-retry',
    maxAttempts: RETRY_DEFAULTS.maxAttempts,
    initialDelayMs: 25,
    maxDelayMs: 250,
  }),
  circuitBreaker: Object.freeze({
    name: 'validator',
    strategy: Object.freeze({ type: 'consecutive', threshold: 5 }) as {
      type: 'consecutive';
      threshold: number;
    },
    openDurationMs: CIRCUIT_BREAKER_DEFAULTS.openDurationMs,
    openDurationBackoff: Object.freeze({ multiplier: 1, maxOpenDurationMs: MAX_OPEN_DURATION_MS }),
    halfOpenPermits: 1,
  }),
  fleetBreaker: false,
});

/** The validator could not be used for one request; local validation was used instead. */
export interface FallbackEvent {
  /** `CircuitOpenError`, `TimeoutError`, `ValidatorUnavailableError`, a network error name, … */
  readonly reason: string;
  readonly message: string;
  readonly breakerState: CircuitState;
}

export interface ValidatorClientDeps {
  /** undici dispatcher. @default an Agent owned (and closed) by the client */
  readonly dispatcher?: Dispatcher;
  /** The clock of every policy (deadline, retry, breaker, per-attempt timeout). @default systemClock */
  readonly clock?: Clock;
  /**
   * A game day's policies (src/chaos.ts), run inside the per-attempt timeout and so inside the breaker:
   * an injected fault is a failed attempt (retried, counted by the breaker), an injected delay is timed.
   */
  readonly chaos?: readonly Policy[];
}

/** Statuses saying the request was too large for the validator: a configuration mismatch, not an outage. */
const TOO_LARGE = new Set([413, 414, 431]);

/**
 * Kept from the request's deadline for what follows the validator step (the local rules, the gcd and the
 * answer), in ms: the validator call ends this long before the request's deadline.
 */
export const VALIDATOR_RESERVE_MS = 10;

type Verdict =
  { readonly valid: true } | { readonly valid: false; readonly code: string; readonly message: string };

export class ValidatorClient {
  readonly breaker: CircuitBreakerPolicy;
  readonly policy: Policy;
  /** The policies, named, for metrics (`instrument`). */
  readonly policies: Readonly<Record<string, object>>;
  readonly #url: string;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #clock: Clock | undefined;
  readonly #onFallback = new EventEmitter<FallbackEvent>();
  /** Every request that fell back to local validation. */
  readonly onFallback: Subscribe<FallbackEvent> = this.#onFallback.subscribe;
  /** Requests answered with local validation because the validator could not answer. */
  fallbacks = 0;
  /** The last reason the validator could not be used, for /healthz. */
  lastFailure: { readonly reason: string; readonly message: string; readonly at: string } | undefined;

  constructor(options: ValidatorOptions, deps: ValidatorClientDeps = {}) {
    const d = VALIDATOR_DEFAULTS;
    const timeoutMs = options.timeoutMs ?? d.timeoutMs;
    const attemptTimeoutMs = options.attemptTimeoutMs ?? d.attemptTimeoutMs;
    this.#url = new URL('/validate', options.url).href;
    this.#ownsDispatcher = deps.dispatcher === undefined;
    this.#dispatcher =
      deps.dispatcher ??
      new Agent({ connections: 64, keepAliveTimeout: 4_000, connectTimeout: attemptTimeoutMs });
    this.#clock = deps.clock;
    const clock = deps.clock === undefined ? {} : { clock: deps.clock };
    const deadline = timeout({ timeoutMs, name: 'validator-deadline', ...clock });
    // Core's classifier does not retry an open breaker: "answer locally now", not "wait until it half-opens".
    const retries = retry({ ...d.retry, ...options.retry, ...clock });
    this.breaker = circuitBreaker({ ...d.circuitBreaker, ...options.circuitBreaker, ...clock });
    const perAttempt = timeout({ timeoutMs: attemptTimeoutMs, name: 'validator-attempt', ...clock });
    this.policy = pipeline(deadline, retries, this.breaker, perAttempt, ...(deps.chaos ?? []));
    this.policies = {
      'validator-deadline': deadline,
      'validator-retry': retries,
      validator: this.breaker,
      'validator-attempt': perAttempt,
    };
  }

  /**
   * `remote` when the validator accepted the pair; throws a 400 {@link GcdError} when it rejected it;
   * `local-fallback` when it could not answer (the caller's own validation then stands).
   */
  async check(pair: { n: string; m: string }, signal?: AbortSignal): Promise<ValidationMode> {
    let verdict: Verdict;
    // the request's deadline (Infinity without one), less what answering locally needs
    const deadline = currentDeadline(this.#clock) - VALIDATOR_RESERVE_MS;
    try {
      verdict = await this.policy.execute(
        traceAttempt('POST /validate', (ctx) => this.#call(pair, ctx), {
          attributes: { 'peer.service': 'gcd-validator' },
        }),
        deadline === Infinity ? { signal } : { signal, deadline },
      );
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const err = error as Error;
      const reason = err.name === 'Error' ? ((err as { code?: string }).code ?? 'Error') : err.name;
      this.fallbacks++;
      this.lastFailure = { reason, message: err.message, at: new Date().toISOString() };
      if (this.#onFallback.active) {
        this.#onFallback.emit({ reason, message: err.message, breakerState: this.breaker.state });
      }
      return 'local-fallback';
    }
    if (!verdict.valid) {
      throw new GcdError(
        'GCD_ERR_REJECTED_BY_VALIDATOR',
        `The validator rejected the numbers (${clip(verdict.code, 64)}): ${clip(verdict.message, MAX_VERDICT_MESSAGE)}`,
      );
    }
    return 'remote';
  }

  async #call(pair: { n: string; m: string }, ctx: CallContext): Promise<Verdict> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
    };
    // what this attempt has left (its own timeout, the step's deadline, the request's), minus the hop
    const budget = formatDeadlineHeader(ctx.remainingMs());
    if (budget === '0') throw new DeadlineExceededError(Math.max(0, ctx.remainingMs()));
    if (budget !== undefined) headers[DEADLINE_HEADER] = budget;
    const signal = ctx.signal;
    // The attempt's span is active here (traceAttempt), so the validator's span becomes its child.
    injectTraceHeaders(headers);
    const res = await request(this.#url, {
      method: 'POST',
      headers,
      body: JSON.stringify(pair),
      signal,
      dispatcher: this.#dispatcher,
    });
    const text = await res.body.text();
    if (res.statusCode === 200) {
      // A 200 is a verdict only when it says so, about these numbers: `{"valid": true, "n", "m"}`.
      const body = parse(text);
      if (body?.valid === true && body.n === pair.n && body.m === pair.m) return { valid: true };
      if (body?.valid === false) {
        return {
          valid: false,
          code: typeof body.code === 'string' ? body.code : 'GCD_ERR_INVALID_NUMBER',
          message: typeof body.message === 'string' ? body.message : 'the validator answered valid: false',
        };
      }
      throw new ValidatorUnavailableError(
        'The validator answered 200 without a verdict about these numbers ({"valid": true, "n", "m"} expected)',
        200,
        undefined,
        false,
      );
    }
    if (res.statusCode === 400) {
      const body = parse(text);
      if (typeof body?.code === 'string' && typeof body.message === 'string') {
        return { valid: false, code: body.code, message: body.message };
      }
    }
    // @bulwark/http's classification: which statuses another attempt may change, and Retry-After in
    // both forms (seconds or an HTTP-date).
    throw new ValidatorUnavailableError(
      TOO_LARGE.has(res.statusCode)
        ? `The validator answered ${res.statusCode}: it refuses requests this large — its MAX_DIGITS (or body and header limits) is lower than this service's; give both the same MAX_DIGITS`
        : `The validator answered ${res.statusCode}`,
      res.statusCode,
      parseRetryAfter(res.headers['retry-after']),
      RETRYABLE_STATUSES.has(res.statusCode),
    );
  }

  async close(): Promise<void> {
    if (this.#ownsDispatcher) await this.#dispatcher.close();
  }
}

function parse(
  text: string,
): { code?: unknown; message?: unknown; valid?: unknown; n?: unknown; m?: unknown } | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Longest part of a validator's rejection passed on to the client, in characters. */
const MAX_VERDICT_MESSAGE = 300;

/**
 * An upstream's words, made safe to pass on: control characters become spaces and the text is cut to
 * `max` characters with an ellipsis (a validator's 9 KB message with NUL bytes went to clients whole).
 */
function clip(text: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ');
  return clean.length <= max ? clean : `${clean.slice(0, max - 1)}…`;
}
