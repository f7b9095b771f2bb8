// A small server on @bulwark/service for bench/service-rejections.mjs and bench/service-slow-bodies.mjs.
// Routes: GET /fast (an answer), GET /hold (answers only when the process exits: holds its slot),
// POST /echo (a JSON body, answered). SERVER_MODE picks the configuration:
//   shed       — shedding with a fixed limit of 1 (one held request takes it: every other one is shed);
//   ratelimit  — a rate limit with a bucket of 1 that never refills (every request after the first: 429);
//   default    — the kit's defaults (gradient2 shedding, no rate limit), for the slow-body bench.
// Usage: PORT=… SERVER_MODE=… node service-kit-server.mjs
import { createService } from '@bulwark/service';

const mode = process.env.SERVER_MODE ?? 'default';
const app = createService({
  serviceName: 'bench-kit',
  logLevel: 'warn',
  requestTimeoutMs: 120_000,
  headersTimeoutMs: 60_000,
  shedding: mode === 'shed' ? { algorithm: 'fixed', initialLimit: 1, maxEventLoopDelayMs: 0 } : {},
  rateLimit: mode === 'ratelimit' ? { ratePerSecond: 0.000001, burst: 1 } : false,
});
app.get('/fast', { config: { bulwark: { securityHeaders: 'api' } } }, async () => ({ ok: true }));
app.get('/hold', async () => new Promise(() => {}));
app.post('/echo', { config: { bulwark: { securityHeaders: 'api' } } }, async (request) => ({
  got: typeof request.body,
}));
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
process.on('SIGTERM', () => process.exit(0));
