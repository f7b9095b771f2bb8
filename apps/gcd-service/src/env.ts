/**
 * A generic, table-driven environment reader (nothing here knows about gcd): each variable is one
 * {@link EnvVar} row — its name, a parser, the path it sets in the options object, its default and a doc
 * line — and {@link readEnv} reads them all, collecting every problem instead of stopping at the first.
 *
 * An empty value (`PORT=`) counts as unset, as Docker Compose writes unset interpolations — except for a
 * row marked `refuseEmpty` (a secret that turns a protection on: one that did not reach the environment
 * must not silently turn it off). A `secret` row never has its value echoed in an issue.
 */

export type Env = Readonly<Record<string, string | undefined>>;

/** One problem with one variable. */
export interface ConfigIssue {
  readonly variable: string;
  /** The value as received (redacted for secrets). */
  readonly received: string;
  readonly expected: string;
}

/** The environment is invalid. `message` lists every problem, one per line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'GCD_ERR_CONFIG';
  constructor(readonly issues: readonly ConfigIssue[]) {
    super(
      `Invalid configuration (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n` +
        issues.map((i) => `  ${i.variable}=${i.received}: expected ${i.expected}`).join('\n'),
    );
  }
}

/** A variable the reader knows, for docs and `--help`. */
export interface VariableInfo {
  readonly name: string;
  /** The default as the docs table shows it. */
  readonly default: string;
  /** What it accepts (the text of its validation message). */
  readonly expected: string;
  /** What it accepts, short (the docs table's "allowed" column). */
  readonly allowed: string;
  /** One line saying what it does (the docs table's last column). */
  readonly doc: string;
  /** Where its value goes in the options object (`validator.circuitBreaker.openDurationMs`), if anywhere. */
  readonly target: string | undefined;
}

/** Turns a raw (non-empty) value into a typed one, or `undefined` when it is not acceptable. */
export interface Parser<T> {
  /** What is allowed, for the error message: "a whole number from 0 to 65535". */
  readonly expected: string;
  /** The same, short, for the docs table: "0–65535". */
  readonly allowed: string;
  parse(raw: string): T | undefined;
}

/** The values read so far, by variable name (rows are read in order: a default may use earlier ones). */
export type ReadValues = Readonly<Record<string, unknown>>;

/** One environment variable. */
export interface EnvVar<T = unknown> {
  readonly name: string;
  readonly parser: Parser<T>;
  /**
   * The dotted path the value is written to in the options object (through `to` when given); absent
   * for a variable only other rules read (e.g. `CHAOS_ALLOW_IN_PRODUCTION`).
   */
  readonly target?: string;
  /** The value when unset: a constant (taken from the kit's or core's defaults) or one computed from earlier rows. */
  readonly default: T | undefined | ((values: ReadValues) => T | undefined);
  /** The default as documented, when `String(default)` is not it ("CPU count − 1 (at least 1)"). */
  readonly defaultText?: string;
  /** Converts the value on its way to `target` (VALIDATOR_RETRIES → `retry.maxAttempts`: n + 1). */
  readonly to?: (value: T) => unknown;
  /** Never echo the received value (what to show instead). */
  /** An empty value is refused instead of counting as unset (for a value that turns a protection on). */
  readonly refuseEmpty?: boolean;
  readonly secret?: string;
  /** The docs' "allowed" column when the parser's is not all of it (a rule across variables). */
  readonly allowed?: string;
  /** What the variable does, one line (the docs table's last column). */
  readonly doc: string;
}

/** A row, with its value type checked against its parser and default. */
export function envVar<T>(row: EnvVar<T>): EnvVar {
  return row as EnvVar;
}

/** What {@link readEnv} found: the options object, every value by name, and the problems. */
export interface EnvReading {
  /** Every target path set, as nested objects. */
  readonly options: Record<string, unknown>;
  readonly values: ReadValues;
  readonly issues: ConfigIssue[];
  /** Records a problem found by a rule across variables. */
  fail(variable: string, received: unknown, expected: string): void;
}

