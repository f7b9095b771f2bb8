/**
 * One trace crosses gcd-service → validator: the gcd server span (with the sizes of the inputs, never
 * their values), the validation step, a client span per validator attempt (retries included), the
 * validator's server span, the computation and — for a large input — the wait for a worker; all with
 * one trace id, each the parent of the next; the caller's own `traceparent` is continued. Spans go to
 * an in-memory exporter the tests wait on. (Tracing registers a global provider, so this file has it to
 * itself.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { setupTracing, type Tracing } from '@bulwark/service';
import { ask, fibonacciPair, q, SpanCollector, start, type Running } from './helpers.js';

const exporter = new SpanCollector();
let tracing: Tracing;
let v: Running;
let s: Running;

const VALIDATOR = {
  attemptTimeoutMs: 2000,
  retry: { maxAttempts: 3 },
  timeoutMs: 5000,
  circuitBreaker: { openDurationMs: 5000, strategy: { type: 'consecutive' as const, threshold: 10 } },
};

before(async () => {
  tracing = setupTracing({ env: {}, serviceName: 'gcd-test', exporter, processor: 'simple' });
  v = await start({ mode: 'validator' }, { tracing });
  s = await start({ validator: { ...VALIDATOR, url: v.url } }, { tracing });
});

after(async () => {
  await s.close();
  await v.close();
  await tracing.shutdown();
});

function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

/** The spans of one trace, once its `count` spans have all ended. */
async function trace(traceId: string, count: number): Promise<ReadableSpan[]> {
  const inTrace = (x: ReadableSpan) => x.spanContext().traceId === traceId;
  for (;;) {
    const spans = exporter.getFinishedSpans().filter(inTrace);
    if (spans.length >= count) return spans;
    const seen = new Set(spans);
    await exporter.waitFor((x) => inTrace(x) && !seen.has(x));
  }
}

const CLIENT = 2;
const SERVER = 1;

test('a request to gcd-service and its validator call share one trace id; inputs are recorded as digit counts', async () => {
  exporter.reset();
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const res = await ask(`${s.url}/api/gcd?n=0012&m=180`, {
    headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-gcd-validation'], 'remote');

  const spans = await trace(traceId, 5);
  const names = spans.map((x) => `${x.name}/${x.kind}`).sort();
  assert.deepEqual(names, [
    'GET /api/gcd/1', // the gcd service's server span
    'POST /validate/1', // the validator's server span
    'POST /validate/2', // the validator attempt (client)
    'gcd.compute/0', // the computation (internal)
    'gcd.validate/0', // the validation step (internal)
  ]);
  const root = spans.find((x) => x.name === 'GET /api/gcd')!;
  const validate = spans.find((x) => x.name === 'gcd.validate')!;
  const attempt = spans.find((x) => x.name === 'POST /validate' && x.kind === CLIENT)!;
  const validator = spans.find((x) => x.name === 'POST /validate' && x.kind === SERVER)!;
  const compute = spans.find((x) => x.name === 'gcd.compute')!;
  assert.equal(parentOf(root), '00f067aa0ba902b7', "the caller's trace is continued");
  assert.equal(parentOf(validate), root.spanContext().spanId);
  assert.equal(parentOf(attempt), validate.spanContext().spanId);
  assert.equal(parentOf(validator), attempt.spanContext().spanId, 'the trace crosses to the validator');
  assert.equal(parentOf(compute), root.spanContext().spanId);
  assert.equal(attempt.attributes['bulwark.attempt'], 1);
  assert.equal(validate.attributes['gcd.validation'], 'remote');
  // Sizes of the inputs, as given without leading zeros; never their values.
  assert.equal(root.attributes['gcd.n.digits'], 2);
  assert.equal(root.attributes['gcd.m.digits'], 3);
  assert.equal(root.attributes['gcd.validation'], 'remote');
  assert.equal(compute.attributes['gcd.compute.path'], 'inline');
  for (const span of spans) {
    for (const value of Object.values(span.attributes)) assert.notEqual(String(value), '180');
  }
});

test('a large input: the wait for a worker and the computation in it are spans of their own', async () => {
  exporter.reset();
  const [a, b] = fibonacciPair(500);
  const res = await ask(`${s.url}/api/gcd?${q({ n: a.toString(), m: b.toString() })}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-gcd-compute'], 'pool');
  const root = await exporter.waitFor((x) => x.name === 'GET /api/gcd');
  const spans = await trace(root.spanContext().traceId, 6);
  const wait = spans.find((x) => x.name === 'gcd.pool.wait');
  const compute = spans.find((x) => x.name === 'gcd.compute');
  assert.ok(wait && compute, spans.map((x) => x.name).join(', '));
  assert.equal(parentOf(wait), root.spanContext().spanId);
  assert.equal(parentOf(compute), root.spanContext().spanId);
  assert.equal(compute.attributes['gcd.compute.path'], 'pool');
  assert.equal(compute.attributes['gcd.digits'], 500);
  assert.ok(
    wait.endTime[0] * 1e9 + wait.endTime[1] <= compute.startTime[0] * 1e9 + compute.startTime[1] + 1e6,
  );
  assert.equal(root.attributes['gcd.n.digits'], 500);
});

test('each retry is its own span in the same trace; a failed attempt is marked as an error', async () => {
  // A validator that answers 503 once, then accepts: the second attempt succeeds.
  let calls = 0;
  const flaky: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (++calls === 1) {
        res.writeHead(503, { 'retry-after': '0' }).end();
        return;
      }
      const { n, m } = JSON.parse(body) as { n: string; m: string };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ valid: true, n, m }));
    });
  });
  await new Promise<void>((resolve) => flaky.listen(0, '127.0.0.1', resolve));
  const withFlaky = await start(
    { validator: { ...VALIDATOR, url: `http://127.0.0.1:${(flaky.address() as AddressInfo).port}` } },
    { tracing },
  );
  try {
    exporter.reset();
    const res = await ask(`${withFlaky.url}/api/gcd?n=4&m=6`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-gcd-validation'], 'remote');
    const root = await exporter.waitFor((x) => x.name === 'GET /api/gcd');
    const spans = await trace(root.spanContext().traceId, 5);
    const validate = spans.find((x) => x.name === 'gcd.validate')!;
    const attempts = spans
      .filter((x) => x.name === 'POST /validate' && x.kind === CLIENT)
      .sort((x, y) => Number(x.attributes['bulwark.attempt']) - Number(y.attributes['bulwark.attempt']));
    assert.equal(attempts.length, 2);
    assert.equal(attempts[0]!.status.code, 2 /* ERROR */);
    assert.equal(attempts[1]!.status.code, 0 /* UNSET: it succeeded */);
    assert.equal(attempts[1]!.attributes['http.request.resend_count'], 1);
    for (const x of attempts) assert.equal(parentOf(x), validate.spanContext().spanId);
  } finally {
    await withFlaky.close();
    await new Promise((resolve) => flaky.close(resolve));
  }
});
