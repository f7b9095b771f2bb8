/**
 * The dashboard (ops/grafana/gcd-service.json) and the rules (ops/prometheus/rules.yml) only name
 * metrics that gcd-service really exports: the real service is started in-process with a real validator
 * (which is then stopped, so the breaker opens and the fallback runs), driven over loopback with good and
 * bad requests, and its `/metrics` scraped. Every selector's metric name must be in the scrape (a
 * histogram `x` as `x_bucket`, `x_sum`, `x_count`), a recording rule of rules.yml, or one of the few
 * series Prometheus or node-exporter makes; every label a selector matches on must be on that metric's
 * samples (or be a target label, `job` / `instance`).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config.js';
import { createGcdServer, type GcdServer } from '../../src/server.js';
import {
  parseExposition,
  PROMETHEUS_SERIES,
  promqlSelectors,
  loadYaml,
  readRepoFile,
  TARGET_LABELS,
  TEXTFILE_SERIES,
  type ExposedMetric,
  type Selector,
} from './support.js';

interface Target {
  expr?: string;
  refId?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  datasource?: { type: string; uid: string };
}
interface Dashboard {
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: unknown; definition?: string }> };
  annotations: { list: Array<{ expr?: string }> };
}

const DASHBOARD = JSON.parse(readRepoFile('ops', 'grafana', 'gcd-service.json')) as Dashboard;
const RULES = loadYaml<{
  groups: Array<{ rules: Array<{ record?: string; alert?: string; expr: string }> }>;
}>('ops', 'prometheus', 'rules.yml');
const RECORDED = new Set(RULES.groups.flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : []))));

/** Every PromQL query of the dashboard: panel targets, template variables, annotations. */
function dashboardQueries(): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  for (const p of DASHBOARD.panels) {
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr ?? '' });
  }
  for (const v of DASHBOARD.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query;
    const m = /^label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\)$/.exec(q ?? '');
    assert.ok(m !== null, `variable ${v.name}: only label_values(selector, label) queries are checked`);
    out.push({ where: `variable ${v.name}`, expr: m[1]! });
  }
  for (const a of DASHBOARD.annotations.list)
    if (a.expr !== undefined) out.push({ where: 'annotation', expr: a.expr });
  return out;
}

/** The problems of one selector against the scrape, or [] when it is fine. */
function problems(s: Selector, exposed: Map<string, ExposedMetric>): string[] {
  if (RECORDED.has(s.name) || PROMETHEUS_SERIES.includes(s.name) || TEXTFILE_SERIES.includes(s.name))
    return [];
  const m = exposed.get(s.name);
  if (m === undefined) return [`${s.name} is not exported by gcd-service`];
  if (m.samples === 0) return []; // a family with no series yet: its labels cannot be checked here
  return s.labels
    .filter((l) => !TARGET_LABELS.includes(l) && !m.labels.has(l))
    .map((l) => `${s.name} has no label ${l} (it has: ${[...m.labels].join(', ')})`);
}

let gcd: GcdServer;
let validator: GcdServer;
let base: string;
let scrape = '';
let exposed: Map<string, ExposedMetric>;

/**
 * One request; its status. A 503 from the load shedder (`BULWARK_ERR_OVERLOADED`, which the event-loop
 * gate answers while a loaded machine delays this process) is retried after a pause, up to 50 times.
 */
