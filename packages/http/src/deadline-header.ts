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

/**
 * The largest allowance: it stands for one hop's network and queueing time, not for a budget (a huge one
 * made every attempt look spent before it was sent).
 */
const MAX_ALLOWANCE_MS = 60_000;

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
        : checks.number(`${name}.allowanceMs`, allowanceMs, { min: 0, max: MAX_ALLOWANCE_MS }),
  });
}

/**
 * The `bulwark-timeout-ms` value for an attempt about to be sent: the least of `callerMs` (what is left of
 * the caller's budget: the call's deadlines) and `ownMs` (the attempt's own limit), less the allowance.
 * `undefined` when no header goes (the option is off, or there is no bound). Throws
 * {@link DeadlineExceededError} when the **caller's** budget has nothing left beyond the allowance: the
 * attempt is not sent. An attempt whose own limit is shorter than the allowance is still sent, with the
 * smallest budget (`1`): a short attempt timeout is the caller's choice, not a spent deadline.
 */
export function attemptDeadlineHeader(
  callerMs: number,
  ownMs: number,
  option: ResolvedDeadlineHeader,
): string | undefined {
  if (option === false) return undefined;
  if (formatDeadlineHeader(callerMs, option) === '0') throw new DeadlineExceededError(Math.max(0, callerMs));
  const value = formatDeadlineHeader(Math.min(callerMs, ownMs), option);
  return value === '0' ? '1' : value;
}
