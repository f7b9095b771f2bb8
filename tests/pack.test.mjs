// The packages as a user meets them: `npm pack` every publishable workspace (its `prepack` builds it),
// look inside the tarballs, install them into a new project outside the repository (from the tarballs and
// npm's cache where it can), and there run ESM and CommonJS programs, every package README's example and
// the examples/ programs, the two commands, and `tsc --noEmit` under the nodenext, node16 and bundler
// module resolutions with skipLibCheck false.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { delimiter, dirname, join, relative, sep } from 'node:path';
import { ROOT, cleanEnv, describeRun, publishable, readJson, run } from './support.mjs';

const PUBLISHED = publishable();
const LIBRARIES = PUBLISHED.filter((w) => w.manifest.exports?.['.'] !== undefined);
const COMMANDS = PUBLISHED.filter((w) => w.manifest.bin !== undefined);
const ROOT_MANIFEST = readJson(join(ROOT, 'package.json'));
const installedVersion = (name) => readJson(join(ROOT, 'node_modules', name, 'package.json')).version;

/** Users may be a TypeScript major behind the one that builds the declarations (docs/node-support.md). */
const PREVIOUS_TYPESCRIPT = '5.9.3';

const tmp = mkdtempSync(join(tmpdir(), 'bulwark-pack-'));
const packs = join(tmp, 'packs');
const unpacked = join(tmp, 'unpacked');
const consumer = join(tmp, 'consumer');
/** name → { tarball, files: relative paths inside the package } */
const tarballs = new Map();

function walk(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walk(full, out);
    else out.push(full);
  }
  return out;
}

/** The first ```ts block of a markdown file. */
function firstTsBlock(file) {
  const m = /^```ts\n([\s\S]*?)^```$/m.exec(readFileSync(file, 'utf8'));
  return m?.[1];
}

before(async () => {
  mkdirSync(packs);
  const r = await run(
    'npm',
    ['pack', '--json', '--pack-destination', packs, ...PUBLISHED.flatMap((w) => ['-w', w.dir])],
    { timeoutMs: 300_000 },
  );
  assert.equal(r.code, 0, describeRun('npm pack', r));
  const report = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')));
  for (const entry of report) {
    const dir = join(unpacked, entry.name);
    mkdirSync(dir, { recursive: true });
    const x = await run('tar', ['xzf', join(packs, entry.filename), '-C', dir, '--strip-components=1']);
    assert.equal(x.code, 0, describeRun(`tar xzf ${entry.filename}`, x));
    tarballs.set(entry.name, {
      tarball: join(packs, entry.filename),
      dir,
      files: walk(dir).map((f) => relative(dir, f).split(sep).join('/')),
    });
  }
});

after(() => rmSync(tmp, { recursive: true, force: true }));

