import { createService } from '/work/main/packages/service/dist/index.js';
import { request } from 'undici';
const app = createService({ logLevel: 'silent', shedding: { algorithm: 'fixed', initialLimit: 5 } });
let responses = 0;
app.addHook('onResponse', (req, reply, done) => {
  responses++;
  done();
});
app.get('/slow', async () => {
  await new Promise((r) => setTimeout(r, 300));
  return 'x';
});
await app.listen({ port: 0, host: '127.0.0.1' });
const base = `http://127.0.0.1:${app.server.address().port}`;
const ac = new AbortController();
const p = request(`${base}/slow`, { signal: ac.signal }).catch((e) => e.name);
await new Promise((r) => setTimeout(r, 50));
console.log('inflight during', app.bulwark.shedder.limiter.inflight);
ac.abort();
console.log(await p);
await new Promise((r) => setTimeout(r, 50));
console.log('inflight after abort', app.bulwark.shedder.limiter.inflight, 'responses', responses);
await new Promise((r) => setTimeout(r, 400));
console.log('inflight after handler done', app.bulwark.shedder.limiter.inflight, 'responses', responses);
await app.close();
