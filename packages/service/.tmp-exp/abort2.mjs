import Fastify from 'fastify';
import { request } from 'undici';
const app = Fastify();
app.get(
  '/slow',
  {
    onRequestAbort: (req, done) => {
      console.log('abort hook route');
      done();
    },
  },
  async (req) => {
    req.raw.on('close', () => console.log('req close, aborted=', req.raw.aborted));
    req.raw.socket.on('close', () => console.log('socket close'));
    await new Promise((r) => setTimeout(r, 300));
    return 'x';
  },
);
app.addHook('onRequestAbort', (req, done) => {
  console.log('abort hook global');
  done();
});
await app.listen({ port: 0, host: '127.0.0.1' });
const base = `http://127.0.0.1:${app.server.address().port}`;
const ac = new AbortController();
const p = request(`${base}/slow`, { signal: ac.signal }).catch((e) => e.name);
await new Promise((r) => setTimeout(r, 50));
ac.abort();
console.log(await p);
await new Promise((r) => setTimeout(r, 500));
await app.close();