describe('npm pack', () => {
  it('packs every publishable workspace, each with the metadata a registry page needs', () => {
    assert.deepEqual([...tarballs.keys()].sort(), PUBLISHED.map((w) => w.manifest.name).sort());
    const repoUrl = ROOT_MANIFEST.repository.url;
    const web = repoUrl.replace(/^git\+/, '').replace(/\.git$/, '');
    for (const { dir, manifest: m } of PUBLISHED) {
      const where = `${dir}/package.json`;
      assert.match(m.name, /^@bulwark\/[a-z-]+$/, where);
      assert.ok(m.description?.length > 20, `${where}: description`);
      assert.ok(m.keywords?.length >= 3, `${where}: keywords`);
      assert.equal(m.license, 'MIT', where);
      assert.deepEqual(m.repository, { type: 'git', url: repoUrl, directory: dir }, `${where}: repository`);
      assert.equal(m.homepage, `${web}/tree/main/${dir}#readme`, `${where}: homepage`);
      assert.deepEqual(m.bugs, { url: `${web}/issues` }, `${where}: bugs`);
      assert.equal(m.engines?.node, ROOT_MANIFEST.engines.node, `${where}: engines`);
      assert.deepEqual(m.publishConfig, { access: 'public' }, `${where}: publishConfig`);
      assert.equal(m.scripts?.prepack, 'tsc -b', `${where}: npm pack must build first`);
      assert.equal(m.type, 'module', where);
      assert.ok(m.exports?.['./package.json'] === './package.json', `${where}: exports ./package.json`);
      if (m.exports['.'] !== undefined) {
        assert.equal(m.sideEffects, false, `${where}: sideEffects`);
        assert.deepEqual(
          Object.keys(m.exports['.']),
          ['types', 'default'],
          `${where}: exports "types" first`,
        );
        assert.equal(m.types, m.exports['.'].types, `${where}: types`);
        assert.equal(m.main, m.exports['.'].default, `${where}: main`);
      }
    }
  });

  it('ships the built code and its types, a README and the LICENSE, and no tests or fixtures', () => {
    const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    for (const { manifest: m } of PUBLISHED) {
      const { dir, files } = tarballs.get(m.name);
      for (const f of ['package.json', 'README.md', 'LICENSE'])
        assert.ok(files.includes(f), `${m.name}: ${f}`);
      assert.equal(
        readFileSync(join(dir, 'LICENSE'), 'utf8'),
        license,
        `${m.name}: LICENSE differs from the root's`,
      );
      for (const [entry, target] of Object.entries(m.exports)) {
        for (const f of typeof target === 'string' ? [target] : [target.default, target.types])
          assert.ok(files.includes(f.replace(/^\.\//, '')), `${m.name}: ${entry} → ${f}`);
      }
      for (const bin of Object.values(m.bin ?? {})) {
        assert.ok(files.includes(bin), `${m.name}: ${bin}`);
        assert.ok(statSync(join(dir, bin)).mode & 0o111, `${m.name}: ${bin} is not executable`);
        assert.ok(files.includes('dist/src/main.js'), `${m.name}: dist/src/main.js`);
      }
      const readme = readFileSync(join(dir, 'README.md'), 'utf8');
      assert.ok(readme.startsWith(`# ${m.name}\n`), `${m.name}: README title`);
      for (const section of ['## Install', '## First example', '## Documentation'])
        assert.ok(readme.includes(`\n${section}\n`), `${m.name}: README lacks "${section}"`);
      assert.ok(readme.includes(`npm install`) && readme.includes(m.name), `${m.name}: README install line`);
      assert.match(
        readme,
        /\]\(https:\/\/[^)]+\/docs\/[a-z-]+\.md\)/,
        `${m.name}: README links to its docs page`,
      );
      const unwanted = files.filter((f) =>
        /\.test\.|(^|\/)(fixtures|test)\/|test-support|\.tsbuildinfo$|\.tgz$|(^|\/)node_modules\//.test(f),
      );
      assert.deepEqual(unwanted, [], `${m.name}: tests or build state in the tarball`);
    }
  });

  it('ships source maps only beside the sources they point to, and nothing stale', () => {
    for (const { manifest: m } of PUBLISHED) {
      const { dir, files } = tarballs.get(m.name);
      const have = new Set(files);
      const problems = [];
      for (const f of files) {
        if (f.endsWith('.map')) {
          const map = JSON.parse(readFileSync(join(dir, f), 'utf8'));
          for (const source of map.sources) {
            const target = join(dirname(f), map.sourceRoot ?? '', source)
              .split(sep)
              .join('/');
            if (!have.has(target)) problems.push(`${f} → ${source} (not shipped)`);
          }
        }
        if (/\.(js|d\.ts)$/.test(f)) {
          const ref = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(join(dir, f), 'utf8'))?.[1];
          if (ref !== undefined && !have.has(join(dirname(f), ref).split(sep).join('/')))
            problems.push(`${f} names ${ref}, not shipped`);
          // a built file whose source is gone is left over from an older build: `npm run clean` first
          if (f.startsWith('dist/')) {
            const source = f
              .replace(/^dist\/(src\/)?/, 'src/')
              .replace(/\.d\.ts$/, '.ts')
              .replace(/\.js$/, '.ts');
            if (!have.has(source)) problems.push(`${f}: no ${source} (a stale build output?)`);
          }
        }
      }
      assert.deepEqual(problems, [], m.name);
    }
  });

  it('every relative import of the shipped code resolves inside the tarball', () => {
    for (const { manifest: m } of PUBLISHED) {
      const { dir, files } = tarballs.get(m.name);
      const have = new Set(files);
      const problems = [];
      for (const f of files.filter((x) => /\.(js|d\.ts)$/.test(x))) {
        const text = readFileSync(join(dir, f), 'utf8');
        for (const match of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.\.?\/[^'"]+)['"]/g)) {
          const target = join(dirname(f), match[1]).split(sep).join('/');
          const candidates = f.endsWith('.d.ts') ? [target, target.replace(/\.js$/, '.d.ts')] : [target];
          if (!candidates.some((c) => have.has(c))) problems.push(`${f} imports ${match[1]}`);
        }
      }
      assert.deepEqual(problems, [], m.name);
    }
  });
});

describe('a project outside the repository that installed the tarballs', () => {
  before(async () => {
    mkdirSync(consumer);
    writeFileSync(
      join(consumer, 'package.json'),
      JSON.stringify({ name: 'bulwark-consumer', private: true, type: 'module' }, null, 2),
    );
    const r = await run(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        ...[...tarballs.values()].map((t) => t.tarball),
      ],
      { cwd: consumer, timeoutMs: 300_000 },
    );
    assert.equal(r.code, 0, describeRun('npm install <tarballs>', r));
  });

  it('installed the packages from the tarballs, fastify as the peer, and no optional peer', () => {
    for (const { manifest: m } of PUBLISHED) {
      const installed = join(consumer, 'node_modules', m.name);
      assert.ok(existsSync(installed), m.name);
      assert.ok(!lstatSync(installed).isSymbolicLink(), `${m.name}: a copy, not a link into the repository`);
    }
    assert.ok(existsSync(join(consumer, 'node_modules', 'fastify', 'package.json')), 'fastify (peer)');
    const service = PUBLISHED.find((w) => w.manifest.name === '@bulwark/service').manifest;
    for (const name of Object.keys(service.peerDependenciesMeta ?? {}))
      assert.ok(
        !existsSync(join(consumer, 'node_modules', name)),
        `${name} is an optional peer: not installed`,
      );
  });

  it('runs an ESM program that uses every library', async () => {
    writeFileSync(join(consumer, 'esm.mjs'), ESM_PROGRAM);
    const r = await run(process.execPath, ['esm.mjs'], { cwd: consumer, timeoutMs: 60_000 });
    assert.equal(r.code, 0, describeRun('node esm.mjs', r));
    assert.deepEqual(JSON.parse(r.stdout), EXPECTED_PROGRAM_OUTPUT);
  });

  it('runs a CommonJS program that require()s every library', async () => {
    writeFileSync(join(consumer, 'cjs.cjs'), CJS_PROGRAM);
    const r = await run(process.execPath, ['cjs.cjs'], { cwd: consumer, timeoutMs: 60_000 });
    assert.equal(r.code, 0, describeRun('node cjs.cjs', r));
    assert.deepEqual(JSON.parse(r.stdout), EXPECTED_PROGRAM_OUTPUT);
  });

  it('imports @bulwark/service/testing (ESM and CommonJS) with no optional peer installed', async () => {
    writeFileSync(join(consumer, 'testing.mjs'), TESTING_PROGRAM);
    writeFileSync(
      join(consumer, 'testing.cjs'),
      TESTING_PROGRAM.replace(
        "import * as testing from '@bulwark/service/testing';",
        "const testing = require('@bulwark/service/testing');",
      ).replace(/^/, '(async () => {\n') + '})();\n',
    );
    const built = Object.keys(
      await import(pathToFileURL(join(ROOT, 'packages/service/dist/testing.js')).href),
    ).sort();
    for (const file of ['testing.mjs', 'testing.cjs']) {
      const r = await run(process.execPath, [file], { cwd: consumer, timeoutMs: 60_000 });
      assert.equal(r.code, 0, describeRun(`node ${file}`, r));
      const { exports, ...rest } = JSON.parse(r.stdout);
      assert.deepEqual(
        exports,
        built,
        `${file}: the tarball's entry exports what the workspace's build does`,
      );
      assert.deepEqual(rest, EXPECTED_TESTING_OUTPUT, file);
    }
  });

  it("runs each library README's first example and each examples/ program", async () => {
    mkdirSync(join(consumer, 'readme'));
    const programs = [];
    for (const { dir, manifest: m } of LIBRARIES) {
      const code = firstTsBlock(join(ROOT, dir, 'README.md'));
      assert.ok(code, `${dir}/README.md has no ts example`);
      const file = join('readme', `${m.name.split('/')[1]}.ts`);
      writeFileSync(join(consumer, file), code);
      programs.push(file);
    }
    mkdirSync(join(consumer, 'examples'));
    for (const name of readdirSync(join(ROOT, 'examples')).filter((n) => n.endsWith('.ts'))) {
      writeFileSync(join(consumer, 'examples', name), readFileSync(join(ROOT, 'examples', name)));
      programs.push(join('examples', name));
    }
    for (const file of programs) {
      const r = await run(process.execPath, [file], { cwd: consumer, timeoutMs: 60_000 });
      assert.equal(r.code, 0, describeRun(`node ${file}`, r));
      assert.ok(r.stdout.length > 0, `${file} printed nothing`);
    }
  });

  it('has the commands on node_modules/.bin', async () => {
    const env = cleanEnv({ PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}` });
    for (const { manifest: m } of COMMANDS) {
      for (const command of Object.keys(m.bin)) {
        const help = await run(join(consumer, 'node_modules', '.bin', command), ['--help'], {
          cwd: consumer,
          env,
          timeoutMs: 60_000,
        });
        assert.equal(help.code, 0, describeRun(`${command} --help`, help));
        assert.match(help.stdout, new RegExp(`^Usage: ${command} `));
        const version = await run(join(consumer, 'node_modules', '.bin', command), ['--version'], {
          cwd: consumer,
          env,
          timeoutMs: 60_000,
        });
        assert.equal(version.stdout, `${m.version}\n`, describeRun(`${command} --version`, version));
      }
    }
  });

  describe('types, with skipLibCheck false', () => {
    before(async () => {
      // @bulwark/service's declarations still name ioredis and OpenTelemetry SDK types (its Redis client
      // and span exporter options), so a type check needs those optional peers present. When those types
      // become structural, drop them here: the check then proves a Fastify-only project compiles.
      const service = PUBLISHED.find((w) => w.manifest.name === '@bulwark/service').manifest;
      const optionalPeers = Object.keys(service.peerDependenciesMeta ?? {}).map(
        (name) => `${name}@${installedVersion(name)}`,
      );
      // ioredis 6.1's own declarations import 'redis-errors', whose types it keeps in its devDependencies
      // (TS7016 with skipLibCheck false, in any project that imports ioredis): bring them, as its users
      // must (the repository has them as a devDependency for the same reason).
      optionalPeers.push(`@types/redis-errors@${installedVersion('@types/redis-errors')}`);
      const r = await run(
        'npm',
        [
          'install',
          '--prefer-offline',
          '--no-audit',
          '--no-fund',
          '--ignore-scripts',
          '--save-dev',
          `typescript@${installedVersion('typescript')}`,
          `typescript-previous@npm:typescript@${PREVIOUS_TYPESCRIPT}`,
          `@types/node@${installedVersion('@types/node')}`,
          ...optionalPeers,
        ],
        { cwd: consumer, timeoutMs: 300_000 },
      );
      assert.equal(r.code, 0, describeRun('npm install typescript @types/node', r));
      writeFileSync(join(consumer, 'typed.ts'), TYPED_PROGRAM);
      writeFileSync(join(consumer, 'wrong.ts'), WRONG_PROGRAM);
    });

    const tsc = (config, typescript = 'typescript') => {
      writeFileSync(join(consumer, 'tsconfig.json'), JSON.stringify(config, null, 2));
      return run(process.execPath, [join(consumer, 'node_modules', typescript, 'bin', 'tsc'), '-p', '.'], {
        cwd: consumer,
        timeoutMs: 180_000,
      });
    };
    const options = (module, moduleResolution) => ({
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      target: 'es2023',
      lib: ['es2023'],
      types: ['node'],
      module,
      moduleResolution,
    });
    const RESOLUTIONS = [
      ['nodenext', 'nodenext'],
      ['node16', 'node16'],
      ['esnext', 'bundler'],
    ];

    for (const [module, moduleResolution] of RESOLUTIONS) {
      it(`compile under moduleResolution ${moduleResolution}: a typed program, the READMEs' and examples/ programs`, async () => {
        const r = await tsc({
          compilerOptions: options(module, moduleResolution),
          include: ['typed.ts', 'readme', 'examples'],
        });
        assert.equal(r.code, 0, describeRun(`tsc (${moduleResolution})`, r));
      });
    }

    it(`compile with the previous TypeScript major too (${PREVIOUS_TYPESCRIPT}, nodenext)`, async () => {
      const r = await tsc(
        { compilerOptions: options('nodenext', 'nodenext'), include: ['typed.ts', 'readme', 'examples'] },
        'typescript-previous',
      );
      assert.equal(r.code, 0, describeRun(`tsc ${PREVIOUS_TYPESCRIPT}`, r));
    });

    it('are real types, not any: misuse fails to compile, each misuse with its own error', async () => {
      const r = await tsc({ compilerOptions: options('nodenext', 'nodenext'), files: ['wrong.ts'] });
      assert.notEqual(r.code, 0, describeRun('tsc wrong.ts', r));
      const lines = r.stdout.split('\n').filter((l) => l.startsWith('wrong.ts('));
      assert.deepEqual(
        lines.map((l) => Number(/^wrong\.ts\((\d+),/.exec(l)[1])),
        WRONG_LINES,
        describeRun('tsc wrong.ts', r),
      );
      assert.ok(
        lines.every((l) => /error TS2322|error TS2345|error TS2353/.test(l)),
        r.stdout,
      );
    });
  });
});

