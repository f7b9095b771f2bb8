import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Pool, request } from 'undici';
import { createService } from './service.js';
import { listen, parsePrometheus, sampleValue, sleep } from './test-support.js';

describe('load shedding (integration)', () => {
  it('floods a slow route: the excess gets 503 + Retry-After at once, admitted requests finish, health routes answer', async () => {
    const app = createService({
      logLevel: 'silent',
      shedding: { algorithm: 'fixed', initialLimit: 4, maxEventLoopDelayMs: 0, retryAfterSeconds: 2 },
    });
    let parsed = 0;
    app.post('/slow', { preValidation: (_req, _reply, done) => (parsed++, done()) }, async () => {
      await sleep(1000);
      return { done: true };
    });
    const base = await listen(app);
    const pool = new Pool(base, { connections: 40 });
    try {
      const body = JSON.stringify({ pad: 'x'.repeat(200_000) });
      const t0 = performance.now();
      const flood = Array.from({ length: 24 }, () =>
        pool
          .request({ path: '/slow', method: 'POST', body, headers: { 'content-type': 'application/json' } })
          .then(async (res) => ({
            status: res.statusCode,
            retryAfter: res.headers['retry-after'],
            body: (await res.body.json()) as { code?: string },
            ms: performance.now() - t0,
          })),
      );
      // Wait until every request has arrived: 4 hold a slot, 20 were shed.
      const shedder = app.bulwark.shedder!;
      const shedCount = async () =>
        (await app.bulwark.metrics!.shed.get()).values.reduce((a, v) => a + v.value, 0);
      for (let i = 0; i < 400 && (shedder.limiter.inflight < 4 || (await shedCount()) < 20); i++)
        await sleep(5);
      // While the flood is on: the health and metrics routes are exempt and answer.
      for (const path of ['/livez', '/readyz', '/healthz', '/metrics']) {
        const res = await request(`${base}${path}`);
        assert.equal(res.statusCode, 200, path);
        await res.body.dump();
      }
      const during = parsePrometheus(await (await request(`${base}/metrics`)).body.text());
      assert.equal(sampleValue(during, 'bulwark_inflight_requests'), 4);
      assert.equal(sampleValue(during, 'bulwark_concurrency_limit'), 4);
      const health = (await (await request(`${base}/healthz`)).body.json()) as {
        shedding: { inflight: number; limit: number };
      };
      assert.equal(health.shedding.inflight, 4);
      assert.equal(health.shedding.limit, 4);

      const results = await Promise.all(flood);
      const ok = results.filter((r) => r.status === 200);
      const shed = results.filter((r) => r.status === 503);
      assert.equal(ok.length, 4);
      assert.equal(shed.length, 20);
      for (const r of shed) {
        assert.equal(r.retryAfter, '2');
        assert.equal(r.body.code, 'BULWARK_ERR_OVERLOADED');
        assert.ok(r.ms < 1000, `a shed request is answered at once (took ${Math.round(r.ms)} ms)`);
      }
      for (const r of ok) assert.ok(r.ms >= 1000);
      assert.equal(parsed, 4, 'a shed request body is never parsed');

      const after = parsePrometheus(await (await request(`${base}/metrics`)).body.text());
      assert.equal(sampleValue(after, 'bulwark_shed_total', { reason: 'concurrency' }), 20);
      assert.equal(sampleValue(after, 'bulwark_inflight_requests'), 0);
      assert.equal(
        sampleValue(after, 'http_server_request_duration_seconds_count', {
          route: '/slow',
          status_code: '503',
        }),
        20,
      );
    } finally {
      await pool.close();
      await app.close();
    }
  });

  it('sheds for event-loop pressure with reason event_loop, never the exempt routes', async () => {
    const app = createService({
      logLevel: 'silent',
      shedding: { eventLoopSampleIntervalMs: 60_000, maxEventLoopDelayMs: 50 },
    });
    app.get('/work', async () => 'ok');
    const base = await listen(app);
    try {
      const gate = app.bulwark.shedder!.gate;
      for (let i = 0; i < 10; i++) gate.update({ delayMs: 500, utilization: 1 });
      assert.equal(gate.shedRatio, 0.95);
      let shed = 0;
      for (let i = 0; i < 40; i++) {
        const res = await request(`${base}/work`);
        if (res.statusCode === 503) {
          shed++;
          assert.equal(res.headers['retry-after'], '1');
        } else assert.equal(res.statusCode, 200);
        await res.body.dump();
      }
      assert.ok(shed >= 20, `shed ${shed} of 40 at ratio 0.95`);
      for (let i = 0; i < 10; i++) {
        const res = await request(`${base}/livez`);
        assert.equal(res.statusCode, 200);
        await res.body.dump();
      }
      const m = parsePrometheus(await (await request(`${base}/metrics`)).body.text());
      assert.equal(sampleValue(m, 'bulwark_shed_total', { reason: 'event_loop' }), shed);
      assert.equal(sampleValue(m, 'bulwark_shed_ratio'), 0.95);
      const health = (await (await request(`${base}/healthz`)).body.json()) as { status: string };
      assert.equal(health.status, 'degraded');
      for (let i = 0; i < 30; i++) gate.update({ delayMs: 0, utilization: 0.1 });
      const res = await request(`${base}/work`);
      assert.equal(res.statusCode, 200, 'calm again: nothing shed');
      await res.body.dump();
    } finally {
      await app.close();
    }
  });

  it('frees the slot of a request whose client disconnects', async () => {
    const app = createService({ logLevel: 'silent', shedding: { algorithm: 'fixed', initialLimit: 2 } });
    app.get('/slow', async () => {
      await sleep(300);
      return 'late';
    });
    const base = await listen(app);
    try {
      const controller = new AbortController();
      const pending = request(`${base}/slow`, { signal: controller.signal }).catch((e: Error) => e.name);
      for (let i = 0; i < 100 && app.bulwark.shedder!.limiter.inflight === 0; i++) await sleep(5);
      assert.equal(app.bulwark.shedder!.limiter.inflight, 1);
      controller.abort();
      assert.equal(await pending, 'AbortError');
      for (let i = 0; i < 100 && (app.bulwark.shedder!.limiter.inflight as number) !== 0; i++) await sleep(5);
      assert.equal(app.bulwark.shedder!.limiter.inflight, 0);
      const m = parsePrometheus(await (await request(`${base}/metrics`)).body.text());
      assert.equal(
        sampleValue(m, 'http_server_aborted_requests_total', { route: '/slow', method: 'GET' }),
        1,
      );
    } finally {
      await app.close();
    }
  });
});
