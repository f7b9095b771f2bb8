#!/usr/bin/env node
// gcd-service under overload (issue 10, point 4), the load generator pinned to one core and the service
// to another (taskset). One command: `node bench/gcd-shedding.mjs` (after `npm run build`); bounded in
// time (~3 min with the defaults); writes bench/results/gcd-shedding.md.
//
// 1. Default 1000-digit inputs (a Fibonacci pair, Euclid's worst case, computed in the worker pool):
//    capacity C (closed loop), unloaded latency (open loop at 0.5 C), then 3× and 10× C open loop over
//    OVERLOAD_CONNECTIONS keep-alive connections, latency from each intended send time; meanwhile a probe
//    (a separate process, bench/livez-prober.mjs) opens a fresh connection to /livez every 100 ms. Bars: goodput ≥ 90 % of C, admitted p99 ≤ 3×
//    unloaded p99, /livez p99 ≤ 50 ms, every 503 with Retry-After.
// 2. Cheap inline requests (two u64) from 1000 connections: capacity C_inline (closed loop), then open
//    loop at rising multiples of it; at each step the admitted p99 and the share shed. Bar: shedding
//    starts before the admitted p99 passes 3× the unloaded p99.
//
// Knobs (env): BENCH_OVERLOAD_S (8), BENCH_DIGITS (1000), BENCH_INLINE_STEPS (0.25,0.5,1,1.5,2,3),
// BENCH_SERVER_CORES / BENCH_CLIENT_CORES (default: the last core / the one before it).
import { mkdirSync, writeFileSync } from 'node:fs';
import {
  closedLoop,
  CORES,
  f0,
  f1,
  f2,
  fibonacciPair,
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
import { dirname } from 'node:path';

const OVERLOAD_S = int('BENCH_OVERLOAD_S', 8);
const DIGITS = int('BENCH_DIGITS', 1000);
const OVERLOAD_CONNECTIONS = int('BENCH_OVERLOAD_CONNECTIONS', 256);
const INLINE_CONNECTIONS = int('BENCH_INLINE_CONNECTIONS', 1000);
const INLINE_STEPS = (process.env.BENCH_INLINE_STEPS ?? '0.25,0.5,1,1.5,2,3').split(',').map(Number);
const TIMEOUT_MS = 2000;

/** gcd-service on its production defaults; the rate limit on but far above one generator's rate. */
const ENV = {
  LOG_LEVEL: 'warn',
  RATE_LIMIT_PER_SECOND: '1000000',
  RATE_LIMIT_BURST: '1000000',
  ...(process.env.BENCH_GCD_ENV ? JSON.parse(process.env.BENCH_GCD_ENV) : {}),
};

async function withServer(fn) {
  const server = await startServer(MAIN, ENV);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

async function poolBound() {
  const [a, b] = fibonacciPair(DIGITS);
  const path = `/api/gcd?n=${a}&m=${b}`;
  log(`1: capacity at ${DIGITS} digits`);
  const capacity = await withServer(async (s) => {
    const r = await closedLoop(s, path, { connections: 4, durationS: 5, warmupS: 2 });
    return r['2xx'] / 5;
  });
  log(`1: C ≈ ${f1(capacity)}/s; unloaded (0.5 C)`);
  const unloaded = await withServer(async (s) =>
    summarize(
      await openLoop(s.origin, path, {
        rate: capacity * 0.5,
        seconds: 6,
        connections: 16,
        timeoutMs: TIMEOUT_MS,
      }),
      5,
    ),
  );
  const rows = [];
  for (const factor of [3, 10]) {
    log(`1: ${factor}× C`);
    rows.push(
      await withServer(async (s) => {
        const probe = probeProcess(s.origin, '/livez');
        const records = await openLoop(s.origin, path, {
          rate: capacity * factor,
          seconds: OVERLOAD_S,
          connections: OVERLOAD_CONNECTIONS,
          timeoutMs: TIMEOUT_MS,
        });
        const livez = await probe.stop();
        return {
          factor,
          ...summarize(records, OVERLOAD_S - 1, TIMEOUT_MS),
          livezP99: pct(livez, 99),
          livezN: livez.length,
        };
      }),
    );
  }
  let md = `### Default inputs (${DIGITS} digits, pool), 3× and 10× capacity\n\n`;
  md += `\`GET /api/gcd\` with consecutive Fibonacci numbers of ${DIGITS} digits (Euclid's worst case; \`MAX_DIGITS\` is 1000 by default), computed in the worker pool (1 thread: the service has one core). `;
  md += `Capacity C = **${f1(capacity)} req/s** (closed loop, 4 connections, 2xx per second). Unloaded (open loop at 0.5 C): p50 ${f2(unloaded.p50)} ms, p99 ${f2(unloaded.p99)} ms. `;
  md += `Open loop over ${OVERLOAD_CONNECTIONS} keep-alive connections (raw sockets), ${OVERLOAD_S} s per run (first second excluded), latency from each request's intended send time, client timeout ${TIMEOUT_MS} ms; goodput = 200s within it. `;
  md += `/livez: a new TCP connection every 100 ms during the run, connect to last byte, from a separate process on the generator's core (in the generator's own process its event loop lag was counted too: 13.7 against 4.5 ms p50, 601 against 397 ms p99 in one 10× run).\n\n`;
  md += `| offered | offered req/s | goodput req/s | goodput / C | admitted p50 ms | admitted p99 ms | p99 / unloaded p99 | /livez p99 ms (fresh connection) | 503+429 | with Retry-After | client timeouts | other |\n`;
  md += `| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n`;
  for (const r of rows) {
    md += `| ${r.factor}× | ${f0(r.offered)} | ${f0(r.goodput)} | **${f0((100 * r.goodput) / capacity)} %** | ${f2(r.p50)} | ${f2(r.p99)} | **${f2(r.p99 / unloaded.p99)}×** | **${f1(r.livezP99)}** | ${f0(r.rejected)} (${f0(100 * r.rejectedShare)} %) | ${r.rejected === 0 ? 'n/a' : `${f0((100 * r.withRetryAfter) / r.rejected)} %`} | ${r.timeouts} | ${r.other} |\n`;
  }
  md += `\nBars: goodput ≥ 90 % of C, admitted p99 ≤ 3× unloaded, /livez p99 ≤ 50 ms, every 503 with Retry-After.\n\n`;
  return { md, capacity, unloaded, rows };
}

async function inline() {
  const path = '/api/gcd?n=18446744073709551615&m=12297829382473034410';
  log('2: inline capacity');
  const capacity = await withServer(async (s) => {
    const r = await closedLoop(s, path, { connections: 50, durationS: 5, warmupS: 2 });
    return r['2xx'] / 5;
  });
  const rows = [];
  for (const factor of INLINE_STEPS) {
    log(`2: ${factor}× C_inline from ${INLINE_CONNECTIONS} connections`);
    rows.push(
      await withServer(async (s) => {
        const records = await openLoop(s.origin, path, {
          rate: capacity * factor,
          seconds: 5,
          connections: INLINE_CONNECTIONS,
          timeoutMs: TIMEOUT_MS,
        });
        return { factor, ...summarize(records, 4, TIMEOUT_MS) };
      }),
    );
  }
  const unloadedP99 = rows[0].p99;
  let md = `### Inline requests from ${INLINE_CONNECTIONS} connections\n\n`;
  md += `\`GET /api/gcd\` with two u64 (computed on the event loop). Capacity C_inline = **${f0(capacity)} req/s** (closed loop, 50 connections). `;
  md += `Open loop over ${INLINE_CONNECTIONS} keep-alive connections (round robin, raw sockets: a few µs of client CPU per request), 5 s per step (first second excluded). Unloaded p99 = the ${INLINE_STEPS[0]}× step's (${f2(unloadedP99)} ms). `;
  md += `The generator has one core: where "offered" falls short of the target, it could not send faster.\n\n`;
  md += `| target | offered req/s | goodput req/s | admitted p50 ms | admitted p99 ms | p99 / unloaded | shed (503) | with Retry-After | client timeouts |\n`;
  md += `| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n`;
  for (const r of rows) {
    md += `| ${r.factor}× | ${f0(r.offered)} | ${f0(r.goodput)} | ${f2(r.p50)} | ${f2(r.p99)} | ${f2(r.p99 / unloadedP99)}× | ${f0(100 * r.rejectedShare)} % | ${r.rejected === 0 ? 'n/a' : `${f0((100 * r.withRetryAfter) / r.rejected)} %`} | ${r.timeouts} |\n`;
  }
  const firstShed = rows.find((r) => r.rejectedShare > 0.001);
  const over = rows.find((r) => r.p99 > 3 * unloadedP99);
  md += `\nBar: shedding starts before the admitted p99 passes 3× unloaded — first step with shedding: ${firstShed ? `${firstShed.factor}× (p99 ${f2(firstShed.p99 / unloadedP99)}× unloaded)` : 'none'}; first step past 3×: ${over ? `${over.factor}×${over.rejectedShare > 0.001 ? ' (shedding)' : ' (not shedding)'}` : 'none'}.\n\n`;
  return { md, capacity, rows };
}

requireBuilt();
pinSelf();
const started = Date.now();
let md = `## gcd-service: shedding under overload\n\n`;
md += `Machine: ${machine()}; server pinned to core ${CORES.server}, load generator to core ${CORES.generator} (taskset). Command: \`node bench/gcd-shedding.mjs\`.\n\n`;
const parts = (process.env.BENCH_PARTS ?? 'pool,inline').split(',');
if (parts.includes('pool')) md += (await poolBound()).md;
if (parts.includes('inline')) md += (await inline()).md;
md += `_Whole run: ${f0((Date.now() - started) / 1000)} s._\n`;
process.stdout.write(md);
const out = process.argv[2] ?? `${here}results/gcd-shedding.md`;
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, md);
log(`written to ${out}`);
