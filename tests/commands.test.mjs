// The commands inside the repository: `npx http-get --help` and `npx many-requests --help` work after
// `npm install` and keep working after `npm run clean && npm run build`, because "bin" names a committed,
// executable shim that no build writes or cleans; the shim says what to do when the build is missing or
// Node is too old.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { ROOT, cleanEnv, describeRun, run, workspaces } from './support.mjs';

const COMMANDS = workspaces().flatMap(({ dir, manifest }) =>
  Object.entries(manifest.bin ?? {}).map(([command, file]) => ({ dir, command, file, manifest })),
);
// the repository's Node first, as `npm run` and `npx` put it
const env = cleanEnv({ PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}` });
const tmp = mkdtempSync(join(tmpdir(), 'bulwark-commands-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('the commands in the repository', () => {
  it('are the two CLIs, each "bin" a committed executable shim outside dist/', async () => {
    assert.deepEqual(COMMANDS.map((c) => c.command).sort(), ['http-get', 'many-requests']);
    for (const { dir, command, file } of COMMANDS) {
      assert.equal(file, `bin/${command}.js`, `${dir}: bin`);
      const ls = await run('git', ['ls-files', '--stage', '--', `${dir}/${file}`]);
      assert.match(
        ls.stdout,
        /^100755 /,
        `${dir}/${file} must be committed with mode 100755 (got: ${ls.stdout.trim() || 'untracked'})`,
      );
      assert.ok(readFileSync(join(ROOT, dir, file), 'utf8').startsWith('#!/usr/bin/env node\n'));
      // no TypeScript project compiles it and `npm run clean` removes only dist/: nothing takes it away
      const tsconfig = JSON.parse(readFileSync(join(ROOT, dir, 'tsconfig.json'), 'utf8'));
      assert.ok(
        tsconfig.include.every((glob) => !glob.startsWith('bin')),
        `${dir}/tsconfig.json includes bin/`,
      );
    }
  });

  it('are linked on node_modules/.bin to the shims', () => {
    for (const { dir, command, file } of COMMANDS) {
      const link = join(ROOT, 'node_modules', '.bin', command);
      assert.equal(
        resolve(dirname(link), readlinkSync(link)),
        resolve(ROOT, 'node_modules', resolveWorkspaceLink(dir), file),
      );
    }
  });

  for (const { command, manifest } of COMMANDS) {
    it(`npx ${command} --help and --version answer from the repository root`, async () => {
      const help = await run('npx', ['--no-install', command, '--help'], { env, timeoutMs: 60_000 });
      assert.equal(help.code, 0, describeRun(`npx ${command} --help`, help));
      assert.match(help.stdout, new RegExp(`^Usage: ${command} \\[options\\]`));
      const version = await run('npx', ['--no-install', command, '--version'], { env, timeoutMs: 60_000 });
      assert.equal(version.stdout, `${manifest.version}\n`, describeRun(`npx ${command} --version`, version));
    });
  }

  it('say "run npm run build" when the built program is missing (after npm run clean)', async () => {
    for (const { command, file } of COMMANDS) {
      // the shim alone, as it sits in a package whose dist/ was cleaned
      const shim = join(tmp, command, file);
      mkdirSync(dirname(shim), { recursive: true });
      copyFileSync(join(ROOT, COMMANDS.find((c) => c.command === command).dir, file), shim);
      const r = await run(process.execPath, [shim, '--help'], { env, timeoutMs: 60_000 });
      assert.equal(r.code, 1, describeRun(command, r));
      assert.equal(r.stdout, '');
      assert.match(
        r.stderr,
        new RegExp(
          `^${command}: error: not built \\(.*dist/src/main\\.js is missing\\): run \`npm run build\` in the repository\\n$`,
        ),
      );
    }
  });

  it('say which Node they need when started by one older than 22.19', async () => {
    const older = join(ROOT, 'tests', 'fixtures', 'node-22.18.mjs');
    for (const { dir, command, file } of COMMANDS) {
      const r = await run(process.execPath, ['--import', older, join(ROOT, dir, file), '--help'], {
        env,
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 1, describeRun(command, r));
      assert.equal(r.stderr, `${command}: error: needs Node.js >= 22.19 (this is v22.18.0)\n`);
    }
  });
});

/** node_modules/<name> of a workspace: the link npm made to its folder. */
function resolveWorkspaceLink(dir) {
  return JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')).name;
}
