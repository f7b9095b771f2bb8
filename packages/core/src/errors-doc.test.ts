// docs/errors.md and the codes in the source must agree, both ways.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const CODE = /\bBULWARK_ERR_[A-Z0-9]+(?:_[A-Z0-9]+)*\b/g;

function sources(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) sources(full, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

it('every BULWARK_ERR_* code in the source has a row in docs/errors.md, and every row a code', () => {
  const inSource = new Set<string>();
  for (const top of ['packages', 'apps']) {
    for (const file of sources(join(root, top))) {
      for (const m of readFileSync(file, 'utf8').matchAll(CODE)) inSource.add(m[0]);
    }
  }
  const doc = readFileSync(join(root, 'docs/errors.md'), 'utf8');
  const inDoc = new Set<string>();
  for (const line of doc.split('\n')) {
    const m = /^\|\s*`(BULWARK_ERR_[A-Z0-9_]+)`/.exec(line);
    if (m) inDoc.add(m[1]!);
  }
  assert.ok(inSource.size >= 5, `found only ${inSource.size} codes in the source`);
  const undocumented = [...inSource].filter((c) => !inDoc.has(c)).sort();
  const stale = [...inDoc].filter((c) => !inSource.has(c)).sort();
  assert.deepEqual(undocumented, [], 'codes missing from docs/errors.md');
  assert.deepEqual(stale, [], 'docs/errors.md lists codes that no longer exist');
});
