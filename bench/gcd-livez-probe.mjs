#!/usr/bin/env node
// Where /livez time goes under overload (issue 10, point 4): gcd-service at BENCH_FACTOR (10) × its capacity
// at default inputs (as gcd-shedding.mjs, pinned), probed every 100 ms three ways at once: a fresh TCP
// connection (connect → last byte) from the generator's process and from a separate process, the connect
// alone, and a request on an idle keep-alive connection. If the keep-alive probe is as slow as the fresh
// one, the time is the event loop's turn, not the listen backlog or the accept.
// `node bench/gcd-livez-probe.mjs` (after `npm run build`). Knobs: BENCH_FACTOR (10), BENCH_OVERLOAD_S (8),
// BENCH_GCD_ENV (JSON), BENCH_PROBE_THREAD=1 (also probe /livez served by a worker thread on its own port:
// bench/probe-thread-preload.mjs, a prototype loaded with --import).
import { connect } from 'node:net';
import { loadavg } from 'node:os';
import {
  closedLoop,
  CORES,
  f1,
  fibonacciPair,
  freePort,
  freshConnectionProbe,
  here,
  int,
  log,
  MAIN,
  machine,
  rawOpenLoop as openLoop,
  pct,
  pinSelf,
  probeProcess,
  requireBuilt,
  startServer,
  summarize,
} from './gcd-bench-lib.mjs';

const FACTOR = Number(process.env.BENCH_FACTOR ?? 10);
const OVERLOAD_S = int('BENCH_OVERLOAD_S', 8);
const THREAD = process.env.BENCH_PROBE_THREAD === '1';
const ENV = {
  LOG_LEVEL: 'warn',
  RATE_LIMIT_PER_SECOND: '1000000',
  RATE_LIMIT_BURST: '1000000',
  ...(process.env.BENCH_GCD_ENV ? JSON.parse(process.env.BENCH_GCD_ENV) : {}),
};

/** Every `everyMs`: connect only (time to the connect event), then close. */
function connectProbe(origin, everyMs = 100) {
  const { hostname, port } = new URL(origin);
  const out = [];
  const timer = setInterval(() => {
    const t0 = performance.now();
    const s = connect(Number(port), hostname, () => {
      out.push(performance.now() - t0);
      s.destroy();
    });
    s.on('error', () => out.push(Infinity));
  }, everyMs);
  return { stop: () => (clearInterval(timer), out) };
}

/** Every `everyMs`: GET path on one kept-alive connection (one request at a time). */
async function keepAliveProbe(origin, path, everyMs = 100) {
  const { hostname, port } = new URL(origin);
  const socket = await new Promise((resolve) => {
    const s = connect(Number(port), hostname, () => resolve(s));
  });
  socket.setNoDelay(true);
  const out = [];
  let t0 = 0;
  let busy = false;
  let buf = '';
  socket.on('data', (c) => {
    buf += c.toString('latin1');
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const m = /\r\ncontent-length: *(\d+)/i.exec(buf.slice(0, end));
    if (buf.length < end + 4 + Number(m?.[1] ?? 0)) return;
    out.push(performance.now() - t0);
    buf = '';
    busy = false;
  });
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    t0 = performance.now();
    socket.write(`GET ${path} HTTP/1.1\r\nHost: probe\r\n\r\n`);
  }, everyMs);
  return { stop: () => (clearInterval(timer), socket.destroy(), out) };
}

requireBuilt();
pinSelf();
const [a, b] = fibonacciPair(1000);
const path = `/api/gcd?n=${a}&m=${b}`;
const load = loadavg()
  .map((x) => x.toFixed(2))
  .join(' ');
let server = await startServer(MAIN, ENV);
const c = await closedLoop(server, path, { connections: 4, durationS: 4, warmupS: 1 });
const capacity = c['2xx'] / 4;
await server.stop();
const probePort = THREAD ? await freePort() : 0;
server = await startServer(
  MAIN,
  THREAD
    ? {
        ...ENV,
        NODE_OPTIONS: `--import ${here}probe-thread-preload.mjs`,
        BENCH_PROBE_PORT: String(probePort),
      }
    : ENV,
);
const fresh = freshConnectionProbe(server.origin, '/livez');
const separate = probeProcess(server.origin, '/livez');
const thread = THREAD ? probeProcess(`http://127.0.0.1:${probePort}`, '/livez') : undefined;
const conn = connectProbe(server.origin);
const kept = await keepAliveProbe(server.origin, '/livez');
const records = await openLoop(server.origin, path, {
  rate: capacity * FACTOR,
  seconds: OVERLOAD_S,
  connections: 256,
});
const freshMs = await fresh.stop();
const separateMs = await separate.stop();
const threadMs = thread ? await thread.stop() : [];
const connMs = conn.stop();
const keptMs = kept.stop();
await server.stop();
const r = summarize(records, OVERLOAD_S - 1);
const row = (name, xs) =>
  `| ${name} | ${xs.length} | ${f1(pct(xs, 50))} | ${f1(pct(xs, 90))} | ${f1(pct(xs, 99))} |\n`;
let md = `### /livez under ${FACTOR}× (${machine()}; server core ${CORES.server}, generator core ${CORES.generator}; load average ${load})\n\n`;
md += `C = ${f1(capacity)} req/s; ${FACTOR}× offered ${f1(r.offered)} req/s, goodput ${f1(r.goodput)} (${f1((100 * r.goodput) / capacity)} % of C). Probes every 100 ms during the whole run.\n\n`;
md += `| probe | n | p50 ms | p90 ms | p99 ms |\n| --- | ---: | ---: | ---: | ---: |\n`;
md += row(
  'fresh connection: connect → last byte, from the generator process (as gcd-shedding.mjs did)',
  freshMs,
);
md += row('fresh connection: connect → last byte, from a separate probe process', separateMs);
md += row('connect alone (kernel handshake)', connMs);
md += row('kept-alive connection: request → last byte', keptMs);
if (THREAD)
  md += row('fresh connection to a probe thread (prototype, own port), separate probe process', threadMs);
process.stdout.write(md);
log('done');
