/**
 * Validators used by every factory at construction. Each throws {@link InvalidOptionError} naming the
 * option (`policy.option`), what was received and what is allowed.
 */
import { MAX_TIMER_MS, systemClock, type Clock } from './clock.js';
import { InvalidOptionError } from './errors.js';

/** The options argument must be a plain object (or undefined when every option has a default). */
export function optionsObject<T extends object>(policy: string, value: T | undefined, required = false): T {
  if (value === undefined && !required) return {} as T;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(policy, value, 'an options object');
  }
  return value;
}

interface NumberRule {
  /** Inclusive lower bound. */
  min?: number;
  /** Exclusive lower bound. */
  above?: number;
  /** Inclusive upper bound. */
  max?: number;
  integer?: boolean;
  /** Allow `Infinity` (for "no limit"). */
  infinite?: boolean;
}

export function number(option: string, value: unknown, rule: NumberRule): number {
  const ok =
    typeof value === 'number' &&
    !Number.isNaN(value) &&
    (Number.isFinite(value) || (rule.infinite === true && value === Infinity)) &&
    (!rule.integer || Number.isInteger(value) || value === Infinity) &&
    (rule.min === undefined || value >= rule.min) &&
    (rule.above === undefined || value > rule.above) &&
    (rule.max === undefined || value <= rule.max || value === Infinity);
  if (!ok) throw new InvalidOptionError(option, value, describeRule(rule));
  return value as number;
}

function describeRule(rule: NumberRule): string {
  const parts = [rule.integer ? 'an integer' : 'a finite number'];
  if (rule.min !== undefined) parts.push(`>= ${rule.min}`);
  if (rule.above !== undefined) parts.push(`> ${rule.above}`);
  if (rule.max === MAX_TIMER_MS) parts.push(`<= ${MAX_TIMER_MS} (2^31 - 1, the longest timer Node honours)`);
  else if (rule.max !== undefined) parts.push(`<= ${rule.max}`);
  if (rule.infinite) parts.push('(or Infinity)');
  return parts.join(' ');
}

/**
 * A duration in ms handed to a timer: at most {@link MAX_TIMER_MS} (a longer one would fire after 1 ms).
 * `infinite` allows `Infinity` for "no timer at all".
 */
export const timerMs = (
  option: string,
  value: unknown,
  rule: { min?: number; above?: number; infinite?: boolean },
): number => number(option, value, { ...rule, max: MAX_TIMER_MS });

/** An integer ≥ 1. */
export const positiveInteger = (option: string, value: unknown, infinite = false): number =>
  number(option, value, { min: 1, integer: true, infinite });

/** A duration in ms ≥ 0. */
export const nonNegativeMs = (option: string, value: unknown, infinite = false): number =>
  number(option, value, { min: 0, infinite });

/** A duration in ms > 0. */
export const positiveMs = (option: string, value: unknown, infinite = false): number =>
  number(option, value, { above: 0, infinite });

/** A ratio in [0, 1]. */
export const ratio = (option: string, value: unknown): number => number(option, value, { min: 0, max: 1 });

export function oneOf<const C extends readonly string[]>(
  option: string,
  value: unknown,
  choices: C,
): C[number] {
  if (typeof value !== 'string' || !choices.includes(value)) {
    throw new InvalidOptionError(option, value, `one of ${choices.map((c) => `"${c}"`).join(', ')}`);
  }
  return value as C[number];
}

export function fn<F extends (...args: never[]) => unknown>(option: string, value: unknown): F {
  if (typeof value !== 'function') throw new InvalidOptionError(option, value, 'a function');
  return value as F;
}

export function string(option: string, value: unknown): string {
  if (typeof value !== 'string') throw new InvalidOptionError(option, value, 'a string');
  return value;
}

export function boolean(option: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new InvalidOptionError(option, value, 'a boolean');
  return value;
}

export function clock(option: string, value: unknown): Clock {
  if (value === undefined) return systemClock;
  const c = value as Partial<Clock>;
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof c.now !== 'function' ||
    typeof c.setTimeout !== 'function' ||
    typeof c.clearTimeout !== 'function'
  ) {
    throw new InvalidOptionError(option, value, 'a Clock ({ now, setTimeout, clearTimeout })');
  }
  return value as Clock;
}

/** Rejects option names the factory does not know (catches typos such as `timeout` for `timeoutMs`). */
export function knownKeys(policy: string, options: object, allowed: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new InvalidOptionError(
        `${policy}.${key}`,
        (options as Record<string, unknown>)[key],
        `no such option; allowed: ${allowed.join(', ')}`,
      );
    }
  }
}
