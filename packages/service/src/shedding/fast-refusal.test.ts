/**
 * Refusals before Fastify (fast-refusal.ts), over real sockets: the 503 written in Node's `request`
 * listener is the hook's 503 header for header and byte for byte, it is counted, Fastify never sees the
 * refused request, no concurrency slot is taken for it, and every slot that is taken is still returned
 * when clients hang up — also when refused requests are pipelined behind an admitted one.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { bulwarkService, createService } from '../service.js';
import { serverOptions } from '../server-options.js';
import type { ServiceOptions } from '../options.js';
import { listen, parsePrometheus, RawConnection, sampleValue } from '../test-support.js';

const OPTIONS: ServiceOptions = {
  logLevel: 'silent',
  shedding: { algorithm: 'fixed', initialLimit: 1, maxEventLoopDelayMs: 0, retryAfterSeconds: 2 },
};

interface Server {
  readonly app: FastifyInstance;
  readonly base: string;
  readonly port: number;
  /** Paths of the requests Fastify's own onRequest hooks saw. */
  readonly reached: string[];
  /** Every request the Node server saw (after the kit's listener answered or passed it on). */
  readonly requests: EventEmitter;
  /** Resolves once `/held` runs (its slot is taken); `open()` lets it answer. */
  held(): Promise<void>;
  open(): void;
}

/** A kit with one held route and a few others; `fast: false` builds it on Fastify's own server (no pre-routing step). */
async function server(fast: boolean, options: ServiceOptions = OPTIONS): Promise<Server> {
  let app: FastifyInstance;
  if (fast) app = createService(options);
  else {
    const { serverFactory: _own, ...rest } = serverOptions(options);
    app = Fastify(rest) as unknown as FastifyInstance;
    await app.register(bulwarkService, options);
  }
  const reached: string[] = [];
  app.addHook('onRequest', (req, _reply, done) => {
    reached.push(req.url);
    done();
  });
  const started = new EventEmitter();
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => (open = resolve));
  app.get('/held', async () => {
    started.emit('started');
    await gate;
    return { done: true };
  });
  app.get('/api', { config: { bulwark: { securityHeaders: 'api' } } }, async () => ({ ok: true }));
  app.get('/page', async () => 'page');
  app.post('/api', { config: { bulwark: { securityHeaders: 'api' } } }, async () => ({ ok: true }));
  app.get('/free', { config: { bulwark: { shedding: false } } }, async () => ({ free: true }));
  const base = await listen(app);
  const requests = new EventEmitter();
  requests.setMaxListeners(0);
  app.server.on('request', (req: IncomingMessage) => requests.emit('request', req.url));
  return {
    app,
    base,
    port: Number(new URL(base).port),
    reached,
    requests,
    held: () => once(started, 'started').then(() => undefined),
    open: () => open(),
  };
}

/** A response's status, headers (in order, without the date) and body. */
async function raw(port: number, head: string): Promise<{ status: number; headers: string[]; body: string }> {
  const c = new RawConnection(port);
  await c.ready();
  c.write(`${head}\r\n\r\n`);
  await c.until((r) => {
    const end = r.indexOf('\r\n\r\n');
    if (end === -1) return false;
    const length = /\r\ncontent-length: (\d+)/i.exec(r.slice(0, end));
    return head.startsWith('HEAD') || r.length >= end + 4 + Number(length?.[1] ?? 0);
  });
  c.end();
  const [headPart, body = ''] = c.received.split('\r\n\r\n');
  const lines = headPart!.split('\r\n');
  return {
    status: Number(lines[0]!.slice(9, 12)),
    headers: lines.slice(1).filter((l) => !l.toLowerCase().startsWith('date:')),
    body,
  };
}

async function metrics(base: string): Promise<ReturnType<typeof parsePrometheus>> {
  return parsePrometheus(await (await request(`${base}/metrics`)).body.text());
}