/** Reads every row of `table` from `env`. */
export function readEnv(env: Env, table: readonly EnvVar[]): EnvReading {
  const values: Record<string, unknown> = {};
  const options: Record<string, unknown> = {};
  const issues: ConfigIssue[] = [];
  const secrets = new Map(table.filter((r) => r.secret !== undefined).map((r) => [r.name, r.secret!]));
  const fail = (variable: string, received: unknown, expected: string): void => {
    const hidden = secrets.get(variable);
    const shown =
      hidden ?? (received === undefined ? '(unset)' : JSON.stringify(String(received as string | number)));
    issues.push({ variable, received: shown, expected });
  };
  for (const row of table) {
    const fallback = defaultOf(row, values);
    const raw = env[row.name];
    let value = fallback;
    if (raw !== undefined && (raw !== '' || row.refuseEmpty === true)) {
      const parsed = raw === '' ? undefined : row.parser.parse(raw);
      if (parsed === undefined) fail(row.name, raw, row.parser.expected);
      else value = parsed;
    }
    values[row.name] = value;
    if (row.target !== undefined && value !== undefined) {
      setPath(options, row.target, row.to === undefined ? value : row.to(value));
    }
  }
  return { options, values, issues, fail };
}

/** Every row as docs and `--help` show it. */
export function describeTable(table: readonly EnvVar[]): readonly VariableInfo[] {
  const values: Record<string, unknown> = {};
  return table.map((row) => {
    const fallback = defaultOf(row, values);
    values[row.name] = fallback;
    return {
      name: row.name,
      default: row.defaultText ?? String(fallback),
      expected: row.parser.expected,
      allowed: row.allowed ?? row.parser.allowed,
      doc: row.doc,
      target: row.target,
    };
  });
}

function defaultOf(row: EnvVar, values: ReadValues): unknown {
  return typeof row.default === 'function'
    ? (row.default as (v: ReadValues) => unknown)(values)
    : row.default;
}

function setPath(into: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let at = into;
  for (const key of keys.slice(0, -1)) {
    const next = at[key];
    if (typeof next === 'object' && next !== null) at = next as Record<string, unknown>;
    else at = at[key] = {};
  }
  at[keys.at(-1)!] = value;
}

// --- parsers ---------------------------------------------------------------------------------------------

/** A whole number from `min` to `max`. */
export function int(min: number, max: number): Parser<number> {
  return {
    expected: `a whole number from ${min} to ${max}`,
    allowed: `${min}–${max}`,
    parse: (raw) =>
      /^[0-9]{1,15}$/u.test(raw) && Number(raw) >= min && Number(raw) <= max ? Number(raw) : undefined,
  };
}

/** One of `allowed`. */
export function oneOf<T extends string>(allowed: readonly T[]): Parser<T> {
  return {
    expected: `one of ${allowed.join(', ')}`,
    allowed: allowed.join(', '),
    parse: (raw) => ((allowed as readonly string[]).includes(raw) ? (raw as T) : undefined),
  };
}

/** true / false, on / off, 1 / 0 (any case). */
export const bool: Parser<boolean> = {
  expected: 'one of true, false, on, off, 1, 0',
  allowed: 'true/false/on/off/1/0',
  parse(raw) {
    const v = raw.toLowerCase();
    if (v === 'true' || v === 'on' || v === '1') return true;
    if (v === 'false' || v === 'off' || v === '0') return false;
    return undefined;
  },
};

/** A share of calls, from 0 to 1 (`0.05` = 5 %). */
export const rate: Parser<number> = {
  expected: 'a number from 0 to 1 (a share of calls: 0.05 = 5 %)',
  allowed: '0–1',
  parse: (raw) => (/^(?:0|1|0?\.[0-9]{1,15}|1\.0{1,15})$/u.test(raw) ? Number(raw) : undefined),
};

/** A string that `valid` accepts (any, without it). */
export function text(
  expected: string,
  allowed: string,
  valid: (value: string) => boolean = () => true,
): Parser<string> {
  return { expected, allowed, parse: (raw) => (valid(raw) ? raw : undefined) };
}

/** A URL with one of `protocols` (`'redis:'`). */
export function url(protocols: readonly string[]): Parser<string> {
  return {
    expected: `a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`,
    allowed: protocols.map((p) => `\`${p}//…\``).join(' or '),
    parse(raw) {
      try {
        return protocols.includes(new URL(raw).protocol) ? raw : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

/** `false`, `true`, or a comma list of proxy addresses / CIDRs (Fastify's `trustProxy`). */
export const trustProxy: Parser<boolean | readonly string[]> = {
  expected: 'false, true, or a comma list of proxy IP addresses / CIDRs',
  allowed: 'false, true, or a comma list of proxy addresses / CIDRs',
  parse(raw) {
    if (raw === 'false') return false;
    if (raw === 'true') return true;
    const list = raw.split(',').map((v) => v.trim());
    if (list.some((v) => !/^[0-9a-fA-F:.]+(?:\/[0-9]{1,3})?$/u.test(v))) return undefined;
    return Object.freeze(list);
  },
};
