/**
 * The cross-service budget header: how a deadline crosses an HTTP hop.
 *
 * One header, `bulwark-timeout-ms`, whose value is the time the receiver has left, in whole milliseconds,
 * relative to when the request was sent (as gRPC's `grpc-timeout` and Envoy's
 * `x-envoy-expected-rq-timeout-ms`): a relative value does not depend on the two machines' clocks agreeing.
 *
 * - The sender (@bulwark/http) writes `formatDeadlineHeader(ctx.remainingMs())` just before it sends: the
 *   remaining time minus `allowanceMs` (what the hop itself takes: the request's transit and the
 *   receiver's queueing before it starts its clock), rounded down. No deadline, no header.
 * - The receiver (@bulwark/service) reads `parseDeadlineHeader(request.headers['bulwark-timeout-ms'], {
 *   maxMs })`: strict (ASCII digits only, at most 10 of them, one value), capped at its own maximum, and
 *   makes the result the request's ambient deadline (`runWithDeadline({ timeoutMs })`). A budget of 0
 *   means the caller has already given up: answer at once, without doing the work.
 */
import * as check from './options.js';

/** The header's name (lower case, as Node delivers request headers). */
export const DEADLINE_HEADER = 'bulwark-timeout-ms';

/** The defaults of {@link formatDeadlineHeader} and {@link parseDeadlineHeader}. */
export const DEADLINE_HEADER_DEFAULTS = Object.freeze({
  /** Subtracted when sending: the hop's own transit and queueing, so the receiver ends before the sender. */
  allowanceMs: 5,
  /** The longest budget a receiver accepts; a larger one is cut to it (`capped: true`). */
  maxMs: 60_000,
});

/** The longest value accepted, in digits (10: up to ~115 days, far above any `maxMs`). */
const MAX_DIGITS = 10;

export interface FormatDeadlineHeaderOptions {
  /** Subtracted from the remaining time, in ms (≥ 0). @default 5 */
  allowanceMs?: number;
}

export interface ParseDeadlineHeaderOptions {
  /** The receiver's own maximum, in whole ms (an integer ≥ 1): a larger budget is cut to it. @default 60_000 */
  maxMs?: number;
}

/** What a received header says. */
export type DeadlineHeaderResult =
  /** No header: the caller set no deadline (the receiver applies its own, if any). */
  | { readonly ok: true; readonly present: false }
  /**
   * A budget: `timeoutMs` from when the request arrived (0: already spent). `capped`: the caller sent
   * more than `maxMs`, and `timeoutMs` is `maxMs`.
   */
  | { readonly ok: true; readonly present: true; readonly timeoutMs: number; readonly capped: boolean }
  /** Not a valid value: `reason` says why (for a 400 answer or a log line). */
  | { readonly ok: false; readonly reason: string };

const ABSENT: DeadlineHeaderResult = Object.freeze({ ok: true, present: false });

/**
 * The header value for a call with `remainingMs` left (`ctx.remainingMs()`), or undefined when there is
 * no deadline to send (`Infinity`). Whole milliseconds, rounded down, after subtracting `allowanceMs`;
 * never negative (`'0'`: the budget is spent — better not to send the request at all).
 */
export function formatDeadlineHeader(
  remainingMs: number,
  options?: FormatDeadlineHeaderOptions,
): string | undefined {
  const allowanceMs =
    options?.allowanceMs === undefined
      ? DEADLINE_HEADER_DEFAULTS.allowanceMs
      : check.number('formatDeadlineHeader.allowanceMs', options.allowanceMs, { min: 0 });
  if (typeof remainingMs !== 'number' || Number.isNaN(remainingMs)) {
    throw new TypeError(`formatDeadlineHeader: remainingMs must be a number, got ${String(remainingMs)}`);
  }
  if (remainingMs === Infinity) return undefined;
  const ms = Math.floor(remainingMs - allowanceMs);
  if (!(ms > 0)) return '0';
  return String(Math.min(ms, 10 ** MAX_DIGITS - 1));
}

/**
 * Reads a received header value (`request.headers['bulwark-timeout-ms']`: a string, an array when the
 * header was repeated, or undefined). Strict: one value of 1–10 ASCII digits, nothing else (no sign,
 * point, exponent, unit or whitespace); a repeated header is refused unless every copy is the same value.
 */
export function parseDeadlineHeader(
  value: string | readonly string[] | undefined,
  options?: ParseDeadlineHeaderOptions,
): DeadlineHeaderResult {
  const maxMs =
    options?.maxMs === undefined
      ? DEADLINE_HEADER_DEFAULTS.maxMs
      : check.positiveInteger('parseDeadlineHeader.maxMs', options.maxMs);
  if (value === undefined) return ABSENT;
  let text: unknown = value;
  if (Array.isArray(value)) {
    if (value.length === 0) return ABSENT;
    if (value.some((v) => v !== value[0])) {
      return { ok: false, reason: `${DEADLINE_HEADER} was sent more than once with different values` };
    }
    text = value[0];
  }
  if (typeof text !== 'string') return { ok: false, reason: `${DEADLINE_HEADER} must be a string` };
  if (text.length === 0 || text.length > MAX_DIGITS || !isDigits(text)) {
    return {
      ok: false,
      reason: `${DEADLINE_HEADER} must be a whole number of milliseconds (1 to ${MAX_DIGITS} digits 0-9), got ${JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text)}`,
    };
  }
  const ms = Number(text);
  return ms > maxMs
    ? { ok: true, present: true, timeoutMs: maxMs, capped: true }
    : { ok: true, present: true, timeoutMs: ms, capped: false };
}

function isDigits(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}
