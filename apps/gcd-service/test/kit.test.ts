/**
 * The production features gcd-service gets from @bulwark/service, checked through the service itself:
 * metrics (Prometheus text whose counters match the requests sent), health and readiness (including
 * the degraded validator), request ids, the per-client rate limit in memory and shared through the
 * real Redis by two instances, and the service answering on when Redis goes away.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startFaultProxy, type FaultProxy } from '@bulwark/fault-server';
import { ask, q, REDIS_URL, requireRedis, start, type Running } from './helpers.js';

/** HEALTH_DETAILS_TOKEN of the servers here: the tests read the detailed /healthz. */
const TOKEN = 'kit-test-details-token-0123456789';
const DETAILS = { headers: { authorization: `Bearer ${TOKEN}` } };

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** A small parser for the Prometheus text format (enough to check names, labels and values). */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name!, type!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const m of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[m[1]!] = m[2]!;
    const value = match[3] === '+Inf' ? Infinity : match[3] === '-Inf' ? -Infinity : Number(match[3]);
    // prom-client writes NaN as "Nan"; Prometheus parses floats case-insensitively.
    assert.ok(!Number.isNaN(value) || /^nan$/i.test(match[3]!), `bad value in ${line}`);
    samples.push({ name: match[1]!, labels, value });
  }
  return { samples, types };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

