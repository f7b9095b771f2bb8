import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { InvalidOptionError, retry } from '@bulwark/core';
import { createService } from '../service.js';
import { setupTracing, type Tracing } from './setup.js';
import { injectTraceHeaders, traceAttempt, tracingEnabled } from './spans.js';
import { listen, LogSink, SpanCollector } from '../test-support.js';

describe('setupTracing from OTEL_* variables', () => {
  it('is off by default (no exporter named), and the helpers are no-ops', async () => {
    const t = setupTracing({ env: {} });
    assert.equal(t.enabled, false);
    assert.equal(t.exporters, 'none');
    assert.equal(tracingEnabled(), false);
    assert.deepEqual(injectTraceHeaders({}), {});
    const op = (): number => 1;
    assert.equal(traceAttempt('x', op)({ attempt: 1 } as never), 1);
    assert.equal(setupTracing({ env: { OTEL_TRACES_EXPORTER: 'none' } }).enabled, false);
    assert.equal(
      setupTracing({ env: { OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' } }).enabled,
      false,
    );
    await t.shutdown();
  });

  it('rejects bad variables, naming them', () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ OTEL_TRACES_EXPORTER: 'zipkin' }, 'OTEL_TRACES_EXPORTER'],
      [{ OTEL_TRACES_EXPORTER: 'otlp', OTEL_TRACES_SAMPLER: 'sometimes' }, 'OTEL_TRACES_SAMPLER'],
      [
        { OTEL_TRACES_EXPORTER: 'otlp', OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' },
        'OTEL_TRACES_SAMPLER_ARG',
      ],
      [
        { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://x' },
        'OTEL_EXPORTER_OTLP_ENDPOINT',
      ],
    ];
    for (const [env, option] of cases) {
      assert.throws(
        () => setupTracing({ env }),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option,
        option,
      );
    }
  });

  it('exports spans over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces with the service name', async () => {
    const received: Array<{ url: string; body: string; type: string }> = [];
    const collector = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ url: req.url ?? '', body, type: String(req.headers['content-type']) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const port = (collector.address() as AddressInfo).port;
    const t = setupTracing({
      env: {
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        OTEL_SERVICE_NAME: 'otlp-test',
        OTEL_TRACES_SAMPLER: 'always_on',
      },
    });
    try {
      assert.equal(t.enabled, true);
      assert.equal(t.endpoint, `http://127.0.0.1:${port}/v1/traces`);
      assert.equal(t.sampler, 'always_on');
      await traceAttempt('exported-span', () => 'ok')({ attempt: 1 } as never);
      await t.forceFlush();
      assert.equal(received.length, 1);
      assert.equal(received[0]!.url, '/v1/traces');
      assert.match(received[0]!.type, /application\/json/);
      assert.ok(received[0]!.body.includes('exported-span'));
      assert.ok(received[0]!.body.includes('otlp-test'));
    } finally {
      await t.shutdown();
      collector.close();
    }
    assert.equal(tracingEnabled(), false, 'shutdown unregisters');
  });
});

describe('tracing across two real servers (in-memory exporter)', () => {
  const exporter = new SpanCollector();
  let tracing: Tracing;
  const logs = new LogSink();
  let front: ReturnType<typeof createService>;
  let back: ReturnType<typeof createService>;
  let frontUrl = '';
  let backCalls = 0;

  before(async () => {
    tracing = setupTracing({ exporter, processor: 'simple', serviceName: 'front' });
    back = createService({ tracing, logLevel: 'silent', shedding: false });
    back.get('/back', async (_req, reply) => {
      backCalls++;
      if (backCalls === 1) return reply.code(503).send({ busy: true }); // the first attempt fails
      return { value: 42 };
    });
    const backUrl = await listen(back);
    const policy = retry({ maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 5 });
    front = createService({ tracing, logStream: logs, shedding: false });
    front.get('/front', async (req) => {
      req.log.info('calling back');
      return policy.execute(
        traceAttempt('GET back', async (ctx) => {
          const res = await request(`${backUrl}/back`, {
            headers: injectTraceHeaders({}),
            signal: ctx.signal,
          });
          if (res.statusCode >= 500) {
            await res.body.dump();
            throw Object.assign(new Error(`back answered ${res.statusCode}`), { statusCode: res.statusCode });
          }
          return res.body.json();
        }),
      );
    });
    frontUrl = await listen(front);
  });

  after(async () => {
    await front.close();
    await back.close();
    await tracing.shutdown();
  });

  it('continues the caller trace, makes a child span per attempt, and propagates traceparent to the next server', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const res = await request(`${frontUrl}/front`, {
      headers: { traceparent: `00-${traceId}-${callerSpan}-01` },
    });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(await res.body.json(), { value: 42 });

    // Each span ends when its response closes: wait for the front server's.
    await exporter.waitFor((s) => s.name === 'GET /front');
    const spans = exporter.getFinishedSpans();
    const byName = (name: string) => spans.filter((s) => s.name === name);
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
    const [frontSpan] = byName('GET /front');
    assert.ok(frontSpan, `spans: ${spans.map((s) => s.name).join(', ')}`);
    assert.equal(frontSpan.kind, SpanKind.SERVER);
    assert.equal(frontSpan.spanContext().traceId, traceId);
    assert.equal(parentOf(frontSpan), callerSpan);
    assert.equal(frontSpan.attributes['http.route'], '/front');
    assert.equal(frontSpan.attributes['http.response.status_code'], 200);

    const attempts = byName('GET back').sort(
      (a, b) => Number(a.attributes['bulwark.attempt']) - Number(b.attributes['bulwark.attempt']),
    );
    assert.equal(attempts.length, 2);
    assert.deepEqual(
      attempts.map((a) => a.attributes['bulwark.attempt']),
      [1, 2],
    );
    assert.equal(attempts[0]!.status.code, SpanStatusCode.ERROR);
    assert.notEqual(attempts[1]!.status.code, SpanStatusCode.ERROR);
    for (const a of attempts) {
      assert.equal(
        parentOf(a),
        frontSpan.spanContext().spanId,
        'attempt spans are children of the server span',
      );
      assert.equal(a.spanContext().traceId, traceId);
    }

    const backSpans = byName('GET /back');
    assert.equal(backSpans.length, 2);
    const attemptIds = new Set(attempts.map((a) => a.spanContext().spanId));
    for (const b of backSpans) {
      assert.equal(b.kind, SpanKind.SERVER);
      assert.equal(b.spanContext().traceId, traceId, 'one trace id across both services');
      assert.ok(attemptIds.has(parentOf(b)!), 'the downstream server span is a child of an attempt span');
    }
    assert.deepEqual(
      backSpans.map((b) => b.status.code === SpanStatusCode.ERROR).sort(),
      [false, true],
      'the 503 answer is an ERROR server span',
    );

    const line = logs.find('calling back').at(-1);
    assert.ok(line);
    assert.equal(line.trace_id, traceId, 'log lines carry the trace id');
    assert.equal(line.span_id, frontSpan.spanContext().spanId);
  });

  it('starts a new trace when there is no (or a malformed) traceparent', async () => {
    exporter.reset();
    const res = await request(`${frontUrl}/livez`, { headers: { traceparent: 'garbage' } });
    await res.body.dump();
    const span = await exporter.waitFor((s) => s.name === 'GET /livez');
    assert.equal(span.parentSpanContext, undefined);
    assert.match(span.spanContext().traceId, /^[0-9a-f]{32}$/);
  });
});
