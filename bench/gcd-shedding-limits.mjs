#!/usr/bin/env node
// Side by side: the concurrency-limit algorithm of gcd-service under overload (issue 10, point 4), at
// default 1000-digit inputs, server and generator pinned to different cores as in gcd-shedding.mjs.
// The unloaded p99 is measured once; then, in each of BENCH_ROUNDS rounds, capacity C again and, for each
// factor, every variant in turn (alternating), so the variants see the same machine state. After each run the
// server's /metrics gives the limit it ended at and how many requests the kit shed (the rest of the 503s
// came from the worker pool's own bound, after Fastify).
//
// `node bench/gcd-shedding-limits.mjs [out.md]` (after `npm run build`).
// Knobs (env): BENCH_VARIANTS (gradient2,fixed:8,fixed:16 — `name`, `name:SHED_LIMIT`, `…@base` for the
// build in BENCH_BASE, a copy of the repository built from another commit),
// BENCH_FACTORS (3,10), BENCH_ROUNDS (1), BENCH_OVERLOAD_S (6), BENCH_DIGITS (1000), BENCH_GCD_ENV (JSON),
// BENCH_SERVER_CORES / BENCH_CLIENT_CORES.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname } from 'node:path';
import {
  closedLoop,
  CORES,
  f0,
  f1,
  f2,
  fibonacciPair,
  probeProcess,
  here,
  int,
  log,
  MAIN,
  machine,
  rawOpenLoop as openLoop,
  pct,
  pinSelf,
  request,
  requireBuilt,
  startServer,
  summarize,
} from './gcd-bench-lib.mjs';

const OVERLOAD_S = int('BENCH_OVERLOAD_S', 6);
const DIGITS = int('BENCH_DIGITS', 1000);
const ROUNDS = int('BENCH_ROUNDS', 1);
const CONNECTIONS = int('BENCH_OVERLOAD_CONNECTIONS', 256);
const TIMEOUT_MS = 2000;
const BASE = process.env.BENCH_BASE;
const VARIANTS = (process.env.BENCH_VARIANTS ?? 'gradient2,fixed:8,fixed:16').split(',').map((v) => {
  const m = /^(gradient2|aimd|fixed)(?::(\d+))?(@base)?$/.exec(v);
  if (m === null) {
    throw new Error(
      `BENCH_VARIANTS: "${v}" is not gradient2|aimd|fixed, an optional :limit, an optional @base`,
    );
  }
  if (m[3] && !BASE) throw new Error(`BENCH_VARIANTS: "${v}" needs BENCH_BASE (a built checkout)`);
  return {
    name: m[3] ? `${m[1]}${m[2] ? `:${m[2]}` : ''} (baseline)` : v,
    main: m[3] ? `${BASE}/apps/gcd-service/dist/src/main.js` : MAIN,
    env: { SHED_ALGORITHM: m[1], ...(m[2] ? { SHED_LIMIT: m[2] } : {}) },
  };
});
const FACTORS = (process.env.BENCH_FACTORS ?? '3,10').split(',').map(Number);
if (FACTORS.some((f) => !(f > 0))) throw new Error('BENCH_FACTORS: positive numbers, comma separated');

const BASE_ENV = {
  LOG_LEVEL: 'warn',
  RATE_LIMIT_PER_SECOND: '1000000',
  RATE_LIMIT_BURST: '1000000',
  ...(process.env.BENCH_GCD_ENV ? JSON.parse(process.env.BENCH_GCD_ENV) : {}),
};
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

async function withServer(env, fn, main = MAIN) {
  const server = await startServer(main, { ...BASE_ENV, ...env });
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

async function scrape(origin) {
  const res = await request(`${origin}/metrics`);
  const text = await res.body.text();
  const value = (re) => {
    let sum = 0;
    for (const m of text.matchAll(re)) sum += Number(m[1]);
    return sum;
  };
  return {
    limit: value(/^bulwark_concurrency_limit(?:\{[^}]*\})? (\S+)$/gm),
    shedConcurrency: value(/^bulwark_shed_total\{[^}]*reason="concurrency"[^}]*\} (\S+)$/gm),
    shedEventLoop: value(/^bulwark_shed_total\{[^}]*reason="event_loop"[^}]*\} (\S+)$/gm),
  };
}

requireBuilt();
pinSelf();
const started = Date.now();
const [a, b] = fibonacciPair(DIGITS);
const path = `/api/gcd?n=${a}&m=${b}`;
const loadAtStart = load();
log(`capacity at ${DIGITS} digits (load ${loadAtStart})`);
const measureCapacity = () =>
  withServer({}, async (s) => {
    const r = await closedLoop(s, path, { connections: 4, durationS: 4, warmupS: 1 });
    return r['2xx'] / 4;
  });