const EXPECTED_PROGRAM_OUTPUT = { policy: 'ok after 2 calls', body: 'ok', tier: 'primary', livez: 200 };

const ESM_PROGRAM = `import { pipeline, retry, timeout } from '@bulwark/core';
import { createHttpClient } from '@bulwark/http';
import { createService } from '@bulwark/service';
import { startFaultServer } from '@bulwark/fault-server';

let calls = 0;
const policy = pipeline(timeout({ timeoutMs: 10_000 }), retry({ maxAttempts: 3, initialDelayMs: 1 }));
const value = await policy.execute(async () => {
  if (++calls === 1) throw new Error('ECONNRESET');
  return 'ok';
});
const server = await startFaultServer();
const client = createHttpClient({ retry: { maxAttempts: 2 } });
const res = await client.get(server.origin + '/');
const app = createService({ logLevel: 'silent' });
const livez = await app.inject('/livez');
await Promise.all([client.close(), server.close(), app.close()]);
console.log(JSON.stringify({ policy: value + ' after ' + calls + ' calls', body: res.body.toString(), tier: res.tier, livez: livez.statusCode }));
`;

const CJS_PROGRAM = `'use strict';
const { pipeline, retry, timeout } = require('@bulwark/core');
const { createHttpClient } = require('@bulwark/http');
const { createService } = require('@bulwark/service');
const { startFaultServer } = require('@bulwark/fault-server');

async function main() {
  let calls = 0;
  const policy = pipeline(timeout({ timeoutMs: 10_000 }), retry({ maxAttempts: 3, initialDelayMs: 1 }));
  const value = await policy.execute(async () => {
    if (++calls === 1) throw new Error('ECONNRESET');
    return 'ok';
  });
  const server = await startFaultServer();
  const client = createHttpClient({ retry: { maxAttempts: 2 } });
  const res = await client.get(server.origin + '/');
  const app = createService({ logLevel: 'silent' });
  const livez = await app.inject('/livez');
  await Promise.all([client.close(), server.close(), app.close()]);
  console.log(JSON.stringify({ policy: value + ' after ' + calls + ' calls', body: res.body.toString(), tier: res.tier, livez: livez.statusCode }));
}
main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
`;

