/**
 * Helpers of the operations-kit tests (test/ops/*.test.ts): where the repository is, YAML loading, the
 * metric selectors a PromQL expression uses, and the Prometheus text exposition parsed into names and
 * label names. Small on purpose: just enough PromQL to find every selector in our own rules and dashboard.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

/** The repository root (dist/test/ops/ → five levels up), or what the test runner says it is. */
export const REPO_ROOT =
  process.env.BULWARK_REPO_ROOT ?? fileURLToPath(new URL('../../../../../', import.meta.url));

export function repoPath(...parts: string[]): string {
  return join(REPO_ROOT, ...parts);
}

export function readRepoFile(...parts: string[]): string {
  return readFileSync(repoPath(...parts), 'utf8');
}

export function loadYaml<T = unknown>(...parts: string[]): T {
  return parseYaml(readRepoFile(...parts)) as T;
}

/** Every document of a multi-document YAML file (`---` separated), empty ones dropped. */
export function loadYamlDocuments<T = Record<string, unknown>>(...parts: string[]): T[] {
  return parseAllDocuments(readRepoFile(...parts))
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`${parts.join('/')}: ${d.errors[0]!.message}`);
      return d.toJS() as T;
    })
    .filter((d) => d !== null && d !== undefined);
}

// --- PromQL ----------------------------------------------------------------------------------------------

/** One vector selector: the metric name and the label names its matchers use. */
export interface Selector {
  readonly name: string;
  readonly labels: readonly string[];
}

const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);
const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
  'atan2',
  '@',
  'start',
  'end',
]);
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/**
 * The vector selectors of a PromQL expression (Grafana's `$variables` allowed). Function and
 * aggregation names, `by (…)` label lists, strings, ranges and numbers are skipped. Throws on a
 * construct it does not understand, so a test never passes by skipping a selector.
 */
export function promqlSelectors(expr: string): Selector[] {
  const out: Selector[] = [];
  let i = 0;
  const n = expr.length;
  const peek = (): string => {
    let j = i;
    while (j < n && /\s/.test(expr[j]!)) j++;
    return expr[j] ?? '';
  };
  const skipSpace = () => {
    while (i < n && /\s/.test(expr[i]!)) i++;
  };
  const skipString = () => {
    const quote = expr[i]!;
    i++;
    while (i < n && expr[i] !== quote) i += expr[i] === '\\' ? 2 : 1;
    if (i >= n) throw new Error(`unterminated string in: ${expr}`);
    i++;
  };
  const skipParens = () => {
    skipSpace();
    if (expr[i] !== '(') throw new Error(`expected ( at ${i} in: ${expr}`);
    const close = expr.indexOf(')', i);
    if (close === -1) throw new Error(`unclosed ( in: ${expr}`);
    i = close + 1;
  };
  const matchers = (): string[] => {
    // at '{'
    const labels: string[] = [];
    i++;
    for (;;) {
      skipSpace();
      if (expr[i] === '}') {
        i++;
        return labels;
      }
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(expr.slice(i));
      if (m === null) throw new Error(`expected a label name at ${i} in: ${expr}`);
      labels.push(m[0]);
      i += m[0].length;
      skipSpace();
      const op = /^(=~|!~|!=|=)/.exec(expr.slice(i));
      if (op === null) throw new Error(`expected a matcher operator at ${i} in: ${expr}`);
      i += op[0].length;
      skipSpace();
      if (expr[i] !== '"' && expr[i] !== "'" && expr[i] !== '`') {
        throw new Error(`expected a string at ${i} in: ${expr}`);
      }
      skipString();
      skipSpace();
      if (expr[i] === ',') i++;
    }
  };
  while (i < n) {
    const c = expr[i]!;
    if (/\s/.test(c) || '()+-*/%^<>=!,'.includes(c)) {
      i++;
    } else if (c === '#') {
      while (i < n && expr[i] !== '\n') i++;
    } else if (c === '"' || c === "'" || c === '`') {
      skipString();
    } else if (c === '[') {
      const close = expr.indexOf(']', i);
      if (close === -1) throw new Error(`unclosed [ in: ${expr}`);
      i = close + 1;
    } else if (c === '$') {
      const m = /^\$(\{[^}]*\}|[A-Za-z0-9_]+)/.exec(expr.slice(i));
      if (m === null) throw new Error(`bad variable at ${i} in: ${expr}`);
      i += m[0].length;
    } else if (/[0-9.]/.test(c)) {
      const m = /^[0-9.]+(e[+-]?[0-9]+)?[a-z]*/i.exec(expr.slice(i));
      i += m![0].length;
    } else if (c === '{') {
      // a selector without a name: only `{__name__="…"}` is allowed here
      const start = i;
      const labels = matchers();
      const name = /__name__\s*=\s*"([^"]+)"/.exec(expr.slice(start, i));
      if (name === null) throw new Error(`a selector without a literal metric name in: ${expr}`);
      out.push({ name: name[1]!, labels: labels.filter((l) => l !== '__name__') });
    } else if (/[A-Za-z_:]/.test(c)) {
      const m = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(expr.slice(i))!;
      const word = m[0];
      i += word.length;
      const next = peek();
      if (LABEL_LISTS.has(word)) {
        if (next === '(') skipParens();
      } else if (
        AGGREGATIONS.has(word) &&
        (next === '(' || /^(by|without)\b/.test(expr.slice(i).trimStart()))
      ) {
        // the aggregation; its `by (…)` is handled when the loop reaches it
      } else if (next === '(') {
        // a function call
      } else if (KEYWORDS.has(word.toLowerCase())) {
        // an operator or a number
      } else {
        skipSpace();
        const labels = expr[i] === '{' ? matchers() : [];
        out.push({ name: word, labels });
      }
    } else {
      throw new Error(`unexpected ${JSON.stringify(c)} at ${i} in: ${expr}`);
    }
  }
  return out;
}

