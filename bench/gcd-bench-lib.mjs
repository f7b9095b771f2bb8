// Shared by the gcd-service benchmarks (bench/gcd-*.mjs, bench/service-*.mjs): pinning to cores,
// starting servers as separate processes, CPU accounting from /proc, closed- and open-loop load with
// latency from each request's intended send time, and a probe that opens a fresh connection each time.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import os from 'node:os';
import autocannon from 'autocannon';
import { Client, Pool, request } from 'undici';
import { fileURLToPath } from 'node:url';
import { machine, processCpuSeconds } from './lib.mjs';

export const here = fileURLToPath(new URL('.', import.meta.url));
export const root = fileURLToPath(new URL('..', import.meta.url));
export const MAIN = `${root}apps/gcd-service/dist/src/main.js`;

export const log = (...args) => console.error('[gcd-bench]', ...args);

export function int(name, fallback) {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Number.parseInt(v, 10);
}

export function requireBuilt() {
  if (!existsSync(MAIN)) {
    console.error(`${MAIN} is missing: build first (npm run build).`);
    process.exit(1);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Cores

/** The cores the load generator (this process) and the servers run on. */
export const CORES = (() => {
  const n = os.availableParallelism();
  const server = process.env.BENCH_SERVER_CORES ?? (n >= 2 ? String(n - 1) : '0');
  const generator = process.env.BENCH_CLIENT_CORES ?? (n >= 2 ? String(n - 2) : '0');
  return { server, generator, pinned: n >= 2 && hasTaskset() };
})();

function hasTaskset() {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Pins this process (every thread) to the generator's cores. */
export function pinSelf() {
  if (!CORES.pinned) {
    log('taskset not available or a single core: nothing pinned');
    return;
  }
  execFileSync('taskset', ['-a', '-cp', CORES.generator, String(process.pid)], { stdio: 'ignore' });
  log(`load generator pinned to core ${CORES.generator}; servers to core ${CORES.server}`);
}

// ---------------------------------------------------------------------------------------------------------
// Servers

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts `node script` pinned to the server cores, with `env` (plus PORT, HOST), and waits until
 * `readyPath` answers 200. Returns { origin, pid, stop() }.
 */
export async function startServer(script, env, readyPath = '/livez') {
  const port = await freePort();
  const args = [process.execPath, script];
  const cmd = CORES.pinned ? 'taskset' : args.shift();
  const argv = CORES.pinned ? ['-c', CORES.server, ...args] : args;
  const child = spawn(cmd, argv, {
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  const origin = `http://127.0.0.1:${port}`;
  const end = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${script} exited ${child.exitCode}: ${stderr}`);
    try {
      const res = await request(`${origin}${readyPath}`);
      await res.body.dump();
      if (res.statusCode === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error(`${script} did not answer within 20 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    origin,
    pid: child.pid,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Load

export function cannon(url, options) {
  return new Promise((resolve, reject) => {
    autocannon({ url, pipelining: 1, ...options }, (error, result) =>
      error ? reject(error) : resolve(result),
    );
  });
}

/** Closed loop: `connections` clients as fast as the server answers; req/s and server CPU µs/request. */
export async function closedLoop(server, path, { connections, durationS, warmupS, headers }) {
  const url = `${server.origin}${path}`;
  if (warmupS > 0) await cannon(url, { connections, duration: warmupS, headers });
  const cpu0 = processCpuSeconds(server.pid);
  const r = await cannon(url, { connections, duration: durationS, headers });
  const n = r.requests.total;
  const statuses = { '2xx': r['2xx'], non2xx: r.non2xx, errors: r.errors + r.timeouts };
  return {
    rps: n / durationS,
    serverUs: ((processCpuSeconds(server.pid) - cpu0) * 1e6) / n,
    p50: r.latency.p50,
    p99: r.latency.p99,
    ...statuses,
  };
}

export const pct = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
export const median = (xs) => pct(xs, 50);

/**
 * Open loop: `rate` requests per second for `seconds` over exactly `connections` keep-alive connections
 * (round robin, opened first), latency measured from each request's intended send time (so a slow
 * server cannot slow the generator down: no coordinated omission). The first `warmupS` seconds are not
 * counted. Returns the counted records.
 */
export async function openLoop(origin, path, { rate, seconds, connections, timeoutMs = 2000, warmupS = 1 }) {
  const clients = Array.from(
    { length: connections },
    () => new Client(origin, { pipelining: 1, keepAliveTimeout: 60_000, connect: { timeout: 10_000 } }),
  );
  // Open every connection before the clock starts.
  await Promise.all(
    clients.map((c) =>
      c.request({ path: '/livez', method: 'GET' }).then(
        (r) => r.body.dump(),
        () => undefined,
      ),
    ),
  );
  const total = Math.max(1, Math.round(rate * seconds));
  const records = [];
  const start = performance.now() + 50;
  let sent = 0;
  let next = 0;
  await new Promise((resolve) => {
    let pending = total;
    const done = () => {
      if (--pending === 0) resolve();
    };
    const fire = (intended) => {
      const client = clients[next++ % clients.length];
      client
        .request({ path, method: 'GET', signal: AbortSignal.timeout(timeoutMs) })
        .then(async (res) => {
          await res.body.dump();
          records.push({
            intended,
            latency: performance.now() - intended,
            status: res.statusCode,
            retryAfter: res.headers['retry-after'] !== undefined,
          });
        })
        .catch(() => records.push({ intended, latency: performance.now() - intended, status: 0 }))
        .finally(done);
    };
    const tick = () => {
      const now = performance.now();
      while (sent < total && start + (sent * 1000) / rate <= now) {
        fire(start + (sent * 1000) / rate);
        sent++;
      }
      if (sent < total) setTimeout(tick, 1);
    };
    setTimeout(tick, 50);
  });
  await Promise.all(clients.map((c) => c.destroy()));
  return records.filter((r) => r.intended - start >= warmupS * 1000);
}

/**
 * The same open loop on raw sockets: prebuilt request bytes written to `connections` keep-alive
 * connections (round robin; a busy connection pipelines), responses parsed by their Content-Length. Its
 * client cost per request is a few µs (undici's is tens), so one core can offer tens of thousands of
 * requests per second. A response later than `timeoutMs` counts as a timeout (status 0).
 */
export async function rawOpenLoop(
  origin,
  path,
  { rate, seconds, connections, timeoutMs = 2000, warmupS = 1 },
) {
  const { hostname, port } = new URL(origin);
  const requestBytes = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: bench\r\n\r\n`, 'latin1');
  const records = [];
  const sockets = await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise((resolve) => {
          const socket = connect(Number(port), hostname, () => resolve(socket));
          socket.setNoDelay(true);
          socket.bench = { pending: [], buffer: '' };
          socket.on('error', () => {});
          socket.on('close', () => {
            for (const intended of socket.bench.pending.splice(0))
              records.push({ intended, latency: Infinity, status: 0 });
          });
          socket.on('data', (chunk) => {
            socket.bench.buffer += chunk.toString('latin1');
            for (;;) {
              const buf = socket.bench.buffer;
              const headEnd = buf.indexOf('\r\n\r\n');
              if (headEnd < 0) return;
              const head = buf.slice(0, headEnd);
              const m = /\r\ncontent-length: *(\d+)/i.exec(head);
              const total = headEnd + 4 + (m ? Number(m[1]) : 0);
              if (buf.length < total) return;
              socket.bench.buffer = buf.slice(total);
              const intended = socket.bench.pending.shift();
              if (intended === undefined) continue;
              const latency = performance.now() - intended;
              records.push({
                intended,
                latency,
                status: latency > timeoutMs ? 0 : Number(head.slice(9, 12)),
                retryAfter: /\r\nretry-after:/i.test(head),
              });
            }
          });
        }),
    ),
  );
  const total = Math.max(1, Math.round(rate * seconds));
  const start = performance.now() + 50;
  let sent = 0;
  let next = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (sent < total && start + (sent * 1000) / rate <= now) {
        const intended = start + (sent * 1000) / rate;
        const socket = sockets[next++ % sockets.length];
        if (socket.destroyed) records.push({ intended, latency: Infinity, status: 0 });
        else {
          socket.bench.pending.push(intended);
          socket.write(requestBytes);
        }
        sent++;
      }
      if (sent < total) setImmediate(tick);
      else resolve();
    };
    setTimeout(tick, 50);
  });
  // Wait for the answers still due (at most the client timeout), then give up on the rest.
  const deadline = performance.now() + timeoutMs;
  while (sockets.some((s) => s.bench.pending.length > 0) && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  for (const s of sockets) s.destroy();
  return records.filter((r) => r.intended - start >= warmupS * 1000);
}

/** Summary of open-loop records over `windowS` seconds. */
export function summarize(records, windowS, timeoutMs = 2000) {
  const ok = records.filter((r) => r.status === 200 && r.latency <= timeoutMs);
  const rejected = records.filter((r) => r.status === 503 || r.status === 429);
  return {
    offered: records.length / windowS,
    goodput: ok.length / windowS,
    p50: pct(
      ok.map((r) => r.latency),
      50,
    ),
    p99: pct(
      ok.map((r) => r.latency),
      99,
    ),
    rejected: rejected.length,
    rejectedShare: rejected.length / Math.max(1, records.length),
    withRetryAfter: rejected.filter((r) => r.retryAfter).length,
    timeouts: records.filter((r) => r.status === 0).length,
    other: records.filter((r) => ![0, 200, 429, 503].includes(r.status)).length,
    total: records.length,
  };
}

/**
 * A probe on a fresh TCP connection every `everyMs` until stopped: connect, `GET path`, read the whole
 * answer, close. Resolves (on stop) with the latencies in ms (failures count as `Infinity`).
 */
export function freshConnectionProbe(origin, path, everyMs = 100, timeoutMs = 5000) {
  const { hostname, port } = new URL(origin);
  const latencies = [];
  const inflight = new Set();
  const once = () => {
    const t0 = performance.now();
    const p = new Promise((resolve) => {
      const socket = connect(Number(port), hostname);
      let data = '';
      const finish = (ok) => {
        clearTimeout(timer);
        socket.destroy();
        latencies.push(ok ? performance.now() - t0 : Infinity);
        resolve();
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      socket.on('connect', () =>
        socket.write(`GET ${path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n`),
      );
      socket.on('data', (c) => (data += c));
      socket.on('end', () => finish(/^HTTP\/1\.1 200/.test(data)));
      socket.on('error', () => finish(false));
    });
    inflight.add(p);
    p.then(() => inflight.delete(p));
  };
  const timer = setInterval(once, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(inflight);
      return latencies;
    },
  };
}

/**
 * {@link freshConnectionProbe} run in a separate process (bench/livez-prober.mjs), pinned to the
 * generator's cores: the probe's latencies then carry the server's delay, not the load generator's event
 * loop lag. Resolves (on stop) with the latencies in ms (failures as `Infinity`).
 */
export function probeProcess(origin, path, everyMs = 100) {
  const args = [process.execPath, `${here}livez-prober.mjs`, origin, path, String(everyMs)];
  const cmd = CORES.pinned ? 'taskset' : args.shift();
  const child = spawn(cmd, CORES.pinned ? ['-c', CORES.generator, ...args] : args, {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    async stop() {
      child.stdin.end();
      const code = await exited;
      if (code !== 0) throw new Error(`livez-prober exited ${code}`);
      return JSON.parse(out).map((x) => x ?? Infinity);
    },
  };
}

/** Fibonacci neighbours of at least `digits` digits (Euclid's worst case). */
export function fibonacciPair(digits) {
  let a = 1n;
  let b = 1n;
  const min = 10n ** BigInt(digits - 1);
  while (b < min) [a, b] = [b, a + b];
  return [b, a];
}

export const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
export const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
export const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');

export { Pool, request, machine, processCpuSeconds };
