// examples/: each program runs from the repository (against the built workspace packages) and prints
// what its comments promise; the folder type-checks with skipLibCheck false. tests/pack.test.mjs runs them
// once more against the packed tarballs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { ROOT, cleanEnv, describeRun, run } from './support.mjs';

const EXPECTED = {
  'core-policies.ts': [
    'price 500 after 3 calls',
    'breaker: closed -> open',
    'fallback: failed, serving the last known price',
    'price 500',
    'fallback: breaker open, serving the last known price',
    'price 500 (the dependency was called 0 times)',
  ],
  'service-fastify.ts': [
    'GET /hello -> 200 {"hello":"world"}',
    'GET /livez -> 200 {"status":"ok"}',
    'GET /readyz -> 200 {"status":"ok","checks":{}}',
    'bulwark_circuit_state{name="greeting-store",state="closed"} 1',
  ],
  'deadlines-and-hedging.ts': [
    "upstream was given <= 295 ms of the caller's 300",
    'a hung call: BULWARK_ERR_DEADLINE_EXCEEDED',
    'hedge: started attempt 2',
    'hedge: won attempt 2',
    'hedged answer from the fast attempt in under 900 ms: true',
    'switched off: ok ok ok ok ok ok ok ok ok ok',
    'switched on:  fault fault ok ok ok ok ok fault ok ok',
  ],
  'http-tiers.ts': [
    '1: primary 200 "from the primary"',
    '2: fresh-cache 200 "from the primary"',
    '3: fallback (fallback-1) 200 "from the mirror"',
    '4: stale-cache 200 "from the mirror"',
    '5: no cache, nothing answers: BULWARK_ERR_ALL_SOURCES_FAILED',
  ],
};

describe('examples/', () => {
  it('holds the programs this test knows, and a README naming each', () => {
    const programs = readdirSync(join(ROOT, 'examples')).filter((n) => n.endsWith('.ts'));
    assert.deepEqual(programs.sort(), Object.keys(EXPECTED).sort());
    const readme = readFileSync(join(ROOT, 'examples', 'README.md'), 'utf8');
    for (const name of programs)
      assert.ok(readme.includes(`node examples/${name}`), `examples/README.md: ${name}`);
  });

  for (const [name, lines] of Object.entries(EXPECTED)) {
    it(`node examples/${name} prints what it promises and exits 0`, async () => {
      const r = await run(process.execPath, [join('examples', name)], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, describeRun(name, r));
      assert.deepEqual(r.stdout.trimEnd().split('\n'), lines, describeRun(name, r));
    });
  }

  it("with the system's node first on PATH (maybe too old to run .ts), the README's `npx node …` runs them", async () => {
    const readme = readFileSync(join(ROOT, 'examples', 'README.md'), 'utf8');
    assert.match(readme, /`npx node examples\/core-policies\.ts`/);
    // PATH without the repository's Node: `node` is whatever the machine has (Node 20 on Ubuntu 24.04)
    const ours = [dirname(process.execPath), join(ROOT, 'node_modules', '.bin')];
    const PATH = (process.env.PATH ?? '')
      .split(delimiter)
      .filter((d) => !ours.includes(d))
      .join(delimiter);
    const r = await run('npx', ['--no-install', 'node', join('examples', 'core-policies.ts')], {
      env: cleanEnv({ PATH }),
      timeoutMs: 120_000,
    });
    assert.equal(r.code, 0, describeRun('npx node examples/core-policies.ts', r));
    assert.deepEqual(r.stdout.trimEnd().split('\n'), EXPECTED['core-policies.ts']);
  });

  it('type-checks (tsc -p examples, skipLibCheck false, erasable syntax only)', async () => {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = await run(process.execPath, [tsc, '-p', 'examples'], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, describeRun('tsc -p examples', r));
  });
});