describe('refusals before Fastify', () => {
  it('answer like the hook — status, headers in order, body — and Fastify never sees them', async () => {
    const fast = await server(true);
    const slow = await server(false);
    try {
      const answers: Record<string, Awaited<ReturnType<typeof raw>>[]> = { fast: [], slow: [] };
      for (const [name, s] of [
        ['fast', fast],
        ['slow', slow],
      ] as const) {
        const holder = request(`${s.base}/held`);
        await s.held();
        for (const head of [
          'GET /api?x=1 HTTP/1.1\r\nHost: t\r\nx-request-id: given-id-1',
          'GET /page HTTP/1.1\r\nHost: t\r\nx-request-id: given-id-2',
          'HEAD /api HTTP/1.1\r\nHost: t\r\nx-request-id: given-id-3',
        ]) {
          answers[name]!.push(await raw(s.port, head));
        }
        // a fresh request id when none (or an invalid one) is given
        const generated = await raw(s.port, 'GET /api HTTP/1.1\r\nHost: t\r\nx-request-id: bad id!');
        const id = generated.headers.find((h) => h.startsWith('x-request-id: '));
        assert.match(id ?? '', /^x-request-id: [0-9a-f-]{36}$/, `${name}: a generated id`);
        s.open();
        await (await holder).body.dump();
      }
      for (let i = 0; i < answers.fast!.length; i++) {
        const f = answers.fast![i]!;
        assert.equal(f.status, 503);
        assert.deepEqual(f.headers, answers.slow![i]!.headers, `answer ${i}: the same headers, in order`);
        assert.equal(f.body, answers.slow![i]!.body);
      }
      const get = answers.fast![0]!;
      assert.ok(get.headers.includes('x-request-id: given-id-1'));
      assert.ok(get.headers.includes('retry-after: 2'));
      assert.ok(get.headers.includes('x-content-type-options: nosniff'));
      assert.equal((JSON.parse(get.body) as { code: string }).code, 'BULWARK_ERR_OVERLOADED');
      assert.ok(
        answers.fast![1]!.headers.some((h) => h.startsWith('content-security-policy: ')),
        'the document set',
      );
      assert.equal(answers.fast![2]!.body, '', 'HEAD: no body');
      // Fastify saw /held only on the fast server; every refusal went through it on the other.
      assert.deepEqual(
        fast.reached.filter((u) => u !== '/metrics'),
        ['/held'],
      );
      assert.equal(slow.reached.filter((u) => u.startsWith('/api') || u === '/page').length, 4);
      // Counted like the hook's refusals.
      for (const s of [fast, slow]) {
        const m = await metrics(s.base);
        assert.equal(sampleValue(m, 'bulwark_shed_total', { reason: 'concurrency' }), 4);
        assert.equal(
          sampleValue(m, 'http_server_request_duration_seconds_count', {
            route: '/api',
            method: 'GET',
            status_code: '503',
          }),
          2,
        );
        assert.equal(
          sampleValue(m, 'http_server_request_duration_seconds_count', {
            route: '/api',
            method: 'HEAD',
            status_code: '503',
          }),
          1,
        );
        assert.equal(sampleValue(m, 'bulwark_inflight_requests'), 0);
      }
    } finally {
      await fast.app.close();
      await slow.app.close();
    }
  });

  it('leaves to Fastify what the hooks answer otherwise: exempt routes, 404s, the deadline header, bodies, routes that do not shed', async () => {
    const s = await server(true);
    try {
      const holder = request(`${s.base}/held`);
      await s.held();
      const livez = await request(`${s.base}/livez`);
      assert.equal(livez.statusCode, 200);
      await livez.body.dump();
      const free = await request(`${s.base}/free`);
      assert.equal(free.statusCode, 200);
      await free.body.dump();
      const missing = await request(`${s.base}/nowhere`);
      assert.equal(missing.statusCode, 404);
      await missing.body.dump();
      // a spent budget is answered 504 before shedding, as the hook orders it
      const spent = await request(`${s.base}/api`, { headers: { 'bulwark-timeout-ms': '0' } });
      assert.equal(spent.statusCode, 504);
      await spent.body.dump();
      // a request with a body takes its slot once the body is read: refused then, by the hook
      const post = await request(`${s.base}/api`, {
        method: 'POST',
        body: '{"a":1}',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(post.statusCode, 503);
      assert.equal(((await post.body.json()) as { code: string }).code, 'BULWARK_ERR_OVERLOADED');
      assert.deepEqual(
        s.reached.filter((u) => u !== '/held'),
        ['/livez', '/free', '/nowhere', '/api', '/api'],
      );
      s.open();
      await (await holder).body.dump();
      // admitted again once the slot is free
      const ok = await request(`${s.base}/api`);
      assert.equal(ok.statusCode, 200);
      await ok.body.dump();
    } finally {
      await s.app.close();
    }
  });

  it('asks the event-loop gate once per request: a request it sheds never reaches Fastify', async () => {
    const s = await server(true, { ...OPTIONS, shedding: { ...OPTIONS.shedding, initialLimit: 10 } });
    try {
      const gate = s.app.bulwark.shedder!.gate;
      let asked = 0;
      let shed = false;
      gate.shouldShed = () => {
        asked++;
        return shed;
      };
      const ok = await request(`${s.base}/api`);
      assert.equal(ok.statusCode, 200);
      await ok.body.dump();
      assert.equal(asked, 1, 'let through before Fastify, not asked again in the route hook');
      shed = true;
      const refused = await raw(s.port, 'GET /api HTTP/1.1\r\nHost: t');
      assert.equal(refused.status, 503);
      assert.ok(refused.headers.includes('retry-after: 2'));
      assert.equal(asked, 2);
      assert.deepEqual(
        s.reached.filter((u) => u !== '/metrics'),
        ['/api'],
      );
      const m = await metrics(s.base);
      assert.equal(sampleValue(m, 'bulwark_shed_total', { reason: 'event_loop' }), 1);
    } finally {
      await s.app.close();
    }
  });

  it('Expect: 100-continue — a refused request gets its 503 (no-store) instead of 100 Continue; an admitted one gets the 100', async () => {
    const s = await server(true, { ...OPTIONS, shedding: { ...OPTIONS.shedding, initialLimit: 10 } });
    try {
      let shed = true;
      s.app.bulwark.shedder!.gate.shouldShed = () => shed;
      const head =
        'POST /api HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n';
      const refused = new RawConnection(s.port);
      await refused.ready();
      refused.write(head); // the body is held back until the server asks for it
      await refused.until((r) => r.includes('\r\n\r\n'));
      assert.match(refused.received, /^HTTP\/1\.1 503 /, refused.received);
      assert.doesNotMatch(refused.received, /100 Continue/);
      assert.match(refused.received, /\r\ncache-control: no-store\r\n/i);
      assert.match(refused.received, /\r\nconnection: close\r\n/i);
      await refused.closed; // the server closes: no body is expected from this client
      shed = false;
      const admitted = new RawConnection(s.port);
      await admitted.ready();
      admitted.write(head);
      await admitted.until((r) => r.includes('100 Continue'));
      admitted.write('{}');
      await admitted.until((r) => /HTTP\/1\.1 200 /.test(r));
      admitted.end();
    } finally {
      await s.app.close();
    }
  });

  it('a shed 503 is never stored by a cache, on a document route too (no-store)', async () => {
    const s = await server(true, { ...OPTIONS, shedding: { ...OPTIONS.shedding, initialLimit: 10 } });
    try {
      s.app.bulwark.shedder!.gate.shouldShed = () => true;
      for (const path of ['/page', '/api']) {
        const refused = await raw(s.port, `GET ${path} HTTP/1.1\r\nHost: t`);
        assert.equal(refused.status, 503);
        assert.equal(refused.headers.filter((h) => /^cache-control: no-store$/i.test(h)).length, 1, path);
      }
    } finally {
      await s.app.close();
    }
  });

  it('takes no slot for a refused request and returns every slot taken when clients hang up, pipelined ones too', async () => {
    const s = await server(true);
    const limiter = s.app.bulwark.shedder!.limiter;
    const counts = { acquired: 0, released: 0, abandoned: 0 };
    let abandoned: () => void = () => {};
    const heldAbandoned = new Promise<void>((resolve) => (abandoned = resolve));
    const tryAcquire = limiter.tryAcquire.bind(limiter);
    const release = limiter.release.bind(limiter);
    const abandon = limiter.abandon.bind(limiter);
    limiter.tryAcquire = () => {
      const ok = tryAcquire();
      if (ok) counts.acquired++;
      return ok;
    };
    limiter.release = (ms, drop) => {
      counts.released++;
      release(ms, drop);
    };
    limiter.abandon = () => {
      counts.abandoned++;
      abandon();
      abandoned();
    };
    try {
      let seen = 0;
      const seenAll = (n: number) =>
        new Promise<void>((resolve) => {
          const check = () => {
            if (seen >= n) {
              s.requests.off('request', count);
              resolve();
            }
          };
          const count = () => {
            seen++;
            check();
          };
          s.requests.on('request', count);
          check();
        });
      // One connection: /held (admitted) and three refused requests pipelined behind it, then a reset.
      const c = new RawConnection(s.port);
      await c.ready();
      const three = seenAll(4);
      c.write(
        'GET /held HTTP/1.1\r\nHost: t\r\n\r\n' +
          'GET /api HTTP/1.1\r\nHost: t\r\n\r\n'.repeat(2) +
          'HEAD /api HTTP/1.1\r\nHost: t\r\n\r\n',
      );
      await s.held();
      await three;
      assert.equal(limiter.inflight, 1, 'only /held holds a slot');
      // Refused requests whose clients hang up at once, on fresh connections.
      seen = 0;
      const more = seenAll(5);
      const quitters = await Promise.all(
        Array.from({ length: 5 }, async () => {
          const q = new RawConnection(s.port);
          await q.ready();
          q.write('GET /api HTTP/1.1\r\nHost: t\r\n\r\n');
          return q;
        }),
      );
      await more;
      for (const q of quitters) q.reset();
      c.reset();
      await c.closed;
      // the held request's client is gone: its slot comes back as an abandon
      await heldAbandoned;
      assert.equal(limiter.inflight, 0);
      s.open();
      assert.deepEqual(counts, { acquired: 1, released: 0, abandoned: 1 });
      const m = await metrics(s.base);
      assert.equal(sampleValue(m, 'bulwark_shed_total', { reason: 'concurrency' }), 8);
      assert.equal(sampleValue(m, 'bulwark_inflight_requests'), 0);
    } finally {
      s.open();
      await s.app.close();
    }
  });
});
