// Every fault observed by a real client (undici `request`, node:http, node:net) over loopback.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { MALFORMED_KINDS, patternBody, startFaultServer, type FaultServer } from './index.js';

// One agent per file, closed at the end, so no keep-alive socket outlives the tests.
const agent = new Agent({ keepAliveTimeout: 1000 });
after(() => agent.close());
const get = (url: string, opts: Parameters<typeof request>[1] = {}) =>
  request(url, { dispatcher: agent, ...opts });

async function settle<T>(
  p: Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: Error & { code?: string } }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error: error as Error & { code?: string } };
  }
}

/** Reads a whole body, returning the bytes received before an error and the error. */
async function readAll(
  body: AsyncIterable<Buffer>,
): Promise<{ bytes: Buffer; error?: Error & { code?: string } }> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of body) chunks.push(c);
    return { bytes: Buffer.concat(chunks) };
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error: error as Error & { code?: string } };
  }
}

describe('fault server', () => {
  let server: FaultServer;
  before(async () => {
    server = await startFaultServer();
  });
  after(() => server.close());

  it('binds 127.0.0.1 on an ephemeral port and answers /ok normally', async () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(server.origin, `http://127.0.0.1:${server.port}`);
    const res = await get(`${server.origin}/ok`);
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), 'ok');
  });

  it('serves a configurable body: size, content type, ETag, Last-Modified, Cache-Control', async () => {
    const res = await get(
      `${server.origin}/ok?size=100000&contentType=application/octet-stream&etag="v1"&cacheControl=max-age%3D60&lastModified=Wed,%2021%20Oct%202015%2007:28:00%20GMT`,
    );
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'application/octet-stream');
    assert.equal(res.headers['content-length'], '100000');
    assert.equal(res.headers['etag'], '"v1"');
    assert.equal(res.headers['cache-control'], 'max-age=60');
    assert.equal(res.headers['last-modified'], 'Wed, 21 Oct 2015 07:28:00 GMT');
    assert.ok(Buffer.from(await res.body.arrayBuffer()).equals(patternBody(100000)));
  });

  it('answers 304 to a matching If-None-Match or a fresh If-Modified-Since', async () => {
    server.setResponse(
      { body: 'cached', etag: 'W/"abc"', lastModified: new Date(0), cacheControl: 'max-age=1' },
      '/c',
    );
    try {
      const hit = await get(`${server.origin}/c`, { headers: { 'if-none-match': '"x", "abc"' } });
      assert.equal(hit.statusCode, 304);
      assert.equal(hit.headers['etag'], 'W/"abc"');
      assert.equal(await hit.body.text(), '');
      const miss = await get(`${server.origin}/c`, { headers: { 'if-none-match': '"other"' } });
      assert.equal(miss.statusCode, 200);
      assert.equal(await miss.body.text(), 'cached');
      const ims = await get(`${server.origin}/c`, {
        headers: { 'if-modified-since': new Date(1000).toUTCString() },
      });
      assert.equal(ims.statusCode, 304);
      await ims.body.dump();
    } finally {
      server.reset();
    }
  });

  // Delays are checked from below only: a loaded machine can only make them longer, never shorter.
  it('latency: headers arrive no earlier than the delay', async () => {
    const t0 = performance.now();
    const res = await get(`${server.origin}/latency/200`);
    const elapsed = performance.now() - t0;
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    assert.ok(elapsed >= 195, `elapsed ${elapsed}`);
  });

  it('black hole: the request arrives, no byte comes back (client header timeout fires)', async () => {
    const before = server.requestCount;
    const t0 = performance.now();
    const r = await settle(get(`${server.origin}/blackhole`, { headersTimeout: 300 }));
    const elapsed = performance.now() - t0;
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.code, 'UND_ERR_HEADERS_TIMEOUT');
    assert.ok(elapsed >= 290, `elapsed ${elapsed}`);
    assert.equal(server.requestCount, before + 1);
    assert.equal(server.requests.at(-1)?.fault, 'blackhole');
  });

  it('reset before headers: the client sees ECONNRESET', async () => {
    const r = await settle(get(`${server.origin}/reset`));
    assert.equal(!r.ok && r.error.code, 'ECONNRESET');
  });

  it('reset mid-body: status and part of the body arrive, then ECONNRESET', async () => {
    const res = await get(`${server.origin}/reset?afterBytes=1000&size=100000`);
    assert.equal(res.statusCode, 200);
    const { bytes, error } = await readAll(res.body);
    assert.equal(error?.code, 'ECONNRESET');
    assert.ok(bytes.length <= 1000, `got ${bytes.length} bytes`);
    assert.ok(bytes.equals(patternBody(bytes.length)));
  });

  it('truncated body: Content-Length promises more than is sent, then a clean close', async () => {
    const res = await get(`${server.origin}/truncate?bytes=500&size=5000`);
    assert.equal(res.headers['content-length'], '5000');
    const { bytes, error } = await readAll(res.body);
    assert.equal(bytes.length, 500);
    assert.ok(error, 'the body must fail');
    assert.equal(error.code, 'UND_ERR_SOCKET');
  });

  it('slow drip: n bytes every m ms; a client body timeout shorter than the gap fires', async () => {
    const t0 = performance.now();
    const res = await get(`${server.origin}/drip?bytes=2&intervalMs=40&size=10`);
    const arrivals: number[] = [];
    const chunks: Buffer[] = [];
    for await (const c of res.body) {
      arrivals.push(performance.now() - t0);
      chunks.push(c);
    }
    assert.ok(Buffer.concat(chunks).equals(patternBody(10)));
    assert.equal(chunks.length, 5);
    assert.ok(arrivals.at(-1)! >= 190, `last chunk at ${arrivals.at(-1)}`);
    // undici checks body and header timeouts on a ~500 ms tick, so the gap must be well above that
    const slow = await get(`${server.origin}/drip?bytes=1&intervalMs=2000&size=5`, { bodyTimeout: 300 });
    const { error } = await readAll(slow.body);
    assert.equal(error?.code, 'UND_ERR_BODY_TIMEOUT');
  });

  it('bandwidth: 20 000 B at 20 000 B/s take at least a second', async () => {
    const t0 = performance.now();
    const res = await get(`${server.origin}/bandwidth?bytesPerSecond=20000&size=20000`);
    const body = Buffer.from(await res.body.arrayBuffer());
    const elapsed = performance.now() - t0;
    assert.ok(body.equals(patternBody(20000)));
    assert.ok(elapsed >= 950, `elapsed ${elapsed}`);
  });

  it('error statuses with Retry-After in seconds and as an HTTP-date', async () => {
    const a = await get(`${server.origin}/status/503?retryAfter=2`);
    assert.equal(a.statusCode, 503);
    assert.equal(a.headers['retry-after'], '2');
    await a.body.dump();
    const sent = Date.now();
    const b = await get(`${server.origin}/status/429?retryAfterDate=3000`);
    const received = Date.now();
    assert.equal(b.statusCode, 429);
    // an HTTP-date has whole seconds: 3 s after the server's "now", which lies between sent and received
    const at = Date.parse(String(b.headers['retry-after']));
    assert.ok(at >= sent + 2000 && at <= received + 3000, `retry-after ${b.headers['retry-after']}`);
    await b.body.dump();
    server.setFault({ type: 'status', status: 500 }, { path: '/x' });
    const c = await get(`${server.origin}/x`);
    assert.equal(c.statusCode, 500);
    assert.equal(c.headers['retry-after'], undefined);
    await c.body.dump();
    server.reset();
  });

  for (const kind of MALFORMED_KINDS) {
    it(`malformed response (${kind}): the client fails to parse it`, async () => {
      const r = await settle(
        get(`${server.origin}/malformed/${kind}`).then(async (res) => {
          await res.body.text();
          return res.statusCode;
        }),
      );
      assert.equal(r.ok, false, `a ${kind} response must not parse`);
    });
  }

  it('malformed responses also fail node:http', async () => {
    for (const kind of ['status-line', 'header', 'huge-header'] as const) {
      const err = await new Promise<Error & { code?: string }>((resolve, reject) => {
        const req = httpRequest(`${server.origin}/malformed/${kind}`, { agent: false }, () =>
          reject(new Error(`${kind} parsed`)),
        );
        req.on('error', resolve);
        req.end();
      });
      assert.match(String(err.code), /^HPE_/, `${kind}: ${err.code}`);
    }
  });

  it('close without a response: the client sees the connection closed', async () => {
    const r = await settle(get(`${server.origin}/close`));
    assert.equal(!r.ok && r.error.code, 'UND_ERR_SOCKET');
  });

  it('redirects, including a loop', async () => {
    const res = await get(`${server.origin}/redirect?location=/redirect&status=301`);
    assert.equal(res.statusCode, 301);
    assert.equal(res.headers['location'], '/redirect');
    await res.body.dump();
  });

  it('setFault per path with times: the first n requests fail, then normal service resumes', async () => {
    server.setFault({ type: 'status', status: 503, retryAfter: 1 }, { path: '/flaky', times: 2 });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await get(`${server.origin}/flaky`);
      statuses.push(res.statusCode);
      await res.body.dump();
    }
    assert.deepEqual(statuses, [503, 503, 200, 200]);
    const other = await get(`${server.origin}/ok`);
    assert.equal(other.statusCode, 200);
    await other.body.dump();
  });

  it('a server-wide fault overrides the URL route; undefined removes it', async () => {
    server.setFault({ type: 'status', status: 502 });
    const a = await get(`${server.origin}/latency/5000`);
    assert.equal(a.statusCode, 502);
    await a.body.dump();
    server.setFault(undefined);
    const b = await get(`${server.origin}/ok`);
    assert.equal(b.statusCode, 200);
    await b.body.dump();
  });

  it('probability: a seeded fraction of requests gets the fault', async () => {
    const s = await startFaultServer({ seed: 42 });
    try {
      s.setFault({ type: 'status', status: 500 }, { probability: 0.3 });
      let failed = 0;
      for (let i = 0; i < 200; i++) {
        const res = await get(`${s.origin}/ok`);
        if (res.statusCode === 500) failed++;
        await res.body.dump();
      }
      assert.ok(failed > 30 && failed < 90, `failed ${failed}/200`);
    } finally {
      await s.close();
    }
  });

  it('counts concurrency observed at the server and logs requests with timestamps', async () => {
    server.reset();
    await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const res = await get(`${server.origin}/latency/150?n=${i}`);
        await res.body.dump();
      }),
    );
    assert.equal(server.requestCount, 10);
    assert.equal(server.maxConcurrentRequests, 10);
    assert.equal(server.currentRequests, 0);
    const log = server.requests;
    assert.equal(log.length, 10);
    for (const r of log) {
      assert.equal(r.method, 'GET');
      assert.equal(r.path, '/latency/150');
      assert.equal(r.fault, 'latency');
      assert.ok(r.endedAt !== undefined && r.endedAt - r.startedAt >= 140);
    }
    assert.equal(Math.max(...log.map((r) => r.concurrency)), 10);
  });

  it('waitForIdle resolves once every request is answered or given up by its client', async () => {
    server.reset();
    await server.waitForIdle();
    const controller = new AbortController();
    const held = get(`${server.origin}/blackhole`, { signal: controller.signal }).catch(() => undefined);
    await server.waitForRequests(1);
    assert.equal(server.currentRequests, 1);
    await assert.rejects(server.waitForIdle(50), /1 requests still in flight/);
    const idle = server.waitForIdle();
    controller.abort();
    await idle;
    assert.equal(server.currentRequests, 0);
    await held;
  });

  it('a bad route parameter is a 400, not a crash', async () => {
    const res = await get(`${server.origin}/malformed/nonsense`);
    assert.equal(res.statusCode, 400);
    assert.match(await res.body.text(), /malformed kind/);
  });

  it('waitForRequests resolves when the server has seen enough requests', async () => {
    server.reset();
    const waiting = server.waitForRequests(2, 2000);
    const a = get(`${server.origin}/blackhole`, { headersTimeout: 2000 }).catch(() => undefined);
    const b = get(`${server.origin}/blackhole`, { headersTimeout: 2000 }).catch(() => undefined);
    await waiting;
    assert.equal(server.currentRequests, 2);
    await assert.rejects(server.waitForRequests(3, 50), /saw 2 of 3/);
    // Closing a fresh server with held connections releases them; here the shared one keeps running.
    server.setFault(undefined);
    void a;
    void b;
  });
});

