// Graceful shutdown with real signals sent to a real child process running a tiny service.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { EventEmitter } from 'node:events';
import { Pool, request } from 'undici';
import { InvalidOptionError } from '@bulwark/core';
import { FakeClock } from '@bulwark/core/testing';
import { createService } from './service.js';
import { DUPLICATE_SIGNAL_MS, installShutdown } from './shutdown.js';
import { listen } from './test-support.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/shutdown-server.js', import.meta.url));

interface Child {
  proc: ChildProcess;
  base: string;
  stderr: Array<Record<string, unknown>>;
  /** Resolves with the first log line whose message is `msg` (and that matches `match`). */
  logged(msg: string, match?: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startChild(config: Record<string, unknown>): Promise<Child> {
  const proc = spawn(process.execPath, [FIXTURE], {
    env: { ...process.env, FIXTURE_CONFIG: JSON.stringify(config) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stderr: Array<Record<string, unknown>> = [];
  const lines = new EventEmitter();
  createInterface({ input: proc.stderr! }).on('line', (l) => {
    const line = JSON.parse(l) as Record<string, unknown>;
    stderr.push(line);
    lines.emit('line', line);
  });
  const exited = once(proc, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  const [line] = (await Promise.race([
    once(createInterface({ input: proc.stdout! }), 'line'),
    exited.then(() => {
      throw new Error(`fixture exited early: ${JSON.stringify(stderr)}`);
    }),
  ])) as [string];
  const { port } = JSON.parse(line) as { port: number };
  const logged = (msg: string, match: (line: Record<string, unknown>) => boolean = () => true) => {
    const hit = (l: Record<string, unknown>) => l.msg === msg && match(l);
    const found = stderr.find(hit);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const onLine = (l: Record<string, unknown>) => {
        if (!hit(l)) return;
        lines.off('line', onLine);
        resolve(l);
      };
      lines.on('line', onLine);
      void exited.then(() => {
        lines.off('line', onLine);
        const late = stderr.find(hit);
        if (late !== undefined) resolve(late);
        else reject(new Error(`the fixture exited without logging "${msg}"`));
      });
    });
  };
  return { proc, base: `http://127.0.0.1:${port}`, stderr, logged, exited };
}

describe('installShutdown (child process, real signals)', () => {
  it('SIGTERM: 20 requests in flight all complete, then the process exits 0', async () => {
    const child = await startChild({ shutdownTimeoutMs: 60_000 });
    const pool = new Pool(child.base, { connections: 20 });
    try {
      const inflight = Array.from({ length: 20 }, () =>
        pool.request({ path: '/hold', method: 'GET' }).then(async (r) => ({
          status: r.statusCode,
          body: (await r.body.json()) as { released: boolean },
        })),
      );
      await child.logged('held', (l) => l.held === 20);
      child.proc.kill('SIGTERM');
      await child.logged('shutdown started: readiness failing, draining');
      child.proc.stdin!.write('release\n');
      const results = await Promise.all(inflight);
      assert.deepEqual(
        results.map((r) => r.status),
        Array(20).fill(200),
      );
      const exit = await child.exited;
      assert.equal(exit.code, 0);
      await child.logged('onShutdown ran');
      await child.logged('shutdown complete');
      await assert.rejects(request(`${child.base}/livez`), /ECONNREFUSED/);
    } finally {
      child.proc.kill('SIGKILL');
      await pool.close();
    }
  });

  it('the hard deadline destroys the connections left and exits 1, naming the cause', async () => {
    const child = await startChild({ shutdownTimeoutMs: 500 });
    try {
      const stuck = request(`${child.base}/hold`).then(
        (r) => r.statusCode,
        (e: Error) => e.name,
      );
      await child.logged('held');
      child.proc.kill('SIGTERM');
      const exit = await child.exited;
      assert.equal(exit.code, 1);
      assert.notEqual(await stuck, 200);
      await child.logged('shutdown deadline passed; closing every connection and exiting');
    } finally {
      child.proc.kill('SIGKILL');
    }
  });

  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    it(`a second ${signal} exits at once (code ${code})`, async () => {
      const child = await startChild({ drainDelayMs: 60_000, shutdownTimeoutMs: 120_000 });
      try {
        child.proc.kill(signal);
        await child.logged('shutdown started: readiness failing, draining');
        // A second signal, not the first delivered twice (a repeat within 100 ms is ignored): at least
        // that long after. Waiting longer changes nothing.
        await new Promise((resolve) => setTimeout(resolve, 3 * DUPLICATE_SIGNAL_MS));
        child.proc.kill(signal);
        const exit = await child.exited; // long before the 60 s drain would have ended
        assert.equal(exit.code, code);
        await child.logged('second signal during shutdown; exiting now');
      } finally {
        child.proc.kill('SIGKILL');
      }
    });
  }

  it('the same signal twice at once (a terminal and npm both sending SIGINT) is one: a graceful exit 0', async () => {
    const child = await startChild({ shutdownTimeoutMs: 60_000 });
    try {
      const held = request(`${child.base}/hold`).then((r) => r.statusCode);
      await child.logged('held');
      child.proc.kill('SIGINT');
      child.proc.kill('SIGINT');
      await child.logged('shutdown started: readiness failing, draining');
      child.proc.stdin!.write('release\n');
      assert.equal(await held, 200, 'the request in flight completes');
      assert.equal((await child.exited).code, 0);
      assert.ok(!child.stderr.some((l) => l.msg === 'second signal during shutdown; exiting now'));
    } finally {
      child.proc.kill('SIGKILL');
    }
  });
});

describe('installShutdown (in process, time on a FakeClock)', () => {
  it('drain: readiness fails at once, liveness stays 200, answers carry Connection: close; then the server closes after drainDelayMs and in-flight requests complete', async () => {
    const clock = new FakeClock();
    const app = createService({ logLevel: 'silent', shedding: false });
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    let entered: () => void = () => {};
    const heldStarted = new Promise<void>((resolve) => (entered = resolve));
    app.get('/hold', async () => {
      entered();
      await gate;
      return { done: true };
    });
    app.get('/quick', async () => ({ quick: true }));
    const base = await listen(app);
    const codes: number[] = [];
    const handle = installShutdown(app, {
      signals: [],
      clock,
      drainDelayMs: 5_000,
      shutdownTimeoutMs: 60_000,
      exit: (c) => codes.push(c),
    });
    const probe = new Pool(base, { connections: 1 });
    try {
      const held = request(`${base}/hold`).then(async (r) => ({
        status: r.statusCode,
        body: await r.body.json(),
      }));
      await heldStarted;
      assert.equal((await probe.request({ path: '/readyz', method: 'GET' })).statusCode, 200);
      const done = handle.shutdown('test');
      assert.equal(handle.started, true);

      const ready = await probe.request({ path: '/readyz', method: 'GET' });
      assert.equal(ready.statusCode, 503);
      assert.equal(ready.headers['retry-after'], '1');
      assert.deepEqual(await ready.body.json(), {
        status: 'fail',
        shuttingDown: true,
        checks: { shutdown: { status: 'fail', critical: true } },
      });
      const live = await probe.request({ path: '/livez', method: 'GET' });
      assert.equal(live.statusCode, 200);
      await live.body.dump();
      const quick = await request(`${base}/quick`);
      assert.equal(quick.statusCode, 200, 'still served while draining');
      assert.equal(quick.headers.connection, 'close');
      await quick.body.dump();
      assert.equal(app.server.listening, true, 'the listener stays open during the drain');

      await clock.advanceAsync(5_000); // the drain ends: app.close()
      open();
      assert.deepEqual(await held, { status: 200, body: { done: true } });
      // Its keep-alive connection goes idle: an idle sweep (every 100 ms) closes it, and the close completes.
      let code: number | undefined;
      void done.then((c) => (code = c));
      while (code === undefined) await clock.advanceAsync(100);
      assert.equal(code, 0);
      assert.equal(await handle.shutdown(), 0, 'idempotent');
      assert.equal(app.server.listening, false);
      await exited(codes);
      assert.deepEqual(codes, [0]);
      assert.equal(clock.pendingTimers, 0, 'the deadline and the sweep were cleared');
    } finally {
      open();
      handle.dispose();
      await probe.close();
      await app.close();
    }
  });

  it('the deadline closes every connection and exits 1 when a request never finishes', async () => {
    const clock = new FakeClock();
    const app = createService({ logLevel: 'silent', shedding: false });
    let entered: () => void = () => {};
    const heldStarted = new Promise<void>((resolve) => (entered = resolve));
    app.get('/never', async () => {
      entered();
      await new Promise(() => {});
    });
    const base = await listen(app);
    const codes: number[] = [];
    const handle = installShutdown(app, {
      signals: [],
      clock,
      shutdownTimeoutMs: 1_000,
      exit: (c) => codes.push(c),
    });
    try {
      const stuck = request(`${base}/never`).then(
        (r) => r.statusCode,
        (e: Error) => e.name,
      );
      await heldStarted;
      void handle.shutdown('test');
      await clock.advanceAsync(1_000);
      assert.notEqual(await stuck, 200, 'the connection was destroyed');
      await exited(codes);
      assert.deepEqual(codes, [1]);
    } finally {
      handle.dispose();
    }
  });

  it('validates its options', () => {
    const app = createService({ logLevel: 'silent', shedding: false });
    assert.throws(() => installShutdown(app, { shutdownTimeoutMs: 0 }), InvalidOptionError);
    assert.throws(() => installShutdown(app, { signals: ['SIGNOPE' as never] }), /shutdown\.signals/);
    assert.throws(() => installShutdown(app, { delayMs: 5 } as never), /shutdown\.delayMs/);
    assert.throws(() => installShutdown(app, { clock: {} as never }), /shutdown\.clock/);
    return app.close();
  });
});

/** Resolves once `exit` was called (it runs after the logger flushed). */
async function exited(codes: number[]): Promise<void> {
  while (codes.length === 0) await new Promise((resolve) => setImmediate(resolve));
}
