// The baseline for bench/gcd-service.mjs: a bare Fastify 5 serving the same GET /api/gcd (same answer,
// same digit check, BigInt Euclid), with nothing else — no logger, metrics, security headers, rate limit,
// shedding, tracing or timeouts. Usage: PORT=… [BARE_EXTRA_HEADERS='{"x-a":"1"}'] node gcd-bare-server.mjs
import Fastify from 'fastify';

function gcd(a, b) {
  while (b !== 0n) {
    const r = a % b;
    a = b;
    b = r;
  }
  return a;
}

const DIGITS = /^[0-9]{1,1000}$/;
const app = Fastify({ logger: false });
// BARE_EXTRA_HEADERS (JSON object): the control "bare Fastify + the same response headers" — sets these
// headers on every response and does nothing else, to show what the header volume alone costs.
if (process.env.BARE_EXTRA_HEADERS) {
  const extra = JSON.parse(process.env.BARE_EXTRA_HEADERS);
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(extra);
    done();
  });
}
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
  return { n: a.toString(), m: b.toString(), gcd: gcd(a, b).toString() };
});
// BENCH_NO_LISTEN: imported by bench/gcd-cost.mjs, which drives `app.server` on an in-memory socket.
if (!process.env.BENCH_NO_LISTEN) {
  await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
  process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
}
export { app };
