// Graceful shutdown with real signals sent to a real child process running a tiny service.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { Pool, request } from 'undici';
import { InvalidOptionError } from '@bulwark/core';
import { createService } from './service.js';
import { installShutdown } from './shutdown.js';
import { sleep } from './test-support.js';

const FIXTURE = new URL('./fixtures/shutdown-server.js', import.meta.url).pathname;

interface Child {
  proc: ChildProcess;
  base: string;
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

async function startChild(config: Record<string, unknown>): Promise<Child> {
  const proc = spawn(process.execPath, [FIXTURE], {
    env: { ...process.env, FIXTURE_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  createInterface({ input: proc.stderr! }).on('line', (l) => stderr.push(l));
  const exited = once(proc, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
    at: performance.now(),
  }));
  const [line] = (await Promise.race([
    once(createInterface({ input: proc.stdout! }), 'line'),
    exited.then(() => {
      throw new Error(`fixture exited early: ${stderr.join('\n')}`);
    }),
  ])) as [string];
  const { port } = JSON.parse(line) as { port: number };
  return { proc, base: `http://127.0.0.1:${port}`, stderr, exited };
}

async function waitInflight(base: string, n: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const res = await request(`${base}/inflight`);
    const { inflight } = (await res.body.json()) as { inflight: number };
    if (inflight >= n) return;
    await sleep(5);
  }
  throw new Error(`never saw ${n} requests in flight`);
}

function logged(child: Child, msg: string): boolean {
  return child.stderr.some((l) => (JSON.parse(l) as { msg?: string }).msg === msg);
}

describe('installShutdown (child process, real signals)', () => {
  it('SIGTERM: readiness fails within 50 ms, 20 in-flight requests all complete, drain answers carry Connection: close, exit 0', async () => {
    const child = await startChild({ drainDelayMs: 300, shutdownTimeoutMs: 10_000 });
    const pool = new Pool(child.base, { connections: 20 });
    const probe = new Pool(child.base, { connections: 1 });
    try {
      // a warm probe connection, ready before the signal
      assert.equal((await probe.request({ path: '/readyz', method: 'GET' })).statusCode, 200);
      const inflight = Array.from({ length: 20 }, () =>
        pool.request({ path: '/slow?ms=800', method: 'GET' }).then(async (r) => ({
          status: r.statusCode,
          body: (await r.body.json()) as { slept: number },
        })),
      );
      await waitInflight(child.base, 20);

      const t0 = performance.now();
      child.proc.kill('SIGTERM');
      let flippedAt = 0;
      for (let i = 0; i < 1000; i++) {
        const res = await probe.request({ path: '/readyz', method: 'GET' });
        const body = (await res.body.json()) as { status: string; shuttingDown?: boolean };
        if (res.statusCode === 503) {
          flippedAt = performance.now();
          assert.equal(body.status, 'fail');
          assert.equal(body.shuttingDown, true);
          break;
        }
      }
      assert.ok(flippedAt > 0, 'readiness flipped');
      assert.ok(flippedAt - t0 <= 50, `readiness flipped ${Math.round(flippedAt - t0)} ms after SIGTERM`);

      // during the drain delay: liveness still 200, new requests served with Connection: close
      const live = await probe.request({ path: '/livez', method: 'GET' });
      assert.equal(live.statusCode, 200);
      await live.body.dump();
      const fresh = await request(`${child.base}/slow?ms=10`);
      assert.equal(fresh.statusCode, 200);
      assert.equal(fresh.headers.connection, 'close');
      await fresh.body.dump();

      const results = await Promise.all(inflight);
      assert.deepEqual(
        results.map((r) => r.status),
        Array(20).fill(200),
      );
      assert.ok(results.every((r) => r.body.slept === 800));

      const exit = await child.exited;
      assert.equal(exit.code, 0);
      // drain delay (300) + the rest of the 800 ms requests + margin; never + keepAliveTimeout (72 s)
      assert.ok(exit.at - t0 < 800 + 300 + 1500, `exited ${Math.round(exit.at - t0)} ms after SIGTERM`);
      assert.ok(logged(child, 'shutdown started: readiness failing, draining'));
      assert.ok(logged(child, 'onShutdown ran'));
      assert.ok(logged(child, 'shutdown complete'));
      await assert.rejects(request(`${child.base}/livez`), /ECONNREFUSED/);
    } finally {
      child.proc.kill('SIGKILL');
      await pool.destroy();
      await probe.destroy();
    }
  });

  it('the hard deadline destroys the connections left and exits 1, naming the cause', async () => {
    const child = await startChild({ shutdownTimeoutMs: 500 });
    try {
      const stuck = request(`${child.base}/slow?ms=30000`).then(
        (r) => r.statusCode,
        (e: Error) => e.name,
      );
      await waitInflight(child.base, 1);
      const t0 = performance.now();
      child.proc.kill('SIGTERM');
      const exit = await child.exited;
      const ms = exit.at - t0;
      assert.equal(exit.code, 1);
      assert.ok(ms >= 450 && ms < 2000, `exited ${Math.round(ms)} ms after SIGTERM`);
      assert.notEqual(await stuck, 200);
      assert.ok(logged(child, 'shutdown deadline passed; closing every connection and exiting'));
    } finally {
      child.proc.kill('SIGKILL');
    }
  });

  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    it(`a second ${signal} exits at once (code ${code})`, async () => {
      const child = await startChild({ drainDelayMs: 10_000, shutdownTimeoutMs: 20_000 });
      try {
        child.proc.kill(signal);
        for (let i = 0; i < 200 && !logged(child, 'shutdown started: readiness failing, draining'); i++)
          await sleep(5);
        const t0 = performance.now();
        child.proc.kill(signal);
        const exit = await child.exited;
        assert.equal(exit.code, code);
        assert.ok(exit.at - t0 < 300, `exited ${Math.round(exit.at - t0)} ms after the second signal`);
        assert.ok(logged(child, 'second signal during shutdown; exiting now'));
      } finally {
        child.proc.kill('SIGKILL');
      }
    });
  }
});

describe('installShutdown (in process)', () => {
  it('shutdown() by hand: readiness fails at once, the server closes, exit(0) is called once', async () => {
    const app = createService({ logLevel: 'silent', shedding: false });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const codes: number[] = [];
    const handle = installShutdown(app, { signals: ['SIGUSR2'], exit: (c) => codes.push(c) });
    try {
      assert.equal(handle.started, false);
      const done = handle.shutdown('test');
      assert.equal(handle.started, true);
      assert.equal(app.bulwark.shuttingDown, true);
      assert.equal((await app.bulwark.health.readiness()).status, 'fail');
      assert.equal(await done, 0);
      assert.equal(await handle.shutdown(), 0, 'idempotent');
      await sleep(250);
      assert.deepEqual(codes, [0]);
      assert.equal(app.server.listening, false);
    } finally {
      handle.dispose();
    }
  });

  it('validates its options', () => {
    const app = createService({ logLevel: 'silent', shedding: false });
    assert.throws(() => installShutdown(app, { shutdownTimeoutMs: 0 }), InvalidOptionError);
    assert.throws(() => installShutdown(app, { signals: ['SIGNOPE' as never] }), /shutdown\.signals/);
    assert.throws(() => installShutdown(app, { delayMs: 5 } as never), /shutdown\.delayMs/);
    return app.close();
  });
});
