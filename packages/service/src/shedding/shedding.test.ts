import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Pool, request } from 'undici';
import { createService } from '../service.js';
import { EventEmitter } from 'node:events';
import { listen, parsePrometheus, sampleValue } from '../test-support.js';

describe('load shedding (integration)', () => {
  it('floods a held route: the excess gets 503 + Retry-After while the admitted ones still run, health routes answer', async () => {
    const app = createService({
      logLevel: 'silent',
      shedding: { algorithm: 'fixed', initialLimit: 4, maxEventLoopDelayMs: 0, retryAfterSeconds: 2 },
      health: { details: true },
    });
    const started = new EventEmitter();
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    app.get('/held', async () => {
      started.emit('started');
      await gate;
      return { done: true };
    });
    const base = await listen(app);
    const pool = new Pool(base, { connections: 40 });
    try {
      let entered = 0;
      const fourRunning = new Promise<void>((resolve) =>
        started.on('started', () => {
          if (++entered === 4) resolve();
        }),
      );
      type Result = { status: number; retryAfter: unknown; body: { code?: string } };
      const early: Result[] = [];
      let twenty: () => void = () => {};
      const twentyAnswered = new Promise<void>((resolve) => (twenty = resolve));
      const flood = Array.from({ length: 24 }, () =>
        pool.request({ path: '/held', method: 'GET' }).then(async (res) => {
          const r: Result = {
            status: res.statusCode,
            retryAfter: res.headers['retry-after'],
            body: (await res.body.json()) as { code?: string },
          };
          early.push(r);
          if (early.length === 20) twenty();
          return r;
        }),
      );
      // 20 answers arrive while the 4 admitted requests are still held (they cannot answer before the
      // gate opens): the refusals were not queued behind them.
      await fourRunning;
      await twentyAnswered;
      assert.equal(entered, 4, 'only 4 handlers ran');
      for (const r of early) {
        assert.equal(r.status, 503);
        assert.equal(r.retryAfter, '2');
        assert.equal(r.body.code, 'BULWARK_ERR_OVERLOADED');
      }
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

      open();
      const results = await Promise.all(flood);
      assert.equal(results.filter((r) => r.status === 200).length, 4);
      assert.equal(results.filter((r) => r.status === 503).length, 20);
      // Every response was read: each closed on the server before it reads the next request.
      const after = parsePrometheus(await (await request(`${base}/metrics`)).body.text());
      assert.equal(sampleValue(after, 'bulwark_shed_total', { reason: 'concurrency' }), 20);
      assert.equal(sampleValue(after, 'bulwark_inflight_requests'), 0);
      assert.equal(
        sampleValue(after, 'http_server_request_duration_seconds_count', {
          route: '/held',
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
});
