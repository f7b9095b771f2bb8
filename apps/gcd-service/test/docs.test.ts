/**
 * docs/gcd-service.md stays true: every environment variable with its default, every error code and
 * every metric of the service appear in it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { listVariables } from '../src/config.js';
import { ERROR_CODES } from '../src/errors.js';
import { GCD_METRIC_NAMES } from '../src/metrics.js';

const DOC = readFileSync(new URL('../../../../docs/gcd-service.md', import.meta.url), 'utf8');

test('every variable is in the table, with its default', () => {
  const rows = new Map<string, string>();
  const section = DOC.slice(DOC.indexOf('\n## Environment'), DOC.indexOf('\n## Metrics'));
  for (const line of section.split('\n')) {
    const match = /^\| `([A-Z_*]+)` \| ([^|]+) \|/.exec(line);
    if (match !== null) rows.set(match[1]!, match[2]!.trim());
  }
  for (const v of listVariables()) {
    assert.ok(rows.has(v.name), `${v.name} is missing from the environment table`);
    assert.equal(
      rows.get(v.name),
      v.default,
      `${v.name}: the table says ${rows.get(v.name)}, the code ${v.default}`,
    );
  }
  const known = new Set(listVariables().map((v) => v.name));
  for (const name of rows.keys())
    assert.ok(known.has(name), `the table lists ${name}, which the code does not read`);
});

test('every error code is documented with its status', () => {
  for (const [code, status] of Object.entries(ERROR_CODES)) {
    assert.match(DOC, new RegExp(`\\| \`${code}\` \\| ${status} \\|`), `${code} (${status})`);
  }
});

test('every metric of the service is documented', () => {
  for (const name of Object.values(GCD_METRIC_NAMES)) assert.ok(DOC.includes(`\`${name}\``), name);
});
