// The stack a user would assemble by hand for gcd-service's features, for bench/gcd-throughput.mjs:
// Fastify 5 with @fastify/helmet (security headers), @fastify/rate-limit (per-client limit, set far above
// what one generator sends, like the full stack's), @fastify/under-pressure (event-loop shedding),
// fastify-metrics (Prometheus route histograms at /metrics), pino request logging (Fastify's logger at
// info: a line per request in and out, to stdout) and @fastify/otel (a span per request and per hook) —
// all on — serving the same GET /api/gcd (same answer, same digit check, BigInt Euclid). With
// HANDMADE_TRACING=otlp the spans go, batched, to OTEL_EXPORTER_OTLP_ENDPOINT through the same
// OpenTelemetry SDK the full stack uses; otherwise @fastify/otel runs with no provider (no-op spans).
// Usage: PORT=… [HANDMADE_TRACING=otlp OTEL_EXPORTER_OTLP_ENDPOINT=…] node gcd-handmade-server.mjs
import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import metrics from 'fastify-metrics';
import { FastifyOtelInstrumentation } from '@fastify/otel';

const otel = new FastifyOtelInstrumentation({ servername: 'gcd-handmade' });
let provider;
if (process.env.HANDMADE_TRACING === 'otlp') {
  const { context, propagation, trace } = await import('@opentelemetry/api');
  const { TracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { W3CTraceContextPropagator } = await import('@opentelemetry/core');
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
  const { resourceFromAttributes } = await import('@opentelemetry/resources');
  provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'gcd-handmade' }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url: `${process.env.OTEL_EXPORTER_OTLP_ENDPOINT}/v1/traces` }),
      }),
    ],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  otel.setTracerProvider(provider);
}

function gcd(a, b) {
  while (b !== 0n) {
    const r = a % b;
    a = b;
    b = r;
  }
  return a;
}

const DIGITS = /^[0-9]{1,1000}$/;
const app = Fastify({
  logger: { level: 'info' }, // pino, request logging on (Fastify's default)
  requestIdHeader: 'x-request-id',
  genReqId: () => randomUUID(),
});
await app.register(otel.plugin());
await app.register(helmet);
await app.register(rateLimit, { max: 1_000_000, timeWindow: 1000 });
await app.register(underPressure, { maxEventLoopDelay: 100, retryAfter: 1 });
await app.register(metrics, { endpoint: '/metrics' });
app.addHook('onRequest', (request, reply, done) => {
  reply.header('x-request-id', request.id);
  done();
});
app.get('/livez', async () => ({ status: 'ok' }));
app.get('/api/gcd', async (request, reply) => {
  const { n, m } = request.query;
  if (typeof n !== 'string' || typeof m !== 'string' || !DIGITS.test(n) || !DIGITS.test(m)) {
    reply.code(400);
    return { statusCode: 400, error: 'Bad Request', message: 'n and m must be positive integers' };
  }
  const a = BigInt(n);
  const b = BigInt(m);
  if (a === 0n || b === 0n) {
    reply.code(400);
    return { statusCode: 400, error: 'Bad Request', message: 'n and m must be positive' };
  }
  reply.header('cache-control', 'no-store');
  return { n: a.toString(), m: b.toString(), gcd: gcd(a, b).toString() };
});
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
process.on('SIGTERM', async () => {
  await app.close();
  await provider?.shutdown();
  process.exit(0);
});
