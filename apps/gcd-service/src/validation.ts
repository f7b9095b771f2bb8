/**
 * Input validation: fail fast, before any BigInt work, with a message that says what was wrong.
 *
 * A number is accepted only when it is written with the ASCII digits 0-9 and nothing else, has at
 * most `maxDigits` characters and is not zero. The length is checked first, so an oversized input
 * costs one comparison whatever it contains. Every other check is one linear pass over at most
 * `maxDigits` characters (no backtracking regular expression sees client input).
 */
import { GcdError } from './errors.js';

/**
 * A validated pair, ready to compute: canonical decimal strings (no leading zeros). Kept as strings,
 * not BigInts: a large pair goes to a worker thread as text anyway, and turning a BigInt of thousands of
 * digits back into decimal costs more than the rest of the request.
 */
export interface GcdInput {
  readonly n: string;
  readonly m: string;
  /** The longer of the two numbers, in digits (decides inline vs. worker pool). */
  readonly digits: number;
}

/** Raw parameter values as the query or form parser gives them. */
export type RawParams = Readonly<Record<string, unknown>> | null | undefined;

export const PARAMETER_NAMES = ['n', 'm'] as const;
export type ParameterName = (typeof PARAMETER_NAMES)[number];

const EXAMPLE = 'for example n=12 and m=18';
const SHOW_CHARS = 24;

/** Reads `n` and `m` from parsed query or form parameters and validates them. Throws a {@link GcdError}. */
export function parseGcdParams(params: RawParams, maxDigits: number): GcdInput {
  const n = parseNumber(pick(params, 'n'), 'n', maxDigits);
  const m = parseNumber(pick(params, 'm'), 'm', maxDigits);
  return { n: n.value, m: m.value, digits: Math.max(n.value.length, m.value.length) };
}

/** The one string value of a parameter, or a missing / repeated parameter error. */
export function pick(params: RawParams, name: ParameterName): string {
  const value = params != null && Object.hasOwn(params, name) ? params[name] : undefined;
  if (value === undefined) {
    throw new GcdError(
      'GCD_ERR_MISSING_PARAMETER',
      `Parameter ${name} is missing: give two positive whole numbers n and m, ${EXAMPLE}.`,
    );
  }
  if (Array.isArray(value)) {
    throw new GcdError(
      'GCD_ERR_REPEATED_PARAMETER',
      `Parameter ${name} was given ${value.length} times; give it exactly once.`,
    );
  }
  if (typeof value !== 'string') {
    throw new GcdError('GCD_ERR_INVALID_NUMBER', `Parameter ${name} must be a string of decimal digits.`);
  }
  return value;
}

/**
 * Validates one decimal number and returns it without leading zeros. Throws a {@link GcdError} naming
 * the parameter and the problem.
 */
export function parseNumber(raw: string, name: string, maxDigits: number): { value: string } {
  if (raw.length === 0) {
    throw invalid(`${name} is empty; write a positive whole number, ${EXAMPLE}.`);
  }
  if (raw.length > maxDigits) {
    throw new GcdError(
      'GCD_ERR_TOO_MANY_DIGITS',
      `${name} has ${raw.length} characters; at most ${maxDigits} digits are allowed.`,
    );
  }
  let firstNonZero = -1;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c < 48 || c > 57) throw invalid(explain(raw, name, i));
    if (c !== 48 && firstNonZero < 0) firstNonZero = i;
  }
  if (firstNonZero < 0) {
    throw new GcdError(
      'GCD_ERR_ZERO',
      `${name} is zero; both numbers must be positive (the gcd of x and 0 is just x).`,
    );
  }
  return { value: firstNonZero === 0 ? raw : raw.slice(firstNonZero) };
}

function invalid(message: string): GcdError {
  return new GcdError('GCD_ERR_INVALID_NUMBER', message);
}

/** Why `raw` is not a plain decimal number; `at` is the index of the first character that is not 0-9. */
function explain(raw: string, name: string, at: number): string {
  const shown = show(raw);
  const first = raw[0] ?? '';
  const prefix = `${name} must be a positive whole number written with the digits 0-9 only; received ${shown}`;
  if (first === '-') return `${prefix}: negative numbers are not accepted.`;
  if (first === '+') return `${prefix}: leave out the leading '+' sign.`;
  if (/\s/u.test(raw)) return `${prefix}: it contains whitespace.`;
  if (raw.includes('.') || raw.includes(',')) return `${prefix}: decimals and separators are not accepted.`;
  if (/^[0-9]+(?:\.[0-9]*)?[eE][+-]?[0-9]+$/u.test(raw)) {
    return `${prefix}: exponent notation is not accepted; write all the digits.`;
  }
  if (/^0[xXoObB]/u.test(raw)) return `${prefix}: only base 10 is accepted.`;
  const cp = raw.codePointAt(at) ?? 0;
  const ch = String.fromCodePoint(cp);
  if (/\p{Nd}/u.test(ch)) {
    const hex = cp.toString(16).toUpperCase().padStart(4, '0');
    return `${prefix}: '${ch}' (U+${hex}) is a digit in another script; use the ASCII digits 0-9.`;
  }
  return `${prefix}: character ${at + 1} is not a digit.`;
}

/** The received value for a message: at most 24 characters, quoted, control characters escaped. */
export function show(raw: string): string {
  const cut = [...raw];
  const head = cut.length > SHOW_CHARS ? `${cut.slice(0, SHOW_CHARS).join('')}…` : raw;
  return JSON.stringify(head);
}
