// A client that hangs up is counted as an aborted request, never as a server error (red-team RT-2 F3):
// a POST reset before or in the middle of its body, over a real socket.
import { after, before, it } from 'node:test';
import { EventEmitter, once } from 'node:events';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { createService } from './service.js';
import { listen, parsePrometheus, RawConnection, sampleValue } from './test-support.js';

let app: FastifyInstance;
let port = 0;
let base = '';
/** `seen` when a request reached the route's hooks; `closed` when its response closed (after the kit's). */
const events = new EventEmitter();

before(async () => {
  app = createService({ logLevel: 'silent', rateLimit: false, shedding: false });
  app.addHook('onRequest', (request, reply, done) => {
    reply.raw.once('close', () => events.emit('closed'));
    events.emit('seen');
    done();
  });
  app.post('/upload', async (request) => ({ got: JSON.stringify(request.body).length }));
  base = await listen(app);
  port = Number(new URL(base).port);
});

after(() => app.close());

async function metrics(): Promise<ReturnType<typeof parsePrometheus>> {
  const res = await fetch(`${base}/metrics`);
  return parsePrometheus(await res.text());
}

it('POSTs reset before and in the middle of their bodies: aborted, not errors', async () => {
  const before = sampleValue(await metrics(), 'http_server_aborted_requests_total', { route: '/upload' });
  const head = (length: number) =>
    `POST /upload HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`;
  for (const body of ['', '{"a": "' + 'x'.repeat(5_000)]) {
    for (let i = 0; i < 3; i++) {
      const c = new RawConnection(port);
      await c.ready();
      const seen = once(events, 'seen');
      const closed = once(events, 'closed');
      c.write(head(50_000) + body);
      await seen;
      c.reset();
      await closed;
    }
  }
  const families = await metrics();
  assert.equal(sampleValue(families, 'http_server_aborted_requests_total', { route: '/upload' }) - before, 6);
  const errors = families.get('http_server_errors_total')?.samples ?? [];
  assert.deepEqual(
    errors.map((s) => s.labels),
    [],
  );
});
