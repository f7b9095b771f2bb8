/**
 * The `adaptiveThrottle` and `hedge` options of the client and `fetchAll`: core's option objects
 * (`Partial<AdaptiveThrottleOptions>`, `Partial<HedgeOptions>`) merged over core's defaults, validated once
 * at construction by core's own factories (so the rules and messages are core's), with the option's
 * dotted path in the error. The keys the HTTP layer sets itself (the key, the clock, `idempotent`, the
 * classifier) are refused with a message saying why.
 */
import {
  ADAPTIVE_THROTTLE_DEFAULTS,
  HEDGE_DEFAULTS,
  InvalidOptionError,
  adaptiveThrottle,
  hedge,
  type AdaptiveThrottleOptions,
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

const THROTTLE_KEYS = ['k', 'windowMs', 'minimumRequests', 'random'] as const;
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
};

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
    const why = OWNED[key];
    if (why !== undefined)
      throw new InvalidOptionError(`${name}.${key}`, (value as never)[key], `no value (${why})`);
  }
  checks.knownKeys(name, value, allowed);
}

/** `adaptiveThrottle` (on by default): `false`, or core's options over ADAPTIVE_THROTTLE_DEFAULTS. */
export function resolveThrottle(name: string, value: unknown): false | ResolvedThrottle {
  if (value === false) return false;
  if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw new InvalidOptionError(
      name,
      value,
      'false or adaptiveThrottle options ({ k, windowMs, minimumRequests, random })',
    );
  }
  const o = (value ?? {}) as Partial<AdaptiveThrottleOptions>;
  refuseOwned(name, o, THROTTLE_KEYS);
  const D = ADAPTIVE_THROTTLE_DEFAULTS;
  const resolved: ResolvedThrottle = Object.freeze({
    k: o.k ?? D.k,
    windowMs: o.windowMs ?? D.windowMs,
    minimumRequests: o.minimumRequests ?? D.minimumRequests,
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
