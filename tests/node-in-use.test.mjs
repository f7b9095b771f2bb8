// One Node for the whole run: what the tests start by name (`node`), through npm (`npm exec -- node`, what
// `npm run` scripts get) and through `npx node` is the Node that runs the tests. A run on another Node
// than the repository's own (.ci/run's floor leg) would otherwise test part of itself on Node 24 without
// saying so. BULWARK_EXPECT_NODE (set by that leg) also names the exact version the run must be on.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, cleanEnv, describeRun, run } from './support.mjs';

describe('the Node the tests run on', () => {
  it('is BULWARK_EXPECT_NODE when that is set (both legs of .ci/run), else one package.json engines allows', () => {
    const expected = process.env.BULWARK_EXPECT_NODE;
    if (expected) {
      assert.equal(process.version, `v${expected.replace(/^v/, '')}`);
      return;
    }
    const engines = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).engines.node;
    const floor = /^>=\s*(\d+)\.(\d+)\.(\d+)$/.exec(engines);
    assert.ok(floor, `engines.node is ">=X.Y.Z" (got ${engines})`);
    const [major, minor, patch] = process.versions.node.split('.').map(Number);
    const [fMajor, fMinor, fPatch] = floor.slice(1).map(Number);
    const atLeast = major - fMajor || minor - fMinor || patch - fPatch;
    assert.ok(atLeast >= 0, `Node ${process.version} is older than the floor ${engines}`);
  });

  for (const command of [['node'], ['npm', 'exec', '--', 'node'], ['npx', '--no-install', 'node']]) {
    it(`is the one \`${command.join(' ')}\` starts`, async () => {
      const r = await run(command[0], [...command.slice(1), '--version'], {
        env: cleanEnv(),
        timeoutMs: 120_000,
      });
      assert.equal(r.code, 0, describeRun(command.join(' '), r));
      assert.equal(
        r.stdout.trim(),
        process.version,
        `\`${command.join(' ')}\` runs Node ${r.stdout.trim()}, the tests run on ${process.version} ` +
          `(${process.execPath}): node_modules/.bin/node must be this Node (see .ci/run)`,
      );
    });
  }
});
