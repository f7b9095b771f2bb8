// scripts/audit.mjs against an advisory service on loopback that answers as the registry's bulk advisory
// endpoint does (POST /-/npm/v1/security/advisories/bulk): a high advisory fails the audit, a moderate
// one does not, and a service that errs or is not there lets CI go on, saying nothing was checked.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, cleanEnv, describeRun, run } from './support.mjs';

const SCRIPT = join(ROOT, 'scripts', 'audit.mjs');
let answer = { status: 200, advisories: {} };
const requests = [];
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    requests.push(`${req.method} ${req.url}`);
    if (req.method === 'POST' && req.url.startsWith('/-/npm/v1/security/advisories/bulk')) {
      res.writeHead(answer.status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(answer.status === 200 ? JSON.stringify(answer.advisories) : '{"error":"down"}');
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{}');
    }
  });
});
let registry;

before(async () => {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  registry = `http://127.0.0.1:${server.address().port}/`;
});
after(() => new Promise((resolve) => server.close(resolve)));

// each severity its own advisory id: npm caches what it computed from an advisory under its id
const IDS = { moderate: 4241, high: 4242, critical: 4243 };
const advisory = (severity) => ({
  // fastify-plugin is a runtime dependency of @bulwark/service
  'fastify-plugin': [
    {
      id: IDS[severity],
      url: `https://advisories.invalid/${IDS[severity]}`,
      title: `A ${severity} test advisory`,
      severity,
      vulnerable_versions: '<999.0.0',
      cwe: [],
      cvss: { score: 7.5, vectorString: null },
    },
  ],
});

// A cache of its own: npm keeps what it computed from an advisory (by advisory id) in its cache.
const cache = mkdtempSync(join(tmpdir(), 'bulwark-audit-cache-'));
after(() => rmSync(cache, { recursive: true, force: true }));
const audit = (registryUrl) =>
  run(process.execPath, [SCRIPT], {
    env: cleanEnv({ npm_config_registry: registryUrl, npm_config_cache: cache }),
    timeoutMs: 180_000,
  });

describe('the dependency audit (scripts/audit.mjs)', () => {
  it('fails on a high advisory in a runtime dependency, naming it', async () => {
    answer = { status: 200, advisories: advisory('high') };
    const r = await audit(registry);
    assert.equal(r.code, 1, describeRun('audit', r));
    assert.match(r.stdout, /^audit \(runtime dependencies\): 0 critical, \d+ high, 0 moderate/m);
    assert.match(
      r.stdout,
      /high {5}fastify-plugin: A high test advisory \(https:\/\/advisories\.invalid\/4242\)/,
    );
    assert.match(r.stdout, /audit: FAILED — \d+ high or critical/);
    assert.ok(requests.some((line) => line.startsWith('POST /-/npm/v1/security/advisories/bulk')));
  });

  it('fails on a critical one too', async () => {
    answer = { status: 200, advisories: advisory('critical') };
    const r = await audit(registry);
    assert.equal(r.code, 1, describeRun('audit', r));
    assert.match(r.stdout, /^audit \(runtime dependencies\): [1-9]\d* critical/m);
  });

  it('reports a moderate advisory and passes', async () => {
    answer = { status: 200, advisories: advisory('moderate') };
    const r = await audit(registry);
    assert.equal(r.code, 0, describeRun('audit', r));
    assert.match(r.stdout, /0 critical, 0 high, [1-9]\d* moderate/);
    assert.doesNotMatch(r.stdout, /FAILED|NOT CHECKED/);
  });

  it('passes with a clean report', async () => {
    answer = { status: 200, advisories: {} };
    const r = await audit(registry);
    assert.equal(r.code, 0, describeRun('audit', r));
    assert.match(
      r.stdout,
      /^audit \(runtime dependencies\): 0 critical, 0 high, 0 moderate, 0 low, 0 info\n$/,
    );
  });

  it('says it checked nothing, and lets CI go on, when the service answers with an error', async () => {
    answer = { status: 503 };
    const r = await audit(registry);
    assert.equal(r.code, 0, describeRun('audit', r));
    assert.match(
      r.stdout,
      /^audit: NOT CHECKED — the advisory service cannot be reached or will not answer: 503 /,
    );
  });

  it('says it checked nothing, and lets CI go on, when nothing listens', async () => {
    const closed = createServer();
    await new Promise((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${closed.address().port}/`;
    await new Promise((resolve) => closed.close(resolve));
    const r = await audit(url);
    assert.equal(r.code, 0, describeRun('audit', r));
    assert.match(r.stdout, /^audit: NOT CHECKED — .*ECONNREFUSED/);
  });
});
