/**
 * A program's flags as one table: each row is one commander option — its flags, parser, default, the
 * path it sets in the library's options object and one doc line. From the table come the commander
 * options (so `--help`), the library options ({@link buildOptions}) and the check of the docs' options
 * table ({@link optionsTableProblems}), so a default is written once: read from the library's or core's
 * defaults in the row (a CLI-only default is the row's own).
 */
import { Option, type Command } from 'commander';

/** The library options a table builds, as nested objects. */
export type BuiltOptions = Record<string, unknown>;

/** One flag (one commander option). */
export interface Flag<T = unknown> {
  /** commander's flags: `-c, --concurrency <n>`, `--no-cache`, `-V, --version`. */
  readonly flags: string;
  /** Parses the option-argument (commander's `argParser`; gets the previous value for a repeatable flag). */
  readonly parse?: (value: string, previous: T) => T;
  /** The value when the flag is not given: from the library's or core's defaults, never a restated number. */
  readonly default?: T;
  /**
   * The default as docs and `--help` show it when not the value itself (`no limit`, `stdout`, `off`);
   * `''` shows none.
   */
  readonly defaultText?: string;
  /** The dotted path the value is written to in the library options (`circuitBreaker.openDurationMs`). */
  readonly target?: string;
  /** Converts the value on its way to `target` (`--retries n` → `retry.maxAttempts`: n + 1). */
  readonly to?: (value: T) => unknown;
  /** Writes the value itself, for a flag that is not one path (called also when the flag has no value). */
  readonly apply?: (value: T | undefined, options: BuiltOptions) => void;
  /** The `--version` or `--help` option of the program. */
  readonly builtin?: 'version' | 'help';
  /** What the flag does, one line: `--help`'s text, and the start of the docs table's last column. */
  readonly doc: string;
}

/** A row, with its value type checked against its parser, default and conversions. */
export function flag<T>(row: Flag<T>): Flag {
  return row as Flag;
}

/** The key commander stores the flag's value under (`--max-wait-ms` → `maxWaitMs`, `--no-cache` → `cache`). */
export function attributeName(row: Flag): string {
  return new Option(row.flags).attributeName();
}

/** The default column of the docs table: the value in backticks, or the row's `defaultText`. */
export function defaultText(row: Flag): string {
  if (row.defaultText !== undefined) return row.defaultText;
  return row.default === undefined ? '' : `\`${String(row.default)}\``;
}

/**
 * Adds every row of `table` to `cmd`, in order: `--help` lists them so. A default shows as
 * `(default: …)`, except on a switch that is off unless given.
 */
export function addFlags(cmd: Command, table: readonly Flag[], version: string): Command {
  for (const row of table) {
    if (row.builtin === 'version') {
      cmd.version(version, row.flags, row.doc);
      continue;
    }
    if (row.builtin === 'help') {
      cmd.helpOption(row.flags, row.doc);
      continue;
    }
    const option = new Option(row.flags, row.doc);
    if (row.parse !== undefined) option.argParser(row.parse);
    const takesValue = option.required || option.optional;
    if (row.default !== undefined) {
      option.default(row.default, row.defaultText?.replaceAll('`', ''));
    } else if (
      takesValue &&
      row.defaultText !== undefined &&
      row.defaultText !== '' &&
      row.defaultText !== 'none'
    ) {
      option.description = `${row.doc} (default: ${row.defaultText.replaceAll('`', '')})`;
    }
    cmd.addOption(option);
  }
  return cmd;
}

/**
 * The library options the parsed `values` (commander's `opts()`) give, row by row in table order: a later
 * row writing the same path wins (`--attempt-timeout` after `--attempt-timeout-ms`). A `false` on the
 * path (a policy turned off) drops the value under it.
 */
export function buildOptions(
  table: readonly Flag[],
  values: Readonly<Record<string, unknown>>,
): BuiltOptions {
  const options: BuiltOptions = {};
  for (const row of table) {
    if (row.builtin !== undefined) continue;
    const value = values[attributeName(row)];
    if (row.apply !== undefined) row.apply(value, options);
    else if (row.target !== undefined && value !== undefined)
      setPath(options, row.target, row.to === undefined ? value : row.to(value));
  }
  return options;
}

/** Writes `value` at the dotted `path` of `into`, creating objects on the way; nothing under a `false`. */
export function setPath(into: BuiltOptions, path: string, value: unknown): void {
  const keys = path.split('.');
  let at = into;
  for (const key of keys.slice(0, -1)) {
    const next = at[key];
    if (next === false) return;
    if (typeof next === 'object' && next !== null) at = next as BuiltOptions;
    else at = at[key] = {};
  }
  at[keys.at(-1)!] = value;
}

/** A doc line as the docs table starts its last column: the first letter upper-cased. */
function sentence(doc: string): string {
  return doc.charAt(0).toUpperCase() + doc.slice(1);
}

/** The start of a row of the docs' options table, as `table` says it: flags, default, the doc line. */
export function docsRowStart(row: Flag): string {
  const d = defaultText(row);
  return `| \`${row.flags}\` |${d === '' ? '' : ` ${d}`} | ${sentence(row.doc)}`;
}

/**
 * Checks the options table of a docs page — the table under the header `| option | default | meaning |` —
 * row for row against `table`: the same flags in the same order, the same default, and a last column that
 * begins with the row's doc line (the docs may say more after it). Returns the problems (none: `[]`), each
 * with the row start to paste.
 */
export function optionsTableProblems(markdown: string, table: readonly Flag[]): string[] {
  const lines = markdown.split('\n');
  const header = lines.indexOf('| option | default | meaning |');
  if (header < 0) return ['no options table (a header "| option | default | meaning |")'];
  const rows: string[] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line);
  }
  const problems: string[] = [];
  const count = Math.max(rows.length, table.length);
  for (let i = 0; i < count; i++) {
    const row = table[i];
    const line = rows[i];
    if (row === undefined) problems.push(`docs row ${i + 1} has no flag in the table: ${line}`);
    else if (line === undefined) problems.push(`no docs row for ${row.flags}: ${docsRowStart(row)} |`);
    else if (!line.startsWith(docsRowStart(row)))
      problems.push(`docs row ${i + 1} is not ${row.flags}'s: expected it to start ${docsRowStart(row)}`);
  }
  return problems;
}
