/**
 * The `deadlineHeader` option, shared by the client and `fetchAll`: its validation and the one code path
 * that turns an attempt's remaining budget into the `bulwark-timeout-ms` header (@bulwark/core's
 * `formatDeadlineHeader`).
 */
import {
  DEADLINE_HEADER_DEFAULTS,
  DeadlineExceededError,
  InvalidOptionError,
  formatDeadlineHeader,
} from '@bulwark/core';
import { checks } from '@bulwark/core/internal';

/** What callers may pass: `true` (the default allowance), `false` (no header) or `{ allowanceMs }`. */
export type DeadlineHeaderOption = boolean | { allowanceMs?: number };

/** The resolved option: `false`, or the allowance subtracted for the hop. */
export type ResolvedDeadlineHeader = false | { readonly allowanceMs: number };

/** Validates a `deadlineHeader` option (`name` is its dotted path, e.g. `fetchAll.deadlineHeader`). */
export function resolveDeadlineHeader(name: string, value: unknown): ResolvedDeadlineHeader {
  if (value === false) return false;
  if (value === undefined || value === true) {
    return Object.freeze({ allowanceMs: DEADLINE_HEADER_DEFAULTS.allowanceMs });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(name, value, 'true, false or { allowanceMs }');
  }
  checks.knownKeys(name, value, ['allowanceMs']);
  const allowanceMs = (value as { allowanceMs?: unknown }).allowanceMs;
  return Object.freeze({
    allowanceMs:
      allowanceMs === undefined
        ? DEADLINE_HEADER_DEFAULTS.allowanceMs
        : checks.nonNegativeMs(`${name}.allowanceMs`, allowanceMs),
  });
}

/**
 * The `bulwark-timeout-ms` value for an attempt about to be sent with `budgetMs` left (the least of its
 * own limit and the call's deadlines): `undefined` when no header goes (the option is off, or there is
 * no bound). Throws {@link DeadlineExceededError} when nothing is left beyond the allowance: the attempt
 * is not sent.
 */
export function attemptDeadlineHeader(budgetMs: number, option: ResolvedDeadlineHeader): string | undefined {
  if (option === false) return undefined;
  const value = formatDeadlineHeader(budgetMs, option);
  if (value === '0') throw new DeadlineExceededError(Math.max(0, budgetMs));
  return value;
}
