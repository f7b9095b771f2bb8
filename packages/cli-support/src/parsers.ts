/**
 * Option-argument parsers for commander, as both CLIs take their values: each returns the parsed value or
 * throws commander's `InvalidArgumentError` with the "expected …" half of the usage error (commander puts
 * the option and the bad value before it).
 */
import { readFileSync, statSync } from 'node:fs';
import { InvalidArgumentError } from 'commander';

/** The longest time a timer takes: 2^31−1 ms (about 24.8 days). */
export const MAX_MS = 2 ** 31 - 1;

/** An integer argument from `min` to `max`; `unit` names what it counts (`milliseconds`, `bytes`). */
export function integer(min: number, max: number, unit?: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        `expected an integer${unit === undefined ? '' : ` number of ${unit}`} from ${min} to ${max}.`,
      );
    }
    return n;
  };
}

/** A decimal number (plain notation: `0.5`, `10`) from `min` (or above it) to `max`. */
export function decimal(min: number, max: number, above = false) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(value) || (above ? n <= min : n < min) || n > max) {
      throw new InvalidArgumentError(
        `expected a decimal number ${above ? `greater than ${min} and at most` : `from ${min} to`} ${max}.`,
      );
    }
    return n;
  };
}

/** Seconds as curl takes them (`2.5`, `10`, `0.25`), to whole milliseconds, from `minMs` to 2^31−1 ms. */
export function seconds(minMs = 1) {
  return (value: string): number => {
    // the range is checked on the value given, before it is rounded to whole milliseconds
    const given = Number(value) * 1000;
    const ms = Math.round(given);
    if (!/^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(value) || !(given >= minMs) || given > MAX_MS) {
      throw new InvalidArgumentError(
        `expected a number of seconds, decimals allowed (e.g. 2.5), from ${minMs / 1000} to ${MAX_MS / 1000}.`,
      );
    }
    return ms;
  };
}

/** A repeatable option: each value parsed by `parse`, collected in order. */
export function collect<T>(parse: (v: string) => T) {
  return (value: string, previous: T[] = []): T[] => [...previous, parse(value)];
}

/** Any string but an empty (or blank) one; `what` names what is expected (`file path`). */
export function nonEmpty(what: string) {
  return (value: string): string => {
    if (value.trim() === '') throw new InvalidArgumentError(`expected a ${what}, not an empty string.`);
    return value;
  };
}

/** A header field name: an RFC 9110 token. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers undici (and HTTP/1.1 framing) manage themselves: setting them by hand breaks the exchange. */
const MANAGED = new Set(['connection', 'content-length', 'transfer-encoding', 'keep-alive', 'upgrade', 'te']);

/**
 * `-H "Name: value"` → `[name, value]` (the name lower-cased). With `removable`, `Name:` (an empty value)
 * is allowed and the message says it removes a default header; `program` names who manages the headers
 * that cannot be set.
 */
export function header(program: string, removable: boolean) {
  return (value: string): [string, string] => {
    const colon = value.indexOf(':');
    const name = colon < 0 ? '' : value.slice(0, colon).trim();
    if (colon < 0 || !TOKEN.test(name)) {
      throw new InvalidArgumentError(
        `expected "Name: value" with a header name of letters, digits and !#$%&'*+.^_\`|~-${removable ? ' (or "Name:" to remove a default header).' : '.'}`,
      );
    }
    const v = value.slice(colon + 1).trim();
    if (/[\r\n\0]/.test(v)) throw new InvalidArgumentError('expected a header value without CR, LF or NUL.');
    if (MANAGED.has(name.toLowerCase())) {
      throw new InvalidArgumentError(
        `expected a header ${program} does not manage itself; ${name} is set by the HTTP client.`,
      );
    }
    return [name.toLowerCase(), v];
  };
}

/** `-A, --user-agent <name>`: any value without CR, LF or NUL. */
export function userAgent(value: string): string {
  if (/[\r\n\0]/.test(value)) throw new InvalidArgumentError('expected a User-Agent without CR, LF or NUL.');
  return value;
}

/** `--cacert <file>`: the text of a readable file of PEM certificates (at least one). */
export function certificates(value: string): string {
  let text: string;
  try {
    if (statSync(value).isDirectory()) throw new Error('it is a directory');
    text = readFileSync(value, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new InvalidArgumentError(
      `expected a readable file of PEM certificates; cannot read it (${reason}).`,
    );
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new InvalidArgumentError(
      'expected a file of PEM certificates (-----BEGIN CERTIFICATE-----); none found.',
    );
  }
  return text;
}
