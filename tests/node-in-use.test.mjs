// One Node for the whole run: what the tests start by name (`node`), through npm (`npm exec -- node`, what
// `npm run` scripts get) and through `npx node` is the Node that runs the tests. A run on another Node
// than the repository's own (.ci/run's floor leg) would otherwise test part of itself on Node 24 without
// saying so. BULWARK_EXPECT_NODE (set by that leg) also names the exact version the run must be on.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cleanEnv, describeRun, run } from './support.mjs';

describe('the Node the tests run on', () => {
  it('is BULWARK_EXPECT_NODE when that is set', (t) => {
    const expected = process.env.BULWARK_EXPECT_NODE;
    if (!expected) return t.skip('BULWARK_EXPECT_NODE is not set (only .ci/run sets it)');
    assert.equal(process.version, `v${expected.replace(/^v/, '')}`);
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
