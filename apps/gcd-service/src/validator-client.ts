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
  DEADLINE_HEADER,
  DeadlineExceededError,
  circuitBreaker,
  currentDeadline,
  formatDeadlineHeader,
  pipeline,
  retry,
  timeout,
  type CircuitBreakerPolicy,
  type CircuitState,
  type Clock,
  type CallContext,
  type Policy,
  type Subscribe,
} from '@bulwark/core';
import { EventEmitter } from '@bulwark/core/internal';
import { injectTraceHeaders, traceAttempt } from '@bulwark/service';
import type { ValidatorConfig } from './config.js';
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

  constructor(config: ValidatorConfig, deps: ValidatorClientDeps = {}) {
    this.#url = new URL('/validate', config.url).href;
    this.#ownsDispatcher = deps.dispatcher === undefined;
    this.#dispatcher =
      deps.dispatcher ??
      new Agent({ connections: 64, keepAliveTimeout: 4_000, connectTimeout: config.timeoutMs });
    this.#clock = deps.clock;
    const clock = deps.clock === undefined ? {} : { clock: deps.clock };
    const deadline = timeout({ timeoutMs: config.deadlineMs, name: 'validator-deadline', ...clock });
    const retries = retry({
      ...clock,
      name: 'validator-retry',
      maxAttempts: config.retries + 1,
      initialDelayMs: 25,
      maxDelayMs: 250,
      // Core's classifier does not retry an open breaker: "answer locally now", not "wait until it half-opens".
    });
    this.breaker = circuitBreaker({
      ...clock,
      name: 'validator',
      // The chapter's breaker: open after 5 failures in a row; probe after `openMs`.
      strategy: { type: 'consecutive', threshold: config.failureThreshold },
      openDurationMs: config.openMs,
      // Open for VALIDATOR_OPEN_MS every time, as documented (core's default doubles it per failed probe).
      openDurationBackoff: { multiplier: 1, maxOpenDurationMs: config.openMs },
      halfOpenPermits: 1,
    });
    const perAttempt = timeout({ timeoutMs: config.timeoutMs, name: 'validator-attempt', ...clock });
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
    const retryAfter = Number(res.headers['retry-after']);
    throw new ValidatorUnavailableError(
      `The validator answered ${res.statusCode}`,
      res.statusCode,
      Number.isFinite(retryAfter) ? retryAfter * 1000 : undefined,
      res.statusCode >= 500 || res.statusCode === 429 || res.statusCode === 408,
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