// The testing entry as a plain install meets it: the span collector and freePort work; the Redis helpers
// need ioredis (an optional peer, not installed here) and say so.
const TESTING_PROGRAM = `import * as testing from '@bulwark/service/testing';
const collector = new testing.SpanCollector();
collector.export([{ name: 'GET /' }], () => {});
const span = await collector.waitFor((s) => s.name === 'GET /');
const port = await testing.freePort();
const redis = await testing.redisForTests().then(
  () => 'connected',
  (error) => error.name + ': ' + error.packageName,
);
console.log(JSON.stringify({ exports: Object.keys(testing).sort(), span: span.name, port: port > 0, redis }));
`;

const EXPECTED_TESTING_OUTPUT = { span: 'GET /', port: true, redis: 'MissingDependencyError: ioredis' };

const TYPED_PROGRAM = `import Fastify from 'fastify';
import { circuitBreaker, pipeline, retry, timeout, type CircuitState, type Policy } from '@bulwark/core';
import { createHttpClient, type CacheStore, type HttpResponse } from '@bulwark/http';
import { bulwarkService, createService, serverOptions, setupTracing, type ServiceOptions } from '@bulwark/service';
import { SpanCollector, freePort } from '@bulwark/service/testing';
import { startFaultServer } from '@bulwark/fault-server';

const breaker = circuitBreaker({ openDurationMs: 1_000 });
const state: CircuitState = breaker.state;
const policy: Policy = pipeline(timeout({ timeoutMs: 100 }), retry({ maxAttempts: 2 }), breaker);
const options: ServiceOptions = { serviceName: 'typed' };
const app = Fastify(serverOptions(options));
await app.register(bulwarkService, options);
const kit = createService(options).bulwark;
const server = await startFaultServer();
const response: HttpResponse = await createHttpClient().get(server.origin);
const store: CacheStore | undefined = undefined;
const collector = new SpanCollector();
const tracing = setupTracing({ env: {}, exporter: collector, processor: 'simple' });
const spanName: string = (await collector.waitFor((s) => s.kind === 1)).name;
const port: number = await freePort();
export { state, policy, kit, response, store, tracing, spanName, port };
`;

const WRONG_PROGRAM = `import { circuitBreaker } from '@bulwark/core';
import { createHttpClient } from '@bulwark/http';
import { bulwarkService } from '@bulwark/service';

export const a: number = bulwarkService;
export const b = circuitBreaker({ openDurationMs: 'soon' });
export const c: string = createHttpClient();
`;
const WRONG_LINES = [5, 6, 7];