async function get(path: string, init?: RequestInit): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${base}${path}`, init);
    const body = await res.text();
    if (res.status !== 503 || !body.includes('BULWARK_ERR_OVERLOADED') || attempt >= 50) return res.status;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

before(async () => {
  validator = await createGcdServer(loadConfig({ GCD_MODE: 'validator', PORT: '0', LOG_LEVEL: 'silent' }));
  const validatorUrl = await validator.listen();
  gcd = await createGcdServer(
    loadConfig({
      PORT: '0',
      LOG_LEVEL: 'silent',
      VALIDATOR_URL: validatorUrl,
      VALIDATOR_RETRIES: '1',
      VALIDATOR_FAILURE_THRESHOLD: '2',
      VALIDATOR_TIMEOUT_MS: '2000',
      VALIDATOR_DEADLINE_MS: '5000',
    }),
  );
  base = await gcd.listen();

  // Good requests, validated by the running validator; a computation big enough for the worker pool.
  assert.equal(await get('/'), 200);
  assert.equal(await get('/api/gcd?n=48&m=180'), 200);
  const big = '9'.repeat(300);
  assert.equal(await get(`/api/gcd?n=${big}&m=${big.slice(1)}`), 200);
  const form = new URLSearchParams({ n: '12', m: '18' }).toString();
  const post = {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
  };
  assert.equal(await get('/gcd', post), 200);
  // Requests that trip validation and routing errors.
  assert.equal(await get('/api/gcd?n=abc&m=2'), 400);
  assert.equal(await get('/api/gcd?n=0&m=0'), 400);
  assert.equal(await get('/api/gcd?n=1'), 400);
  assert.equal(await get('/nowhere'), 404);
  assert.equal(await get('/api/gcd?n=1&m=2', { method: 'DELETE' }), 405);
  assert.equal(await get('/readyz'), 200);
  assert.equal(await get('/livez'), 200);
  // The validator goes away: calls fail, the breaker opens, answers come from the local fallback.
  await validator.close();
  for (let i = 0; i < 4; i++) assert.equal(await get(`/api/gcd?n=${10 + i}&m=4`), 200);

  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(String(res.headers.get('content-type')), /^text\/plain|^application\/openmetrics-text/);
  scrape = await res.text();
  exposed = parseExposition(scrape);
});

after(async () => {
  await gcd?.close();
  await validator?.close();
});

describe('the scrape of a running gcd-service', () => {
  test('has the request histogram with route, method and status_code, for good and bad requests', () => {
    const count = exposed.get('http_server_request_duration_seconds_count');
    assert.ok(count !== undefined && count.samples > 0, 'http_server_request_duration_seconds_count');
    for (const l of ['route', 'method', 'status_code']) assert.ok(count.labels.has(l), l);
    assert.ok(exposed.get('http_server_request_duration_seconds_bucket')?.labels.has('le'));
    assert.match(
      scrape,
      /http_server_request_duration_seconds_count\{[^}]*route="\/api\/gcd"[^}]*status_code="400"/,
    );
    assert.match(
      scrape,
      /http_server_request_duration_seconds_count\{[^}]*route="\/api\/gcd"[^}]*status_code="200"/,
    );
    // the latency SLO reads the 0.25 s bucket
    assert.match(scrape, /http_server_request_duration_seconds_bucket\{[^}]*le="0\.25"/);
  });

  test('has the policy, overload and runtime metrics the alerts are about', () => {
    for (const name of [
      'bulwark_circuit_state',
      'bulwark_circuit_transitions_total',
      'bulwark_calls_total',
      'bulwark_retries_total',
      'bulwark_rejections_total',
      'bulwark_bulkhead_active',
      'bulwark_bulkhead_queued',
      'bulwark_shed_total',
      'bulwark_concurrency_limit',
      'bulwark_inflight_requests',
      'bulwark_ratelimit_rejections_total',
      'bulwark_ratelimit_store_degraded',
      'bulwark_ready',
      'nodejs_eventloop_lag_p99_seconds',
      'process_resident_memory_bytes',
    ]) {
      assert.ok(exposed.has(name), `${name} is missing from /metrics`);
    }
    // the validator's breaker opened after the validator went away
    assert.match(scrape, /bulwark_circuit_transitions_total\{[^}]*to="open"[^}]*\} [1-9]/);
  });
});

describe('ops/grafana/gcd-service.json', () => {
  test('every query names metrics and labels that the service exports', () => {
    const found: string[] = [];
    let selectors = 0;
    for (const { where, expr } of dashboardQueries()) {
      assert.ok(expr.trim() !== '', `${where}: empty query`);
      for (const s of promqlSelectors(expr)) {
        selectors++;
        for (const p of problems(s, exposed)) found.push(`${where}: ${p}`);
      }
    }
    assert.deepEqual(found, []);
    assert.ok(selectors >= 40, `only ${selectors} selectors found: the parser is missing some`);
  });

  test('is a well-formed dashboard: unique ids, 24-column grid, one refId per target, the datasource variable', () => {
    assert.equal(DASHBOARD.uid, 'bulwark-gcd-service');
    const ids = DASHBOARD.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    assert.ok(DASHBOARD.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'));
    for (const p of DASHBOARD.panels) {
      assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title}: inside the 24-column grid`);
      if (p.type === 'row') continue;
      assert.equal(p.datasource?.uid, '${datasource}', `${p.title}: uses the datasource variable`);
      const refs = (p.targets ?? []).map((t) => t.refId);
      assert.ok(refs.length > 0, `${p.title}: has queries`);
      assert.equal(new Set(refs).size, refs.length, `${p.title}: refIds are unique`);
    }
  });

  test('shows RED per route, breakers, limiter and shedder, retries, event loop and memory', () => {
    const all = dashboardQueries()
      .map((q) => q.expr)
      .join('\n');
    for (const needle of [
      'sum by (route) (rate(http_server_request_duration_seconds_count',
      'status_code=~"5.."',
      'histogram_quantile(0.99, sum by (route, le)',
      'bulwark_circuit_state',
      'bulwark_ratelimit_rejections_total',
      'bulwark_shed_total',
      'bulwark_retries_total',
      'nodejs_eventloop_lag_p99_seconds',
      'process_resident_memory_bytes',
    ]) {
      assert.ok(all.includes(needle), `the dashboard has no query with ${needle}`);
    }
  });
});

describe('ops/prometheus/rules.yml', () => {
  test('every rule names metrics and labels that the service exports', () => {
    const found: string[] = [];
    for (const rule of RULES.groups.flatMap((g) => g.rules)) {
      for (const s of promqlSelectors(rule.expr)) {
        for (const p of problems(s, exposed)) found.push(`${rule.alert ?? rule.record}: ${p}`);
      }
    }
    assert.deepEqual(found, []);
  });
});

describe('the selector parser', () => {
  test('finds names and matcher labels, and skips functions, aggregations, by-lists, ranges and variables', () => {
    const s = promqlSelectors(
      'sum by (job, route) (rate(a_total{job="x",route!~"/a|/b"}[$__rate_interval])) / ignoring(le) ' +
        'histogram_quantile(0.99, sum without (x) (rate(b_bucket{le="0.25"}[5m] offset 1h))) > bool 0.5 ' +
        'and on(instance) c unless count by (v) (d{v=~"$var"}) or absent(up{job="g"}) or {__name__="e",f="1"}',
    );
    assert.deepEqual(s, [
      { name: 'a_total', labels: ['job', 'route'] },
      { name: 'b_bucket', labels: ['le'] },
      { name: 'c', labels: [] },
      { name: 'd', labels: ['v'] },
      { name: 'up', labels: ['job'] },
      { name: 'e', labels: ['f'] },
    ]);
  });

  test('a misspelt metric or label is reported', () => {
    assert.deepEqual(problems({ name: 'http_server_request_duration_seconds_cnt', labels: [] }, exposed), [
      'http_server_request_duration_seconds_cnt is not exported by gcd-service',
    ]);
    const bad = problems({ name: 'http_server_request_duration_seconds_count', labels: ['code'] }, exposed);
    assert.equal(bad.length, 1);
    assert.match(bad[0]!, /has no label code/);
  });
});
