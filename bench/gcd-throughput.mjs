#!/usr/bin/env node
// gcd-service throughput, re-based (issue 10, point 5): GET /api/gcd (two u64, inline), each server a
// fresh process pinned to one core, the load generator (autocannon, closed loop) pinned to another. One
// command: `node bench/gcd-throughput.mjs` (after `npm run build`); writes bench/results/gcd-service.md.
//
//   bare      — bench/gcd-bare-server.mjs: bare Fastify, the same route, nothing else;
//   headers   — the same, sending the response headers the full stack sends (copied from a live answer);
//   full      — apps/gcd-service on its defaults (JSON logs at info, metrics, security headers, request
//               ids, validation, adaptive load shedding, timeouts, a rate limit far above one generator);
//   handmade  — bench/gcd-handmade-server.mjs: Fastify + @fastify/helmet + @fastify/rate-limit +
//               @fastify/under-pressure + fastify-metrics + pino request logging + @fastify/otel;
//   full+otel / handmade+otel — the last two with tracing on, exporting (batched, OTLP/HTTP) to a sink
//               in this process.
// Bars: (a) full's server CPU per request ≤ 1.15× headers'; (b) full ≥ 1.5× handmade's throughput (both
// with tracing on, and both with it off); (c) no gcd debug header on this answer (it carries nothing).
// Knobs (env): BENCH_ROUNDS (3), BENCH_DURATION_S (6), BENCH_WARMUP_S (2), BENCH_CONNECTIONS (50).
import { createServer } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import {
  closedLoop,
  CORES,
  f0,
  f1,
  f2,
  here,
  int,
  log,
  MAIN,
  machine,
  median,
  pinSelf,
  request,
  requireBuilt,
  startServer,
} from './gcd-bench-lib.mjs';
import { dirname } from 'node:path';

const ROUNDS = int('BENCH_ROUNDS', 3);
const DURATION_S = int('BENCH_DURATION_S', 6);
const WARMUP_S = int('BENCH_WARMUP_S', 2);
const CONNECTIONS = int('BENCH_CONNECTIONS', 50);
const PATH = '/api/gcd?n=18446744073709551615&m=12297829382473034410';
const BARE = `${here}gcd-bare-server.mjs`;
const HANDMADE = `${here}gcd-handmade-server.mjs`;
const FULL_ENV = { LOG_LEVEL: 'info', RATE_LIMIT_PER_SECOND: '1000000', RATE_LIMIT_BURST: '1000000' };

