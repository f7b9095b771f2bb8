// The TCP fault proxy, observed by real clients: node:net against an echo upstream, undici against the
// fault server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Agent, request } from 'undici';
import {
  patternBody,
  startFaultProxy,
  startFaultServer,
  type FaultProxy,
  type FaultServer,
} from './index.js';

/** An upstream that echoes every byte back, and can send a big blob on request (`BLOB <n>\n`). */
async function echoServer(): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.on('data', (d) => {
      const m = /^BLOB (\d+)\n$/.exec(d.toString('latin1'));
      if (m) s.write(patternBody(Number(m[1])));
      else s.write(d);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

interface Client {
  socket: Socket;
  received: () => Buffer;
  /** Resolves with the close kind once the socket closes. */
  closed: Promise<{ error?: string; at: number }>;
  /** Resolves when at least `n` bytes have arrived, with the time of arrival. */
  waitBytes(n: number, timeoutMs?: number): Promise<number>;
}

function client(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const waiters: { n: number; resolve: (t: number) => void }[] = [];
    let error: string | undefined;
    const socket = connect(port, '127.0.0.1');
    const closed = new Promise<{ error?: string; at: number }>((r) =>
      socket.on('close', () => r({ ...(error ? { error } : {}), at: performance.now() })),
    );
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code;
      reject(e);
    });
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      total += d.length;
      for (const w of waiters.filter((w) => total >= w.n)) w.resolve(performance.now());
    });
    socket.on('connect', () =>
      resolve({
        socket,
        received: () => Buffer.concat(chunks),
        closed,
        waitBytes: (n, timeoutMs = 5000) =>
          total >= n
            ? Promise.resolve(performance.now())
            : new Promise<number>((res, rej) => {
                const t = setTimeout(() => rej(new Error(`only ${total} of ${n} bytes`)), timeoutMs);
                waiters.push({
                  n,
                  resolve: (at) => {
                    clearTimeout(t);
                    res(at);
                  },
                });
              }),
      }),
    );
  });
}

describe('fault proxy', () => {
  let upstream: Awaited<ReturnType<typeof echoServer>>;
  let proxy: FaultProxy;
  before(async () => {
    upstream = await echoServer();
    proxy = await startFaultProxy({ target: { port: upstream.port } });
  });
  after(async () => {
    await proxy.close();
    await upstream.close();
  });

  it('forwards both ways untouched (1 MiB, SHA-256 identical)', async () => {
    await proxy.reset();
    const c = await client(proxy.port);
    c.socket.write('BLOB 1048576\n');
    await c.waitBytes(1048576);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.equal(sha(c.received()), sha(patternBody(1048576)));
    assert.equal(proxy.currentConnections, 1);
    c.socket.destroy();
    await c.closed;
  });

  it('latency: the echo comes back no earlier than the delay', async () => {
    await proxy.setFault({ type: 'latency', ms: 200 });
    const c = await client(proxy.port);
    const t0 = performance.now();
    c.socket.write('ping');
    const at = await c.waitBytes(4);
    assert.ok(at - t0 >= 195, `echo after ${at - t0} ms`); // from below only: load can only add delay
    assert.equal(c.received().toString(), 'ping');
    c.socket.destroy();
    await proxy.reset();
  });

  it('black hole: no data passes and the connection stays open; lifting it restores new traffic', async () => {
    const c = await client(proxy.port);
    await proxy.setFault({ type: 'blackhole' });
    c.socket.write('lost');
    await assert.rejects(c.waitBytes(1, 300), /only 0 of 1/);
    assert.equal(c.socket.destroyed, false);
    await proxy.setFault(undefined);
    c.socket.write('back');
    await c.waitBytes(4);
    assert.equal(c.received().toString(), 'back');
    c.socket.destroy();
  });

  it('reset: open connections get ECONNRESET, and so do new ones', async () => {
    const c = await client(proxy.port);
    c.socket.write('x');
    await c.waitBytes(1);
    await proxy.setFault({ type: 'reset' });
    assert.equal((await c.closed).error, 'ECONNRESET');
    // a new connection is reset on accept: seen at connect or just after it
    const next = await client(proxy.port).then(
      async (c) => (await c.closed).error,
      (e: NodeJS.ErrnoException) => e.code,
    );
    assert.equal(next, 'ECONNRESET');
    await proxy.reset();
  });

  it('bandwidth: 50 000 B at 50 000 B/s take at least 0.85 s (a 100 ms burst)', async () => {
    await proxy.setFault({ type: 'bandwidth', bytesPerSecond: 50_000 });
    const c = await client(proxy.port);
    const t0 = performance.now();
    c.socket.write('BLOB 50000\n');
    const at = await c.waitBytes(50_000);
    assert.ok(at - t0 >= 850, `took ${at - t0} ms`);
    assert.ok(c.received().equals(patternBody(50_000)));
    c.socket.destroy();
    await proxy.reset();
  });

  it('limitData: exactly N bytes, then a clean close', async () => {
    await proxy.setFault({ type: 'limitData', bytes: 1000 });
    const c = await client(proxy.port);
    c.socket.write('BLOB 5000\n');
    const closed = await c.closed;
    assert.equal(closed.error, undefined);
    assert.equal(c.received().length, 1000);
    assert.ok(c.received().equals(patternBody(1000)));
    await proxy.reset();
  });

  it('down: connections are refused at once; up again restores service on the same port', async () => {
    const port = proxy.port;
    const open = await client(port);
    await proxy.setFault({ type: 'down' });
    await open.closed;
    // refused, not held: a connection that hung would end the test by its timeout, not by ECONNREFUSED
    await assert.rejects(client(port), { code: 'ECONNREFUSED' });
    await proxy.setFault(undefined);
    assert.equal(proxy.port, port);
    const c = await client(port);
    c.socket.write('up');
    await c.waitBytes(2);
    c.socket.destroy();
  });

  it('an upstream that refuses becomes a reset for the client', async () => {
    const dead = await echoServer();
    const port = dead.port;
    await dead.close();
    const p = await startFaultProxy({ target: `127.0.0.1:${port}` });
    try {
      const code = await client(p.port).then(
        async (c) => (await c.closed).error,
        (e: NodeJS.ErrnoException) => e.code,
      );
      assert.equal(code, 'ECONNRESET');
    } finally {
      await p.close();
    }
  });
});

