/**
 * Dependency hygiene: the runtime dependencies of every publishable package stay exactly as declared
 * here (@bulwark/core: none — and its sources import nothing but `node:` built-ins and their own files),
 * and the lockfile pins every package by a sha512 integrity hash, from the registry, without install
 * scripts. Adding a runtime dependency is a decision: make it here, in review, not by accident.
 * (`scripts/audit.mjs` runs `npm audit` in CI where the advisory service answers.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = process.env.BULWARK_REPO_ROOT ?? fileURLToPath(new URL('../../../', import.meta.url));

/** Runtime dependencies allowed per publishable package (`dependencies`; optional/bundled: none). */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  '@bulwark/core': [],
  '@bulwark/fault-server': [],
  '@bulwark/cli-support': ['commander'],
  '@bulwark/http': ['@bulwark/core', '@types/http-cache-semantics', 'http-cache-semantics', 'undici'],
  '@bulwark/service': ['@bulwark/core', '@opentelemetry/api', 'fastify-plugin', 'pino', 'prom-client'],
  '@bulwark/http-get': [
    '@bulwark/cli-support',
    '@bulwark/core',
    '@bulwark/http',
    'cli-progress',
    'commander',
  ],
  '@bulwark/many-requests': [
    '@bulwark/cli-support',
    '@bulwark/core',
    '@bulwark/http',
    'cli-progress',
    'commander',
  ],
};

/**
 * Peer dependencies allowed per publishable package: the host framework the user brings (fastify), and
 * optional peers, which only the users of a feature install (the service loads them when configured).
 */
const PEERS: Readonly<Record<string, { required: readonly string[]; optional: readonly string[] }>> = {
  '@bulwark/service': {
    required: ['fastify'],
    optional: [
      '@opentelemetry/context-async-hooks',
      '@opentelemetry/core',
      '@opentelemetry/exporter-trace-otlp-http',
      '@opentelemetry/resources',
      '@opentelemetry/sdk-trace',
      'ioredis',
    ],
  },
};

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  bundleDependencies?: unknown;
  bundledDependencies?: unknown;
  scripts?: Record<string, string>;
}

function readJson<T>(...parts: string[]): T {
  return JSON.parse(readFileSync(join(ROOT, ...parts), 'utf8')) as T;
}

const rootManifest = readJson<{ workspaces: string[] }>('package.json');
const workspaces = rootManifest.workspaces.map((dir) => ({
  dir,
  manifest: readJson<Manifest>(dir, 'package.json'),
}));
const published = workspaces.filter((w) => w.manifest.private !== true);

test('every publishable workspace has an entry in the allow-list', () => {
  assert.deepEqual(published.map((w) => w.manifest.name).sort(), Object.keys(ALLOWED).sort());
});

test('the runtime dependencies of each publishable package are exactly the allowed ones', () => {
  for (const { manifest } of published) {
    const declared = Object.keys(manifest.dependencies ?? {}).sort();
    assert.deepEqual(
      declared,
      [...(ALLOWED[manifest.name] ?? [])].sort(),
      `${manifest.name}: runtime dependencies changed; update ALLOWED in packages/core/src/dependencies.test.ts on purpose`,
    );
    for (const field of ['optionalDependencies', 'bundleDependencies', 'bundledDependencies'] as const) {
      assert.equal(manifest[field], undefined, `${manifest.name}: ${field} is not allowed`);
    }
    const peers = PEERS[manifest.name] ?? { required: [], optional: [] };
    assert.deepEqual(
      Object.keys(manifest.peerDependencies ?? {}).sort(),
      [...peers.required, ...peers.optional].sort(),
      `${manifest.name}: peer dependencies changed; update PEERS in packages/core/src/dependencies.test.ts on purpose`,
    );
    const optional = Object.entries(manifest.peerDependenciesMeta ?? {})
      .filter(([, meta]) => meta.optional === true)
      .map(([name]) => name);
    assert.deepEqual(optional.sort(), [...peers.optional].sort(), `${manifest.name}: optional peers`);
    // the repository's own tests use every peer: each is a devDependency too
    for (const name of Object.keys(manifest.peerDependencies ?? {}))
      assert.ok(
        manifest.devDependencies?.[name] !== undefined,
        `${manifest.name}: ${name} also in devDependencies`,
      );
    assert.equal(manifest.scripts?.prepack, 'tsc -b', `${manifest.name}: npm pack must build first`);
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) {
      assert.equal(
        manifest.scripts?.[hook],
        undefined,
        `${manifest.name}: no ${hook} script for users to run`,
      );
    }
  }
});

test('runtime dependency ranges are registry semver ranges; internal ones match the workspace version', () => {
  const versions = new Map(workspaces.map((w) => [w.manifest.name, w.manifest.version]));
  for (const { manifest } of published) {
    for (const [name, range] of Object.entries(manifest.dependencies ?? {})) {
      assert.match(
        range,
        /^[~^]?\d+\.\d+\.\d+(-[\w.]+)?$/,
        `${manifest.name}: ${name}@${range} is not a plain semver range`,
      );
      const internal = versions.get(name);
      if (internal !== undefined)
        assert.equal(range, `^${internal}`, `${manifest.name}: ${name} should be ^${internal}`);
    }
  }
});

test('@bulwark/core sources import only node: built-ins and their own files', () => {
  const offenders: string[] = [];
  let imports = 0;
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) {
        if (name !== 'fixtures') walk(full);
        continue;
      }
      if (!name.endsWith('.ts') || name.endsWith('.test.ts')) continue;
      const source = readFileSync(full, 'utf8');
      for (const m of source.matchAll(
        /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g,
      )) {
        const spec = m[1] ?? m[2]!;
        imports++;
        if (!spec.startsWith('node:') && !spec.startsWith('./') && !spec.startsWith('../')) {
          offenders.push(`${full.slice(ROOT.length)}: ${spec}`);
        }
      }
    }
  };
  walk(join(ROOT, 'packages', 'core', 'src'));
  assert.deepEqual(offenders, []);
  assert.ok(imports > 20, `only ${imports} imports seen: the pattern is missing them`);
});

test('the lockfile pins every package by sha512 integrity, from the registry, with no install scripts', () => {
  const lock = readJson<{ lockfileVersion: number; packages: Record<string, Record<string, unknown>> }>(
    'package-lock.json',
  );
  assert.equal(lock.lockfileVersion, 3);
  const problems: string[] = [];
  let pinned = 0;
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (!path.includes('node_modules/') || entry.link === true) continue;
    pinned++;
    if (typeof entry.integrity !== 'string' || !entry.integrity.startsWith('sha512-'))
      problems.push(`${path}: no sha512 integrity`);
    const resolved = entry.resolved;
    if (resolved !== undefined && !String(resolved).startsWith('https://registry.npmjs.org/')) {
      problems.push(`${path}: resolved from ${String(resolved)}`);
    }
    if (entry.hasInstallScript === true)
      problems.push(`${path}: has an install script (npm ci --ignore-scripts must work)`);
  }
  assert.deepEqual(problems, []);
  assert.ok(pinned > 0);
  // every workspace's manifest and the lock agree on the runtime dependencies (what `npm ci` checks)
  for (const { dir, manifest } of workspaces) {
    const locked = lock.packages[dir]?.dependencies as Record<string, string> | undefined;
    assert.deepEqual(locked ?? {}, manifest.dependencies ?? {}, `${dir}: package-lock.json is out of date`);
  }
});