/** A raw HTTP/1.1 exchange over node:net: everything the server sent, and how the connection ended. */
function rawGet(port: number, path: string): Promise<{ data: Buffer; end: 'fin' | string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let ending: 'fin' | string | undefined;
    const socket = connect(port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => (ending ??= 'fin'));
    socket.on('error', (e: Error & { code?: string }) => (ending ??= e.code ?? e.message));
    socket.on('close', () => resolve({ data: Buffer.concat(chunks), end: ending ?? 'fin' }));
  });
}

describe('body framing: length, chunked, close-delimited', () => {
  let server: FaultServer;
  before(async () => {
    server = await startFaultServer();
  });
  after(() => server.close());

  it('a close-delimited response has neither Content-Length nor chunking, and ends with a FIN', async () => {
    const { data, end } = await rawGet(server.port, '/ok?size=1000&framing=close');
    const text = data.toString('latin1');
    const head = text.slice(0, text.indexOf('\r\n\r\n'));
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head, /\r\nconnection: close/i);
    assert.doesNotMatch(head, /content-length|transfer-encoding/i);
    assert.ok(data.subarray(head.length + 4).equals(patternBody(1000)));
    assert.equal(end, 'fin');
    // undici reads it whole
    const res = await get(`${server.origin}/ok?size=1000&framing=close`);
    assert.ok(Buffer.from(await res.body.arrayBuffer()).equals(patternBody(1000)));
  });

  it('a chunked response: Transfer-Encoding chunked, no Content-Length', async () => {
    const res = await get(`${server.origin}/ok?size=5000&framing=chunked`);
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.headers['content-length'], undefined);
    assert.ok(Buffer.from(await res.body.arrayBuffer()).equals(patternBody(5000)));
  });

  it('close-delimited + reset: 100 body bytes, then an RST (which undici 8 reports as a clean end)', async () => {
    const { data, end } = await rawGet(server.port, '/reset?afterBytes=100&size=1000&framing=close');
    const text = data.toString('latin1');
    const body = data.subarray(text.indexOf('\r\n\r\n') + 4);
    assert.ok(body.equals(patternBody(100)), `${body.length} body bytes`);
    assert.equal(end, 'ECONNRESET');
    // what @bulwark/http has to detect itself (see packages/http/src/reset-guard.ts)
    const res = await get(`${server.origin}/reset?afterBytes=100&size=1000&framing=close`);
    const read = await readAll(res.body);
    assert.equal(read.error, undefined);
    assert.equal(read.bytes.length, 100);
  });

  it('chunked + truncate: the chunk size promises the whole body; undici fails it', async () => {
    const { data, end } = await rawGet(server.port, '/truncate?bytes=100&size=1000&framing=chunked');
    const text = data.toString('latin1');
    assert.match(text, /transfer-encoding: chunked\r\n\r\n3e8\r\n/i);
    assert.equal(end, 'fin');
    const res = await get(`${server.origin}/truncate?bytes=100&size=1000&framing=chunked`);
    const { error } = await readAll(res.body);
    assert.equal(error?.code, 'UND_ERR_SOCKET');
  });

  it('chunked + reset mid-body: ECONNRESET', async () => {
    const res = await get(`${server.origin}/reset?afterBytes=100&size=1000&framing=chunked`).catch(
      (e: Error & { code?: string }) => e,
    );
    const error = res instanceof Error ? res : (await readAll(res.body)).error;
    assert.equal(error?.code, 'ECONNRESET');
  });

  it('stall: headers and afterBytes bytes, then silence until the client gives up', async () => {
    const res = await get(`${server.origin}/stall?afterBytes=10&size=1000`, { bodyTimeout: 1500 });
    assert.equal(res.headers['content-length'], '1000');
    const { bytes, error } = await readAll(res.body);
    assert.ok(bytes.equals(patternBody(10)));
    assert.equal(error?.code, 'UND_ERR_BODY_TIMEOUT');
    assert.equal(server.requests.at(-1)?.fault, 'stall');
  });

  it('gzip: the body compressed with Content-Encoding gzip, asked for or not', async () => {
    const res = await get(`${server.origin}/ok?size=3000&gzip=1`);
    assert.equal(res.headers['content-encoding'], 'gzip');
    const compressed = Buffer.from(await res.body.arrayBuffer());
    assert.equal(Number(res.headers['content-length']), compressed.length);
    assert.ok(gunzipSync(compressed).equals(patternBody(3000)));
  });

  it('an unknown framing is a 400', async () => {
    const res = await get(`${server.origin}/ok?framing=morse`);
    assert.equal(res.statusCode, 400);
    assert.match(await res.body.text(), /framing must be one of length, chunked, close/);
  });
});