describe('metrics', () => {
  let s: Running;
  before(async () => {
    // Shedding off: under CPU contention its event-loop gate could refuse a request and skew the counts.
    s = await start({ healthDetailsToken: TOKEN });
  });
  after(() => s.close());

  test('/metrics parses as Prometheus text and its counters match the requests sent', async () => {
    const sent = { ok: 6, bad: 4, pool: 2, form: 1, notFound: 1 };
    for (let i = 0; i < sent.ok; i++)
      assert.equal((await ask(`${s.url}/api/gcd?n=${i + 1}&m=6`)).status, 200);
    for (let i = 0; i < sent.bad; i++) assert.equal((await ask(`${s.url}/api/gcd?n=x${i}&m=6`)).status, 400);
    for (let i = 0; i < sent.pool; i++) {
      const res = await ask(`${s.url}/api/gcd?${q({ n: '9'.repeat(150 + i), m: '3' })}`);
      assert.equal(res.headers['x-gcd-compute'], 'pool');
    }
    assert.equal((await ask(`${s.url}/gcd`, { form: { n: '4', m: '6' } })).status, 200);
    assert.equal((await ask(`${s.url}/nowhere`)).status, 404);

    const res = await ask(`${s.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const { samples, types } = parseMetrics(res.text);

    // The kit's request histogram, by route template, method and status.
    const count = 'http_server_request_duration_seconds_count';
    assert.equal(types.get('http_server_request_duration_seconds'), 'histogram');
    assert.equal(
      value(samples, count, { route: '/api/gcd', method: 'GET', status_code: '200' }),
      sent.ok + sent.pool,
    );
    assert.equal(value(samples, count, { route: '/api/gcd', method: 'GET', status_code: '400' }), sent.bad);
    assert.equal(value(samples, count, { route: '/gcd', method: 'POST', status_code: '200' }), sent.form);
    assert.equal(value(samples, count, { status_code: '404' }), sent.notFound);
    assert.equal(value(samples, 'http_server_errors_total', { code: 'GCD_ERR_INVALID_NUMBER' }), sent.bad);

    // Histogram buckets are cumulative and +Inf equals the count.
    const cell = { route: '/api/gcd', method: 'GET', status_code: '200' };
    const buckets = samples.filter(
      (x) =>
        x.name === 'http_server_request_duration_seconds_bucket' &&
        x.labels.route === '/api/gcd' &&
        x.labels.status_code === '200',
    );
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value);
    assert.equal(buckets.at(-1)!.labels.le, '+Inf');
    assert.equal(buckets.at(-1)!.value, value(samples, count, cell));

    // The service's own metrics.
    assert.equal(
      value(samples, 'gcd_computations_total', { path: 'inline', outcome: 'ok' }),
      sent.ok + sent.form,
    );
    assert.equal(value(samples, 'gcd_computations_total', { path: 'pool', outcome: 'ok' }), sent.pool);
    assert.equal(value(samples, 'gcd_compute_duration_seconds_count', { path: 'pool' }), sent.pool);
    assert.equal(value(samples, 'gcd_validations_total', { mode: 'local' }), sent.ok + sent.pool + sent.form);
    assert.equal(value(samples, 'gcd_input_digits_count'), sent.ok + sent.pool + sent.form);
    assert.ok(value(samples, 'gcd_pool_threads') >= 1);
    // The pool's bulkhead, instrumented by the kit.
    assert.ok(samples.some((x) => x.name === 'bulwark_bulkhead_active' && x.labels.name === 'gcd-pool'));
    assert.ok(
      samples.some((x) => x.name === 'bulwark_concurrency_limit'),
      'shedding is on',
    );
    assert.ok(
      samples.some((x) => x.name === 'process_resident_memory_bytes'),
      'default process metrics',
    );
    for (const [name, type] of types) {
      if (type === 'counter') assert.match(name, /_total$/, `${name} is a counter`);
    }
  });

  test('counters never decrease between scrapes', async () => {
    const first = parseMetrics((await ask(`${s.url}/metrics`)).text);
    await ask(`${s.url}/api/gcd?n=4&m=6`);
    const second = parseMetrics((await ask(`${s.url}/metrics`)).text);
    for (const x of first.samples.filter((x) => first.types.get(x.name) === 'counter')) {
      const later = second.samples.find(
        (y) => y.name === x.name && JSON.stringify(y.labels) === JSON.stringify(x.labels),
      );
      assert.ok(later !== undefined && later.value >= x.value, `${x.name} ${JSON.stringify(x.labels)}`);
    }
  });
});

describe('health, readiness, request ids', () => {
  let s: Running;
  before(async () => {
    s = await start({ healthDetailsToken: TOKEN });
  });
  after(() => s.close());

  test('/livez, /readyz and /healthz', async () => {
    const live = await ask(`${s.url}/livez`);
    assert.equal(live.status, 200);
    assert.deepEqual(live.json(), { status: 'ok' });
    const ready = await ask(`${s.url}/readyz`, DETAILS);
    assert.equal(ready.status, 200);
    const readiness = ready.json<{
      status: string;
      checks: Record<string, { status: string; critical: boolean }>;
    }>();
    assert.equal(readiness.status, 'ok');
    assert.equal(readiness.checks['worker-pool']?.status, 'ok');
    assert.equal(readiness.checks['worker-pool']?.critical, true);
    const health = (await ask(`${s.url}/healthz`, DETAILS)).json<Record<string, unknown>>();
    assert.equal(health.status, 'ok');
    assert.equal(health.service, 'gcd-service');
    assert.deepEqual(health.shedding, { enabled: false });
    assert.deepEqual(health.rateLimit, { enabled: false });
    for (const path of ['/livez', '/readyz', '/healthz', '/metrics']) {
      assert.equal((await ask(`${s.url}${path}`)).headers['cache-control'], 'no-store', path);
    }
  });

  test('x-request-id is accepted and echoed, or generated', async () => {
    const given = await ask(`${s.url}/api/gcd?n=4&m=6`, { headers: { 'x-request-id': 'abc-123' } });
    assert.equal(given.headers['x-request-id'], 'abc-123');
    const made = await ask(`${s.url}/api/gcd?n=4&m=6`);
    assert.match(String(made.headers['x-request-id']), /^[\w-]{8,}$/);
    const error = await ask(`${s.url}/api/gcd?n=0&m=6`, { headers: { 'x-request-id': 'err-1' } });
    assert.equal(error.headers['x-request-id'], 'err-1');
  });
});

describe('load shedding (on by default)', () => {
  test('is wired: /healthz reports the algorithm, /metrics the concurrency limit; both are exempt', async () => {
    const s = await start({ shedding: { algorithm: 'aimd' }, healthDetailsToken: TOKEN });
    try {
      const health = (await ask(`${s.url}/healthz`, DETAILS)).json<{
        shedding: { enabled: boolean; algorithm: string };
      }>();
      assert.equal(health.shedding.enabled, true);
      assert.equal(health.shedding.algorithm, 'aimd');
      const { samples } = parseMetrics((await ask(`${s.url}/metrics`)).text);
      assert.ok(value(samples, 'bulwark_concurrency_limit') > 0);
    } finally {
      await s.close();
    }
  });
});

describe('validator away: degraded, still ready', () => {
  test('/healthz says degraded (breaker open, check failing), /readyz stays 200', async () => {
    const v = await start({ mode: 'validator' });
    const proxy = await startFaultProxy({ target: new URL(v.url).host });
    const s = await start({
      healthDetailsToken: TOKEN,
      validator: {
        url: proxy.url,
        attemptTimeoutMs: 100,
        retry: { maxAttempts: 1 },
        timeoutMs: 300,
        circuitBreaker: { openDurationMs: 60_000, strategy: { type: 'consecutive', threshold: 2 } },
      },
    });
    try {
      assert.equal((await ask(`${s.url}/healthz`, DETAILS)).json().status, 'ok');
      await proxy.setFault({ type: 'down' });
      for (let i = 0; i < 3; i++) {
        const res = await ask(`${s.url}/api/gcd?n=4&m=6`);
        assert.equal(res.headers['x-gcd-validation'], 'local-fallback');
      }
      const health = (await ask(`${s.url}/healthz`, DETAILS)).json<{
        status: string;
        circuits: Record<string, string>;
        checks: Record<string, { status: string; critical: boolean; error?: string }>;
      }>();
      assert.equal(health.status, 'degraded');
      assert.equal(health.circuits.validator, 'open');
      assert.equal(health.checks.validator?.status, 'fail');
      assert.equal(health.checks.validator?.critical, false);
      assert.match(health.checks.validator?.error ?? '', /validated locally/);
      assert.equal((await ask(`${s.url}/readyz`)).status, 200, 'a degraded service still takes traffic');
      const { samples } = parseMetrics((await ask(`${s.url}/metrics`)).text);
      assert.equal(value(samples, 'gcd_validations_total', { mode: 'local-fallback' }), 3);
      assert.equal(value(samples, 'gcd_validator_fallbacks_total'), 3);
      assert.equal(value(samples, 'bulwark_circuit_state', { name: 'validator', state: 'open' }), 1);
    } finally {
      await s.close();
      await proxy.close();
      await v.close();
    }
  });
});

describe('rate limit', () => {
  test('in memory: 429 with Retry-After past the burst; health endpoints are exempt', async () => {
    const s = await start({
      healthDetailsToken: TOKEN,
      rateLimit: { ratePerSecond: 1, burst: 3, onStoreError: 'local' },
    });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await ask(`${s.url}/api/gcd?n=4&m=6`)).status);
      assert.deepEqual(statuses.slice(0, 3), [200, 200, 200]);
      const limited = await ask(`${s.url}/api/gcd?n=4&m=6`);
      assert.equal(limited.status, 429);
      assert.ok(Number(limited.headers['retry-after']) >= 1);
      assert.equal(limited.json().code, 'BULWARK_ERR_RATE_LIMITED');
      assert.equal((await ask(`${s.url}/livez`)).status, 200);
      assert.equal((await ask(`${s.url}/metrics`)).status, 200);
    } finally {
      await s.close();
    }
  });

  describe('shared through Redis (REDIS_URL)', () => {
    let proxy: FaultProxy;
    let a: Running;
    let b: Running;
    // A key of our own, so parallel test runs sharing this Redis never meet.
    const key = `gcd-test-${randomUUID()}`;
    before(async () => {
      await requireRedis(REDIS_URL); // a clear failure within seconds when there is no Redis
      proxy = await startFaultProxy({ target: REDIS_URL });
      const rateLimit = {
        ratePerSecond: 1,
        burst: 4,
        onStoreError: 'local' as const,
        keyHeader: 'x-api-key',
      };
      const redisUrl = `redis://${proxy.address}`;
      a = await start({ rateLimit, redisUrl, healthDetailsToken: TOKEN });
      b = await start({ rateLimit, redisUrl, healthDetailsToken: TOKEN });
    });
    after(async () => {
      await a?.close();
      await b?.close();
      await proxy?.close();
    });

    /** Redis errors the two instances' stores have seen (`bulwark_ratelimit_store_errors_total`). */
    async function storeErrors(): Promise<number> {
      let total = 0;
      for (const s of [a, b]) {
        const text = (await ask(`${s.url}/metrics`)).text;
        for (const m of text.matchAll(/^bulwark_ratelimit_store_errors_total(?:\{[^}]*\})? (\d+)/gm))
          total += Number(m[1]);
      }
      return total;
    }

    test('two instances share one limit', async () => {
      // A Redis command slower than the store's timeout (a machine kept busy by other work) sends that
      // request to the local bucket, by design (onStoreError 'local'): such a round says nothing about
      // sharing, so it is run again with a fresh key — at most 10 rounds, and the last must be clean.
      for (let round = 1; ; round++) {
        const roundHeaders = { 'x-api-key': `${key}-round${round}` };
        const errorsBefore = await storeErrors();
        const statuses: number[] = [];
        for (const s of [a, b, a, b])
          statuses.push((await ask(`${s.url}/api/gcd?n=4&m=6`, { headers: roundHeaders })).status);
        // The burst of 4 is spent across both: the fifth request is refused by either instance.
        const fifth = await ask(`${b.url}/api/gcd?n=4&m=6`, { headers: roundHeaders });
        const clean = (await storeErrors()) === errorsBefore;
        if (!clean && round < 10) continue;
        if (!clean) {
          const h = (await ask(`${b.url}/healthz`, DETAILS)).json<{ rateLimit: { lastError?: string } }>();
          assert.fail(
            `no round in which Redis answered every command in time (${h.rateLimit.lastError}): ` +
              'the Redis at REDIS_URL stopped answering?',
          );
        }
        assert.deepEqual(statuses, [200, 200, 200, 200]);
        assert.equal(fifth.status, 429);
        break;
      }
      const other = await ask(`${a.url}/api/gcd?n=4&m=6`, { headers: { 'x-api-key': `${key}-other` } });
      assert.equal(other.status, 200, 'another client has its own bucket');
      const health = (await ask(`${a.url}/healthz`, DETAILS)).json<{
        rateLimit: { store: string; degraded: boolean };
      }>();
      assert.equal(health.rateLimit.store, 'redis');
    });

    test('Redis gone: the service keeps answering, and says it is degraded', async () => {
      await proxy.setFault({ type: 'down' });
      const fresh = { 'x-api-key': `${key}-outage` };
      for (let i = 0; i < 3; i++) {
        const res = await ask(`${a.url}/api/gcd?n=4&m=6`, { headers: fresh });
        assert.equal(res.status, 200, res.text);
      }
      const health = (await ask(`${a.url}/healthz`, DETAILS)).json<{
        status: string;
        rateLimit: { degraded: boolean; mode: string };
      }>();
      assert.equal(health.rateLimit.degraded, true);
      assert.equal(health.rateLimit.mode, 'local');
      assert.equal(health.status, 'degraded');
      assert.equal((await ask(`${a.url}/readyz`)).status, 200);
      await proxy.setFault({ type: 'none' });
    });
  });
});