/** An OTLP/HTTP sink: accepts every export and throws it away (counts spans' bytes). */
async function otlpSink() {
  let bytes = 0;
  const server = createServer((req, res) => {
    req.on('data', (c) => (bytes += c.length));
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    get bytes() {
      return bytes;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** The response headers of the full stack that bare Fastify does not send. */
async function fullStackHeaders() {
  const server = await startServer(MAIN, FULL_ENV);
  try {
    const res = await request(`${server.origin}${PATH}`);
    await res.body.dump();
    const skip = new Set(['date', 'connection', 'keep-alive', 'content-length', 'content-type']);
    return Object.fromEntries(Object.entries(res.headers).filter(([name]) => !skip.has(name)));
  } finally {
    await server.stop();
  }
}

const LABELS = {
  bare: 'bare Fastify',
  headers: 'bare Fastify + the same response headers',
  full: 'gcd-service (full stack)',
  handmade: 'hand-assembled stack',
  'full+otel': 'gcd-service, tracing on',
  'handmade+otel': 'hand-assembled, tracing on',
};
const KINDS = Object.keys(LABELS);

async function measure(kind, headers, sink) {
  const otel = { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: sink.url };
  const server =
    kind === 'full'
      ? await startServer(MAIN, FULL_ENV)
      : kind === 'full+otel'
        ? await startServer(MAIN, { ...FULL_ENV, ...otel })
        : kind === 'handmade'
          ? await startServer(HANDMADE, {})
          : kind === 'handmade+otel'
            ? await startServer(HANDMADE, { ...otel, HANDMADE_TRACING: 'otlp' })
            : await startServer(
                BARE,
                kind === 'headers' ? { BARE_EXTRA_HEADERS: JSON.stringify(headers) } : {},
                PATH,
              );
  try {
    return await closedLoop(server, PATH, {
      connections: CONNECTIONS,
      durationS: DURATION_S,
      warmupS: WARMUP_S,
    });
  } finally {
    await server.stop();
  }
}

requireBuilt();
pinSelf();
const started = Date.now();
const sink = await otlpSink();
const headers = await fullStackHeaders();
const rows = Object.fromEntries(KINDS.map((k) => [k, []]));
for (let round = 0; round < ROUNDS; round++) {
  const order = KINDS.map((_, i) => KINDS[(i + round) % KINDS.length]);
  for (const kind of order) {
    log(`round ${round + 1}/${ROUNDS}: ${kind}`);
    rows[kind].push(await measure(kind, headers, sink));
  }
}
await sink.close();

const med = (kind, key) => median(rows[kind].map((r) => r[key]));
const low = (kind, key) => Math.min(...rows[kind].map((r) => r[key]));
const perRound = (a, b, key) => rows[a].map((r, i) => r[key] / rows[b][i][key]);
const cpuA = perRound('full', 'headers', 'serverUs');
const rpsB = perRound('full', 'handmade', 'rps');
const rpsBOtel = perRound('full+otel', 'handmade+otel', 'rps');
const cpuB = perRound('handmade', 'full', 'serverUs');
const cpuBOtel = perRound('handmade+otel', 'full+otel', 'serverUs');
const debug = Object.keys(headers).filter((h) => h.startsWith('x-gcd-'));

let md = `## gcd-service: throughput and CPU per request\n\n`;
md += `Machine: ${machine()}; each server a fresh process pinned to core ${CORES.server}, autocannon (closed loop, -c ${CONNECTIONS}, no pipelining) pinned to core ${CORES.generator}. `;
md += `Command: \`node bench/gcd-throughput.mjs\` — ${ROUNDS} rounds, rotating order, ${WARMUP_S} s warm-up then ${DURATION_S} s measured per server; request \`GET /api/gcd\` with two u64 (computed inline). `;
md += `Server CPU per request: the server process's user + system time (/proc, every thread) over the measured seconds ÷ requests answered — it hardly moves when other jobs share the machine, unlike req/s. `;
md += `The full stack adds these ${Object.keys(headers).length} response headers to bare Fastify's: ${Object.keys(
  headers,
)
  .map((h) => `\`${h}\``)
  .join(', ')}. `;
md += `The hand-assembled stack: Fastify + @fastify/helmet + @fastify/rate-limit + @fastify/under-pressure + fastify-metrics + pino request logging + @fastify/otel, all on (bench/gcd-handmade-server.mjs). "Tracing on": both export their spans (batched, OTLP/HTTP) to a sink in the generator's process.\n\n`;
md += `| server | req/s (median) | req/s range | server CPU µs/request (median; lowest) | p50 ms | p99 ms | non-2xx | errors |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n`;
for (const kind of KINDS) {
  const r = rows[kind];
  const rps = r.map((x) => x.rps);
  md += `| ${LABELS[kind]} | ${f0(median(rps))} | ${f0(Math.min(...rps))} – ${f0(Math.max(...rps))} | ${f1(med(kind, 'serverUs'))}; ${f1(low(kind, 'serverUs'))} | ${f2(med(kind, 'p50'))} | ${f2(med(kind, 'p99'))} | ${r.reduce((a, x) => a + x.non2xx, 0)} | ${r.reduce((a, x) => a + x.errors, 0)} |\n`;
}
md += `\n- **(a)** full stack / bare Fastify sending the same headers, server CPU per request: **${f2(median(cpuA))}×** (rounds ${cpuA.map(f2).join(', ')}; lowest-CPU rounds ${f2(low('full', 'serverUs') / low('headers', 'serverUs'))}×). Bar ≤ 1.15×.\n`;
md += `- **(b)** full stack / hand-assembled stack, throughput: tracing on **${f2(median(rpsBOtel))}×** (rounds ${rpsBOtel.map(f2).join(', ')}), tracing off **${f2(median(rpsB))}×** (rounds ${rpsB.map(f2).join(', ')}); the same in server CPU per request (hand-assembled ÷ full): tracing on ${f2(median(cpuBOtel))}×, off ${f2(median(cpuB))}×. Bar ≥ 1.5×.\n`;
md += `- **(c)** gcd debug headers on this answer (no validator, computed inline): ${debug.length === 0 ? 'none' : debug.join(', ')} — \`x-gcd-validation\` is sent only with a validator, \`x-gcd-compute: pool\` only when the pool computed the answer.\n\n`;
md += `_Whole run: ${f0((Date.now() - started) / 1000)} s._\n`;
process.stdout.write(md);
const out = process.argv[2] ?? `${here}results/gcd-service.md`;
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, md);
log(`written to ${out}`);
