/**
 * One trace crosses gcd-service → validator: the gcd server span, a client span per validator attempt
 * (retries included), and the validator's server span, all with one trace id, each the parent of the
 * next; the caller's own `traceparent` is continued. Spans go to an in-memory exporter.
 * (Tracing registers a global provider, so this file has it to itself.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { setupTracing, type Tracing } from '@bulwark/service';
import { startFaultProxy, type FaultProxy } from '@bulwark/fault-server';
import { ask, start, type Running } from './helpers.js';

const exporter = new InMemorySpanExporter();
let tracing: Tracing;
let v: Running;
let proxy: FaultProxy;
let s: Running;

before(async () => {
  tracing = setupTracing({ env: {}, serviceName: 'gcd-test', exporter, processor: 'simple' });
  v = await start({ mode: 'validator' }, { tracing });
  proxy = await startFaultProxy({ target: new URL(v.url).host });
  s = await start(
    {
      validator: {
        url: proxy.url,
        timeoutMs: 200,
        retries: 2,
        deadlineMs: 2000,
        openMs: 5000,
        failureThreshold: 10,
      },
    },
    { tracing },
  );
});

after(async () => {
  await s.close();
  await proxy.close();
  await v.close();
  await tracing.shutdown();
});

function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

async function spansOf(traceId: string, count: number): Promise<ReadableSpan[]> {
  const end = performance.now() + 5000;
  for (;;) {
    await tracing.forceFlush();
    const spans = exporter.getFinishedSpans().filter((x) => x.spanContext().traceId === traceId);
    if (spans.length >= count || performance.now() > end) return spans;
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a request to gcd-service and its validator call share one trace id', async () => {
  exporter.reset();
  const res = await ask(`${s.url}/api/gcd?n=12&m=18`);
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-gcd-validation'], 'remote');

  await tracing.forceFlush();
  const root = exporter.getFinishedSpans().find((x) => x.name === 'GET /api/gcd');
  assert.ok(root, `spans: ${exporter.getFinishedSpans().map((x) => x.name)}`);
  const traceId = root.spanContext().traceId;
  const spans = await spansOf(traceId, 3);
  const attempt = spans.find((x) => x.name === 'POST /validate' && x.kind === 2 /* CLIENT */);
  const validator = spans.find((x) => x.name === 'POST /validate' && x.kind === 1 /* SERVER */);
  assert.ok(attempt, 'a client span for the validator attempt');
  assert.ok(validator, "the validator's server span is in the same trace");
  assert.equal(parentOf(attempt), root.spanContext().spanId);
  assert.equal(parentOf(validator), attempt.spanContext().spanId);
  assert.equal(attempt.attributes['bulwark.attempt'], 1);
  assert.equal(new Set(spans.map((x) => x.spanContext().traceId)).size, 1);
});

test("the caller's traceparent is continued", async () => {
  exporter.reset();
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const res = await ask(`${s.url}/api/gcd?n=4&m=6`, {
    headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
  });
  assert.equal(res.status, 200);
  const spans = await spansOf(traceId, 3);
  const names = spans.map((x) => `${x.name}/${x.kind}`).sort();
  assert.deepEqual(names, ['GET /api/gcd/1', 'POST /validate/1', 'POST /validate/2']);
  const root = spans.find((x) => x.name === 'GET /api/gcd')!;
  assert.equal(parentOf(root), '00f067aa0ba902b7');
});

test('each retry is its own span in the same trace; a failed attempt is marked as an error', async () => {
  exporter.reset();
  // The first attempt hangs past its 200 ms timeout, then the validator answers again.
  await proxy.setFault({ type: 'blackhole' });
  const pending = ask(`${s.url}/api/gcd?n=4&m=6`);
  await new Promise((r) => setTimeout(r, 100));
  await proxy.setFault({ type: 'none' });
  const res = await pending;
  assert.equal(res.status, 200);
  await tracing.forceFlush();
  const root = exporter.getFinishedSpans().find((x) => x.name === 'GET /api/gcd')!;
  const spans = await spansOf(root.spanContext().traceId, 4);
  const attempts = spans
    .filter((x) => x.name === 'POST /validate' && x.kind === 2)
    .sort((a, b) => Number(a.attributes['bulwark.attempt']) - Number(b.attributes['bulwark.attempt']));
  assert.ok(attempts.length >= 2, `attempts: ${attempts.length}`);
  assert.equal(attempts[0]!.status.code, 2 /* ERROR */);
  assert.equal(attempts.at(-1)!.status.code, 0 /* UNSET: it succeeded */);
  for (const a of attempts) assert.equal(parentOf(a), root.spanContext().spanId);
  assert.equal(res.headers['x-gcd-validation'], 'remote');
});
