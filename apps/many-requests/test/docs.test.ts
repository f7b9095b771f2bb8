// docs/many-requests.md must stay in step with the code: every error code, exit code, CLI option and
// library option (with its default) is documented.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { optionsTableProblems } from '@bulwark/cli-support';
import { CIRCUIT_BREAKER_DEFAULTS } from '@bulwark/core';
import { FETCH_ALL_DEFAULTS, FETCH_ERROR_CODES } from '@bulwark/http';
import { EXIT, FLAGS, parseArgs } from '../src/config.js';
import { LatencyHistogram } from '../src/summary.js';

const doc = readFileSync(new URL('../../../../docs/many-requests.md', import.meta.url), 'utf8');
const rows = doc.split('\n').filter((l) => l.startsWith('| '));
const row = (first: string): string | undefined => rows.find((l) => l.startsWith(`| ${first} |`));

test('every error code has a row in the error-code table', () => {
  for (const code of FETCH_ERROR_CODES) assert.ok(row(`\`${code}\``), `docs: no row for ${code}`);
  const documented = rows.map((l) => /^\| `([A-Z0-9_]+)` \|/.exec(l)?.[1]).filter((c) => c !== undefined);
  for (const code of documented)
    assert.ok(FETCH_ERROR_CODES.includes(code as never), `docs: unknown ${code}`);
});

test('every exit code is in the exit-code table and in --help', () => {
  const help = parseArgs(['--help'], '0.0.0');
  assert.equal(help.kind, 'exit');
  const text = help.kind === 'exit' ? help.stdout : '';
  for (const code of Object.values(EXIT)) {
    assert.ok(row(String(code)), `docs: no row for exit code ${code}`);
    assert.match(text, new RegExp(`\\n\\s+${code}\\s+\\S`), `--help: exit code ${code}`);
  }
});

test('the options table is the flag table of src/config.ts: flags, defaults and doc lines, row for row', () => {
  assert.deepEqual(optionsTableProblems(doc, FLAGS), []);
});

test('every option --help prints is documented', () => {
  const help = parseArgs(['--help'], '0.0.0');
  const text = help.kind === 'exit' ? help.stdout : '';
  const flags = new Set(text.match(/--[a-z][a-z-]+/g));
  assert.ok(flags.size >= 12);
  for (const flag of flags)
    assert.ok(doc.includes(`\`${flag}`) || doc.includes(`, ${flag}`), `docs: ${flag}`);
});

test('without flags, fetchAll gets its own defaults (the table reads them, restates none)', () => {
  const parsed = parseArgs(['http://x/'], '0.0.0');
  assert.equal(parsed.kind, 'run');
  if (parsed.kind !== 'run') return;
  const o = parsed.config.fetchAll;
  const d = FETCH_ALL_DEFAULTS;
  assert.deepEqual(
    [o.concurrency, o.perHostConcurrency, o.attemptTimeoutMs, o.ratePerHost, o.maxWaitMs],
    [d.concurrency, d.perHostConcurrency, d.attemptTimeoutMs, d.ratePerHost, d.maxWaitMs],
  );
  assert.deepEqual(o.retry, { maxAttempts: d.retry.maxAttempts });
  assert.deepEqual(o.retryBudget, { ratio: d.retryBudget.ratio });
  assert.deepEqual(o.circuitBreaker, {
    strategy: d.circuitBreaker.strategy,
    openDurationMs: CIRCUIT_BREAKER_DEFAULTS.openDurationMs,
  });
  assert.equal(o.hedge, false);
  assert.equal(o.headers, undefined);
  assert.equal(o.tls, undefined);
});

/** A default as the docs write it: a number, or an object literal `{ key: value, … }` ('strings' quoted). */
function literal(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value !== 'object' || value === null) return String(value);
  const entries = Object.entries(value).map(([k, v]) => `${k}: ${literal(v)}`);
  return `{ ${entries.join(', ')} }`;
}

test('every library option is documented, with its default', () => {
  for (const [key, value] of Object.entries(FETCH_ALL_DEFAULTS)) {
    const line = row(`\`${key}\``);
    assert.ok(line, `docs: no row for option ${key}`);
    const documented = /^\| `[^`]+` \| `([^`]+)` \|/.exec(line)?.[1]?.replaceAll('_', '');
    assert.equal(documented, literal(value), `docs: default of ${key}`);
  }
  for (const key of ['headers', 'signal', 'dispatcher'])
    assert.ok(row(`\`${key}\``), `docs: no row for ${key}`);
});

test('the latency histogram is within its 2 % resolution', () => {
  const h = new LatencyHistogram();
  assert.equal(h.quantile(0.5), undefined);
  for (let i = 1; i <= 1000; i++) h.record(i);
  h.record(0);
  const p50 = h.quantile(0.5)!;
  const p99 = h.quantile(0.99)!;
  assert.ok(p50 >= 500 && p50 <= 500 * 1.021, `p50 ${p50}`);
  assert.ok(p99 >= 990 && p99 <= 990 * 1.021, `p99 ${p99}`);
  assert.equal(h.count, 1001);
});
