/**
 * The `circuitBreaker`, `retry`, `adaptiveThrottle` and `hedge` options of the client and `fetchAll`:
 * core's option objects (`Partial<CircuitBreakerOptions>`, `Partial<RetryOptions>`,
 * `Partial<AdaptiveThrottleOptions>`, `Partial<HedgeOptions>`) merged over core's defaults (and, for the
 * breaker and retry, over one partial per program that says where it differs from core), validated once
 * at construction by core's own factories (so the rules and messages are core's), with the option's
 * dotted path in the error. The keys the HTTP layer sets itself (the key, the clock, `idempotent`, the
 * classifier) are refused with a message saying why.
 */
import {
  ADAPTIVE_THROTTLE_DEFAULTS,
  CIRCUIT_BREAKER_DEFAULTS,
  HEDGE_DEFAULTS,
  RETRY_DEFAULTS,
  InvalidOptionError,
  adaptiveThrottle,
  circuitBreaker,
  hedge,
  retry,
  type AdaptiveThrottleOptions,
  type CircuitBreakerOptions,
  type RetryOptions,
  type Clock,
  type HedgeOptions,
  type RandomSource,
  type RetryBudget,
} from '@bulwark/core';
import { checks } from '@bulwark/core/internal';

/** The adaptive throttle's settings, one throttle per origin (client) or host (fetchAll). */
export interface ResolvedThrottle {
  readonly k: number;
  readonly windowMs: number;
  readonly minimumRequests: number;
  readonly maxRejectionProbability: number;
  readonly random: RandomSource;
}

/** The hedging settings, one hedge policy per origin (client) or host (fetchAll). */
export interface ResolvedHedge {
  /** Fixed delay, or undefined for core's adaptive delay (the settings below). */
  readonly delayMs: number | undefined;
  readonly percentile: number;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly minSamples: number;
  readonly windowMs: number;
  readonly maxHedges: number;
  /** A budget shared by every origin, or undefined: each origin gets core's default budget (10 %). */
  readonly budget: RetryBudget | undefined;
}

const THROTTLE_KEYS = ['k', 'windowMs', 'minimumRequests', 'maxRejectionProbability', 'random'] as const;
const HEDGE_KEYS = [
  'delayMs',
  'percentile',
  'minDelayMs',
  'maxDelayMs',
  'minSamples',
  'windowMs',
  'maxHedges',
  'budget',
] as const;
const OWNED: Readonly<Record<string, string>> = {
  keyOf: 'set by the HTTP layer: one throttle per origin',
  maxKeys: 'set by the HTTP layer: one throttle per origin',
  clock: "the client's (or fetchAll's) own `clock` option",
  name: 'set by the HTTP layer (the origin)',
  classify: "set by the HTTP layer (the breaker's verdicts: what the origin did)",
  idempotent: 'set by the HTTP layer: only GET and HEAD are hedged, and both are idempotent',
  initialState: 'one breaker per origin: there is no single state to start from',
  readRetryAfterMs: "set by the HTTP layer: the response's Retry-After",
};

/** The breaker options the HTTP layer takes (core's, less the ones it sets: name, clock, classify, state). */
const BREAKER_KEYS = [
  'strategy',
  'failureRateThreshold',
  'slowCallDurationMs',
  'slowCallRateThreshold',
  'openDurationMs',
  'openDurationBackoff',
  'halfOpenPermits',
  'halfOpenTimeoutMs',
  'mode',
] as const;

/** The retry options the HTTP layer takes (core's, less name, clock, classify and readRetryAfterMs). */
const RETRY_KEYS = [
  'maxAttempts',
  'maxRetryAfterMs',
  'initialDelayMs',
  'maxDelayMs',
  'multiplier',
  'jitter',
  'random',
  'backoff',
  'budget',
] as const;

/** `circuitBreaker` as the HTTP layer takes it: core's options but the ones it sets itself. */
export type HttpBreakerOptions = Pick<CircuitBreakerOptions, (typeof BREAKER_KEYS)[number]>;
/** `retry` as the HTTP layer takes it: core's options but the ones it sets itself. */
export type HttpRetryOptions = Pick<RetryOptions, (typeof RETRY_KEYS)[number]>;

/** Core's factory error, renamed to the option's path (`adaptiveThrottle.k` → `fetchAll.adaptiveThrottle.k`). */
function validated<T>(name: string, core: string, make: () => T): T {
  try {
    return make();
  } catch (error) {
    if (error instanceof InvalidOptionError && error.option.startsWith(`${core}.`)) {
      throw new InvalidOptionError(
        `${name}${error.option.slice(core.length)}`,
        error.received,
        error.expected,
      );
    }
    throw error;
  }
}

function refuseOwned(name: string, value: object, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (allowed.includes(key)) continue;
    const why = Object.hasOwn(OWNED, key) ? OWNED[key] : undefined;
    if (why !== undefined)
      throw new InvalidOptionError(`${name}.${key}`, (value as never)[key], `no value (${why})`);
  }
  checks.knownKeys(name, value, allowed);
}

function isOptionsObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * `circuitBreaker`: `false`, or core's options merged over the program's `defaults` (a partial of
 * core's, which fills in the rest), validated by core's factory.
 */
export function resolveBreaker(
  name: string,
  value: unknown,
  defaults: Readonly<HttpBreakerOptions>,
): false | Readonly<HttpBreakerOptions> {
  if (value === false) return false;
  if (value !== undefined && !isOptionsObject(value)) {
    throw new InvalidOptionError(
      name,
      value,
      "false or circuitBreaker options ({ strategy, openDurationMs, … }: @bulwark/core's)",
    );
  }
  const o = (value ?? {}) as Partial<CircuitBreakerOptions>;
  refuseOwned(name, o, BREAKER_KEYS);
  const merged: Readonly<HttpBreakerOptions> = Object.freeze({ ...defaults, ...o });
  validated(name, 'circuitBreaker', () => circuitBreaker(merged));
  return merged;
}

/**
 * `retry`: `false` (one attempt), or core's options merged over the program's `defaults` (a partial of
 * core's, which fills in the rest), validated by core's factory.
 */
export function resolveRetry(
  name: string,
  value: unknown,
  defaults: Readonly<HttpRetryOptions>,
  allowed: readonly (keyof HttpRetryOptions)[] = RETRY_KEYS,
): Readonly<HttpRetryOptions> & { readonly maxAttempts: number } {
  if (value !== undefined && value !== false && !isOptionsObject(value)) {
    throw new InvalidOptionError(
      name,
      value,
      "false or retry options ({ maxAttempts, initialDelayMs, … }: @bulwark/core's)",
    );
  }
  const o = (value === false ? { maxAttempts: 1 } : (value ?? {})) as Partial<RetryOptions>;
  refuseOwned(name, o, allowed);
  const merged = Object.freeze({ maxAttempts: RETRY_DEFAULTS.maxAttempts, ...defaults, ...o });
  validated(name, 'retry', () => retry(merged));
  return merged as Readonly<HttpRetryOptions> & { readonly maxAttempts: number };
}

/** The number of failures that open a breaker first: the strategy's threshold, or its minimum calls. */
export function failuresToOpen(options: Readonly<HttpBreakerOptions>): number {
  const s = options.strategy ?? CIRCUIT_BREAKER_DEFAULTS.strategy;
  if (s.type === 'consecutive') return s.threshold;
  if (s.type === 'count') return s.minimumCalls ?? Math.min(CIRCUIT_BREAKER_DEFAULTS.minimumCalls, s.size);
  return s.minimumCalls ?? CIRCUIT_BREAKER_DEFAULTS.minimumCalls;
}

/** `adaptiveThrottle` (on by default): `false`, or core's options over ADAPTIVE_THROTTLE_DEFAULTS. */
export function resolveThrottle(name: string, value: unknown): false | ResolvedThrottle {
  if (value === false) return false;
  if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw new InvalidOptionError(
      name,
      value,
      'false or adaptiveThrottle options ({ k, windowMs, minimumRequests, maxRejectionProbability, random })',
    );
  }
  const o = (value ?? {}) as Partial<AdaptiveThrottleOptions>;
  refuseOwned(name, o, THROTTLE_KEYS);
  const D = ADAPTIVE_THROTTLE_DEFAULTS;
  const resolved: ResolvedThrottle = Object.freeze({
    k: o.k ?? D.k,
    windowMs: o.windowMs ?? D.windowMs,
    minimumRequests: o.minimumRequests ?? D.minimumRequests,
    maxRejectionProbability: o.maxRejectionProbability ?? D.maxRejectionProbability,
    random: o.random ?? D.random,
  });
  validated(name, 'adaptiveThrottle', () => adaptiveThrottle(resolved));
  return resolved;
}

/** `hedge` (off by default): `false`/`undefined`, or core's options over HEDGE_DEFAULTS. */
export function resolveHedge(name: string, value: unknown): false | ResolvedHedge {
  if (value === false || value === undefined) return false;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(
      name,
      value,
      'false or hedge options ({ delayMs } or { percentile, … }, maxHedges, budget)',
    );
  }
  const o = value as Partial<HedgeOptions>;
  // `idempotent: true` says what the HTTP layer already knows (GET and HEAD); anything else is refused
  refuseOwned(name, o, o.idempotent === true ? [...HEDGE_KEYS, 'idempotent'] : HEDGE_KEYS);
  const D = HEDGE_DEFAULTS;
  validated(name, 'hedge', () => hedge({ ...o, idempotent: true, clock: undefined }));
  return Object.freeze({
    delayMs: o.delayMs,
    percentile: o.percentile ?? D.percentile,
    minDelayMs: o.minDelayMs ?? D.minDelayMs,
    maxDelayMs: o.maxDelayMs ?? Math.max(D.maxDelayMs, o.minDelayMs ?? D.minDelayMs),
    minSamples: o.minSamples ?? D.minSamples,
    windowMs: o.windowMs ?? D.windowMs,
    maxHedges: o.maxHedges ?? D.maxHedges,
    budget: o.budget,
  });
}

/** Core's options for one origin's throttle. */
export function throttleOptions(
  t: ResolvedThrottle,
  origin: string,
  clock: Clock,
  classify: AdaptiveThrottleOptions['classify'],
): AdaptiveThrottleOptions {
  return { ...t, name: origin, clock, classify, keyOf: () => origin, maxKeys: 1 };
}

/** Core's options for one origin's hedge (GET and HEAD only: idempotent). */
export function hedgeOptions(
  h: ResolvedHedge,
  origin: string,
  clock: Clock,
  classify: HedgeOptions['classify'],
): HedgeOptions {
  const common = { maxHedges: h.maxHedges, name: origin, clock, classify, idempotent: true as const };
  const budget = h.budget === undefined ? {} : { budget: h.budget };
  if (h.delayMs !== undefined) return { ...common, ...budget, delayMs: h.delayMs };
  return {
    ...common,
    ...budget,
    percentile: h.percentile,
    minDelayMs: h.minDelayMs,
    maxDelayMs: h.maxDelayMs,
    minSamples: h.minSamples,
    windowMs: h.windowMs,
  };
}