// --- exposition --------------------------------------------------------------------------------------------

/** A metric name as it appears in samples, with the label names seen on its samples. */
export interface ExposedMetric {
  /** The family's TYPE (`counter`, `gauge`, `histogram`, `summary`, `untyped`). */
  readonly type: string;
  /** Label names seen on at least one sample (empty when the family has no samples yet). */
  readonly labels: Set<string>;
  /** Samples seen under this name. */
  samples: number;
}

/**
 * Parses the Prometheus text format into every sample name a query may use: a histogram family `x`
 * gives `x_bucket`, `x_sum` and `x_count`; a summary `x` gives `x`, `x_sum`, `x_count`. Families that
 * have no samples yet (a labelled counter never incremented) are still listed, from their TYPE line.
 */
export function parseExposition(text: string): Map<string, ExposedMetric> {
  const metrics = new Map<string, ExposedMetric>();
  const add = (name: string, type: string) => {
    if (!metrics.has(name)) metrics.set(name, { type, labels: new Set(), samples: 0 });
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      if (name === undefined || type === undefined) throw new Error(`bad TYPE line: ${line}`);
      if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) add(name + s, type);
      else if (type === 'summary') for (const s of ['', '_sum', '_count']) add(name + s, type);
      else add(name, type);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+\S+/.exec(line);
    if (m === null) throw new Error(`bad sample line: ${line}`);
    const metric = metrics.get(m[1]!);
    if (metric === undefined) throw new Error(`sample without a TYPE line: ${line}`);
    metric.samples++;
    for (const label of labelNames(m[3] ?? '')) metric.labels.add(label);
  }
  return metrics;
}

function labelNames(body: string): string[] {
  const names: string[] = [];
  const re = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)",?/y;
  let at = 0;
  while (at < body.length) {
    re.lastIndex = at;
    const m = re.exec(body);
    if (m === null) throw new Error(`bad labels: {${body}}`);
    names.push(m[1]!);
    at = re.lastIndex;
  }
  return names;
}

/** Labels Prometheus attaches to every scraped series (target labels). */
export const TARGET_LABELS: readonly string[] = ['job', 'instance'];

/** Series that Prometheus itself makes, not the service. */
export const PROMETHEUS_SERIES: readonly string[] = ['up', 'ALERTS', 'ALERTS_FOR_STATE'];

/**
 * Series that no gcd-service process exports: http-get's snapshot failures and many-requests' failed runs
 * in a row, written as node-exporter textfiles (docs/ops/runbook.md#httpgetsnapshotfailures,
 * #manyrequestsbatchfailing).
 */
export const TEXTFILE_SERIES: readonly string[] = [
  'bulwark_snapshot_failures_last_run',
  'bulwark_many_requests_last_run_consecutive_failures',
];