describe('fault proxy in front of an HTTP server', () => {
  let server: FaultServer;
  let proxy: FaultProxy;
  const agent = new Agent({ keepAliveTimeout: 1000 });
  before(async () => {
    server = await startFaultServer();
    proxy = await startFaultProxy({ target: server.origin });
  });
  after(async () => {
    await agent.close();
    await proxy.close();
    await server.close();
  });

  it('HTTP passes through, then the dependency "goes away" mid-test and comes back', async () => {
    const ok = await request(`${proxy.url}ok?size=100000`, { dispatcher: agent });
    assert.ok(Buffer.from(await ok.body.arrayBuffer()).equals(patternBody(100000)));
    await proxy.setFault({ type: 'blackhole' });
    await assert.rejects(
      request(`${proxy.url}ok`, { dispatcher: agent, headersTimeout: 300 }),
      (e: { code?: string }) => e.code === 'UND_ERR_HEADERS_TIMEOUT',
    );
    await proxy.setFault({ type: 'reset' });
    await assert.rejects(request(`${proxy.url}ok`, { dispatcher: agent }), (e: { code?: string }) =>
      ['ECONNRESET', 'UND_ERR_SOCKET'].includes(String(e.code)),
    );
    await proxy.setFault(undefined);
    const back = await request(`${proxy.url}ok`, { dispatcher: agent });
    assert.equal(await back.body.text(), 'ok');
  });

  it('close() destroys proxied connections and leaves no timer behind', { timeout: 20_000 }, async () => {
    const baseline = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const p = await startFaultProxy({ target: server.origin, fault: { type: 'latency', ms: 60_000 } });
    const c = await client(p.port);
    c.socket.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
    await server.waitForRequests(server.requestCount + 1).catch(() => undefined);
    // a close() that waited for the delayed data would take a minute: the test's timeout catches it
    await p.close();
    await c.closed;
    const timers = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    assert.ok(timers <= baseline, `timers ${timers} > baseline ${baseline}`);
    await p.close();
  });
});
