// The repository in a directory whose path has a space in it: the tests that find their files from
// import.meta.url, or build a shell command line out of paths, and `npm run clean`, still work there.
// The built workspaces (dist/ included) and the scripts are copied to "…/repo with space/", beside a
// link to this repository's node_modules, and run there as they run here (the many-requests CLI test
// needs promtool, as it does here).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, cleanEnv, describeRun, run } from './support.mjs';

let repo;
before(() => {
  const tmp = mkdtempSync(join(tmpdir(), 'bulwark space-'));
  // Readable by everyone, as a checkout is: some CLI tests run the CLI as another user (`nobody`).
  chmodSync(tmp, 0o755);
  repo = join(tmp, 'repo with space');
  const skip = (src) => !/[\\/]node_modules([\\/]|$)/.test(src.slice(ROOT.length));
  for (const entry of ['package.json', 'scripts', 'packages', 'apps', 'ops'])
    cpSync(join(ROOT, entry), join(repo, entry), { recursive: true, filter: skip });
  symlinkSync(join(ROOT, 'node_modules'), join(repo, 'node_modules'));
});
after(() => rmSync(join(repo, '..'), { recursive: true, force: true }));

describe('the repository in a path with a space', () => {
  for (const file of ['packages/service/dist/shutdown.test.js', 'apps/many-requests/dist/test/cli.test.js']) {
    it(`${file} passes there`, async () => {
      const r = await run(process.execPath, ['--test', '--test-reporter=spec', file], {
        cwd: repo,
        env: cleanEnv({ NODE_TEST_CONTEXT: undefined }),
        timeoutMs: 300_000,
      });
      assert.equal(r.code, 0, describeRun(file, r));
    });
  }

  it('npm run clean (scripts/clean.mjs) removes the build output there', async () => {
    assert.ok(existsSync(join(repo, 'packages/core/dist')));
    const r = await run(process.execPath, ['scripts/clean.mjs'], { cwd: repo });
    assert.equal(r.code, 0, describeRun('clean', r));
    assert.equal(existsSync(join(repo, 'packages/core/dist')), false, 'packages/core/dist is still there');
    assert.equal(existsSync(join(repo, 'apps/gcd-service/tsconfig.tsbuildinfo')), false);
  });
});