const capacity = await measureCapacity();
log(`C ≈ ${f1(capacity)}/s; unloaded (0.5 C)`);
const unloaded = await withServer({}, async (s) =>
  summarize(await openLoop(s.origin, path, { rate: capacity * 0.5, seconds: 6, connections: 16 }), 5),
);
const rows = [];
for (let round = 0; round < ROUNDS; round++) {
  // C again for each round: the machine's state moves (goodput / C is against the round's own C)
  const roundC = round === 0 ? capacity : await measureCapacity();
  log(`round ${round + 1}: C ≈ ${f1(roundC)}/s`);
  for (const factor of FACTORS) {
    for (const variant of VARIANTS) {
      const la = load();
      log(`${factor}× C, ${variant.name}, round ${round + 1} (load ${la})`);
      rows.push(
        await withServer(
          variant.env,
          async (s) => {
            const probe = probeProcess(s.origin, '/livez');
            const records = await openLoop(s.origin, path, {
              rate: capacity * factor,
              seconds: OVERLOAD_S,
              connections: CONNECTIONS,
              timeoutMs: TIMEOUT_MS,
            });
            const livez = await probe.stop();
            const m = await scrape(s.origin);
            return {
              factor,
              capacity: roundC,
              variant: variant.name,
              round: round + 1,
              load: la,
              ...summarize(records, OVERLOAD_S - 1, TIMEOUT_MS),
              livezP50: pct(livez, 50),
              livezP99: pct(livez, 99),
              ...m,
            };
          },
          variant.main,
        ),
      );
    }
  }
}

let md = `### Concurrency-limit algorithms side by side (${DIGITS} digits, pool)\n\n`;
md += `Machine: ${machine()}; server pinned to core ${CORES.server}, load generator to core ${CORES.generator} (taskset). `;
md += `**The machine was busy** (other jobs on both cores): load average (1, 5, 15 min) ${loadAtStart} at the start, per run below. `;
md += `Command: \`node bench/gcd-shedding-limits.mjs\`${process.env.BENCH_VARIANTS ? ` with BENCH_VARIANTS=${process.env.BENCH_VARIANTS}` : ''}. `;
md += `Capacity C (closed loop, 4 connections) is measured again at the start of each round; goodput / C is against the round's C. Unloaded (open loop at 0.5 C, first round's C = ${f1(capacity)} req/s): p50 ${f2(unloaded.p50)} ms, p99 ${f2(unloaded.p99)} ms. `;
md += BASE ? `"(baseline)" = the build in \`${BASE}\`. ` : '';
md += `Each run: a fresh server, open loop over ${CONNECTIONS} keep-alive connections for ${OVERLOAD_S} s (first second excluded), a fresh connection to /livez every 100 ms from a separate process; variants alternate within each factor. `;
md += `"limit at end" and "kit shed" are read from the server's /metrics after the run; the other 503s are the pool's own refusals (\`GCD_ERR_BUSY\`, after Fastify).\n\n`;
md += `| round (C req/s) | offered | variant | load avg | goodput / C | admitted p50 ms | admitted p99 ms | p99 / unloaded | /livez p50 / p99 ms | 503+429 | kit shed | event-loop shed | limit at end | timeouts | with Retry-After |\n`;
md += `| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n`;
for (const r of rows) {
  md += `| ${r.round} (${f0(r.capacity)}) | ${r.factor}× | ${r.variant} | ${r.load} | **${f0((100 * r.goodput) / r.capacity)} %** | ${f2(r.p50)} | ${f2(r.p99)} | **${f2(r.p99 / unloaded.p99)}×** | ${f1(r.livezP50)} / **${f1(r.livezP99)}** | ${f0(r.rejected)} | ${f0(r.shedConcurrency)} | ${f0(r.shedEventLoop)} | ${f0(r.limit)} | ${r.timeouts} | ${r.rejected === 0 ? 'n/a' : `${f0((100 * r.withRetryAfter) / r.rejected)} %`} |\n`;
}
md += `\nBars: goodput ≥ 90 % of C, admitted p99 ≤ 3× unloaded, /livez p99 ≤ 50 ms.\n\n_Whole run: ${f0((Date.now() - started) / 1000)} s._\n`;
process.stdout.write(md);
const out = process.argv[2] ?? `${here}results/gcd-shedding-limits.md`;
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, md);
log(`written to ${out}`);
