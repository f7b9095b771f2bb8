/**
 * docs/gcd-service.md stays true: every environment variable with its default, every error code and
 * every metric of the service appear in it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { listVariables, type VariableInfo } from '../src/config.js';
import { ERROR_CODES } from '../src/errors.js';
import { GCD_METRIC_NAMES } from '../src/metrics.js';

const DOC = readFileSync(new URL('../../../../docs/gcd-service.md', import.meta.url), 'utf8');

/** A variable's row in the docs table, as the env table in src/config.ts says it. */
export function docsRow(v: VariableInfo): string {
  return `| \`${v.name}\` | ${v.default} | ${v.allowed} | ${v.doc} |`;
}

test('the environment table is the env table of src/config.ts: names, defaults, allowed values, doc lines', () => {
  const section = DOC.slice(DOC.indexOf('\n## Environment'), DOC.indexOf('\n## Metrics'));
  const rows = section.split('\n').filter((line) => line.startsWith('| `'));
  const expected = listVariables().map(docsRow);
  // One row per variable, in the table's order: a failure shows the row to paste.
  assert.deepEqual(rows, expected);
});

test('every error code is documented with its status', () => {
  for (const [code, status] of Object.entries(ERROR_CODES)) {
    assert.match(DOC, new RegExp(`\\| \`${code}\` \\| ${status} \\|`), `${code} (${status})`);
  }
});

test('every metric of the service is documented', () => {
  for (const name of Object.values(GCD_METRIC_NAMES)) assert.ok(DOC.includes(`\`${name}\``), name);
});