describe('fault server close()', () => {
  it('destroys held connections and clears every timer, so nothing hangs', { timeout: 20_000 }, async () => {
    const baseline = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const s = await startFaultServer();
    // a raw socket held by a black hole, one in a long drip, one waiting for a long latency
    const sockets = ['/blackhole', '/drip?bytes=1&intervalMs=10000&size=100', '/latency/60000'].map(
      (path) =>
        new Promise<string>((resolve) => {
          const socket = connect(s.port, '127.0.0.1', () =>
            socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`),
          );
          socket.on('error', () => {});
          socket.resume(); // read what arrives (a paused socket never sees the close)
          socket.on('close', () => resolve(path));
        }),
    );
    await s.waitForRequests(3);
    assert.equal(s.currentConnections, 3);
    assert.equal(s.currentRequests, 3);
    // a close() that waited for the held requests would take a minute: the test's timeout catches that
    await s.close();
    assert.equal((await Promise.all(sockets)).length, 3);
    await assert.rejects(s.waitForRequests(10), /closed/);
    const timers = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    assert.ok(timers <= baseline, `timers after close ${timers} > baseline ${baseline}`);
    await s.close(); // idempotent
  });

  it('options.fault applies to every request from the start', async () => {
    const s = await startFaultServer({ fault: { type: 'status', status: 418 }, response: { body: 'x' } });
    try {
      const res = await request(`${s.origin}/ok`, { dispatcher: agent });
      assert.equal(res.statusCode, 418);
      await res.body.dump();
      s.setFault(undefined);
      const ok = await request(`${s.origin}/ok`, { dispatcher: agent });
      assert.equal(await ok.body.text(), 'x');
    } finally {
      await s.close();
    }
  });
});
