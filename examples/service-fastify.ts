// The service kit on a new Fastify app: health, readiness, Prometheus metrics (the breaker's state
// among them), request ids and security headers — registered as a plugin before the routes.
//
//   node examples/service-fastify.ts      (from the repository, after `npm run build`; with a
//   Node older than 22.19 on PATH: `npx node examples/service-fastify.ts`)
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { circuitBreaker } from '@bulwark/core';
import { bulwarkService, serverOptions, type ServiceOptions } from '@bulwark/service';

const options: ServiceOptions = { serviceName: 'greeter', version: '1.0.0', logLevel: 'warn' };
const app = Fastify(serverOptions(options)); // the timeouts, logger and request ids the kit expects
await app.register(bulwarkService, options); // before the routes: the kit instruments each one

const breaker = circuitBreaker({ name: 'greeting-store' });
app.bulwark.instrument(breaker); // bulwark_circuit_state{name="greeting-store"} and friends
app.get('/hello', async () => breaker.execute(async () => ({ hello: 'world' })));

await app.listen({ port: 0, host: '127.0.0.1' });
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
try {
  for (const path of ['/hello', '/livez', '/readyz']) {
    const res = await fetch(base + path);
    console.log(`GET ${path} -> ${res.status} ${await res.text()}`);
  }
  const metrics = await (await fetch(`${base}/metrics`)).text();
  console.log(metrics.split('\n').find((line) => line.startsWith('bulwark_circuit_state{')));
} finally {
  await app.close();
}
