#!/usr/bin/env node
// What a refusal costs the server (issue 10, point 4: "cheap rejections"): server CPU per request of a
// 503 from the load shedder and of a 429 from the rate limiter, beside an answered request of the same
// server and bare Fastify's answer — each server a fresh process pinned to one core, autocannon (closed
// loop, -c 50) pinned to another. One command: `node bench/service-rejections.mjs` (after
// `npm run build`); writes bench/results/gcd-rejections.md.
// Knobs (env): BENCH_ROUNDS (3), BENCH_DURATION_S (5), BENCH_CONNECTIONS (50), BENCH_CASES (all: a
// comma-separated subset of bare,answered,shed,limited), BENCH_BASELINE (the root of another built
// checkout: its kit's 503 and 429 are measured in the same rounds, for a before/after side by side).
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
  machine,
  median,
  pinSelf,
  request,
  requireBuilt,
  startServer,
} from './gcd-bench-lib.mjs';
import { dirname } from 'node:path';

const ROUNDS = int('BENCH_ROUNDS', 3);
const DURATION_S = int('BENCH_DURATION_S', 5);
const CONNECTIONS = int('BENCH_CONNECTIONS', 50);
const KIT = `${here}service-kit-server.mjs`;
const BARE = `${here}gcd-bare-server.mjs`;
const U64 = '/api/gcd?n=18446744073709551615&m=12297829382473034410';

const CASES = {
  bare: {
    label: 'bare Fastify, 200 (`GET /api/gcd`, two u64)',
    script: BARE,
    env: {},
    path: U64,
    ready: U64,
  },
  answered: { label: 'kit, 200 (`GET /fast`, defaults)', script: KIT, env: {}, path: '/fast' },
  shed: {
    label: 'kit, 503 shed (concurrency limit full)',
    script: KIT,
    env: { SERVER_MODE: 'shed' },
    path: '/fast',
  },
  limited: { label: 'kit, 429 rate-limited', script: KIT, env: { SERVER_MODE: 'ratelimit' }, path: '/fast' },
};
const BASELINE = process.env.BENCH_BASELINE;
if (BASELINE !== undefined && BASELINE !== '') {
  const kit = `${BASELINE.replace(/\/$/, '')}/bench/service-kit-server.mjs`;
  CASES.shedBaseline = { ...CASES.shed, label: `${CASES.shed.label} — baseline (${BASELINE})`, script: kit };
  CASES.limitedBaseline = {
    ...CASES.limited,
    label: `${CASES.limited.label} — baseline (${BASELINE})`,
    script: kit,
  };
}
const ONLY = process.env.BENCH_CASES?.split(',');

async function measure(name) {
  const c = CASES[name];
  const server = await startServer(c.script, c.env, c.ready ?? '/livez');
  try {
    if (name === 'shed' || name === 'shedBaseline') {
      // one request holds the only slot for the whole run
      void request(`${server.origin}/hold`).catch(() => undefined);
      for (;;) {
        const res = await request(`${server.origin}/fast`);
        await res.body.dump();
        if (res.statusCode === 503) break;
      }
    }
    if (name === 'limited' || name === 'limitedBaseline')
      await (await request(`${server.origin}/fast`)).body.dump(); // the one token
    const r = await closedLoop(server, c.path, {
      connections: CONNECTIONS,
      durationS: DURATION_S,
      warmupS: 1,
    });
    return r;
  } finally {
    await server.stop();
  }
}

requireBuilt();
pinSelf();
const started = Date.now();
const names = Object.keys(CASES).filter(
  (n) => ONLY === undefined || ONLY.includes(n.replace(/Baseline$/, '')),
);
const rows = Object.fromEntries(names.map((n) => [n, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const name of names.map((_, i) => names[(i + round) % names.length])) {
    log(`round ${round + 1}/${ROUNDS}: ${name}`);
    rows[name].push(await measure(name));
  }
}
const cpu = (n) => median(rows[n].map((r) => r.serverUs));
let md = `## @bulwark/service: what a refusal costs\n\n`;
md += `Machine: ${machine()}; server pinned to core ${CORES.server}, autocannon (closed loop, -c ${CONNECTIONS}) to core ${CORES.generator}. Command: \`node bench/service-rejections.mjs\` — ${ROUNDS} rounds, rotating order, ${DURATION_S} s each. `;
md += `Server CPU per request = the server process's user + system time (/proc) ÷ responses. The refusals carry the kit's \`api\` security headers, a request id, \`Retry-After\` and a JSON body; the 429 also the RateLimit fields.\n\n`;
md += `| response | req/s (median) | server CPU µs/request (median; lowest) | ÷ the kit's 200 | statuses seen |\n| --- | ---: | ---: | ---: | --- |\n`;
for (const n of names) {
  const r = rows[n];
  const statuses = `${r.reduce((a, x) => a + x['2xx'], 0)} 2xx, ${r.reduce((a, x) => a + x.non2xx, 0)} other`;
  md += `| ${CASES[n].label} | ${f0(median(r.map((x) => x.rps)))} | ${f1(cpu(n))}; ${f1(Math.min(...r.map((x) => x.serverUs)))} | ${rows.answered?.length > 0 ? `${f2(cpu(n) / cpu('answered'))}×` : 'n/a'} | ${statuses} |\n`;
}
if (rows.shed?.length > 0 && rows.limited?.length > 0 && rows.answered?.length > 0)
  md += `\nA 503 from the shedder costs ${f1(cpu('shed'))} µs of server CPU and a 429 ${f1(cpu('limited'))} µs (median), against ${f1(cpu('answered'))} µs for the same server's smallest answer.`;
if (rows.shedBaseline?.length > 0 && rows.shed?.length > 0)
  md += ` The baseline's 503: ${f1(cpu('shedBaseline'))} µs.`;
md += `\n\n`;
md += `_Whole run: ${f0((Date.now() - started) / 1000)} s._\n`;
process.stdout.write(md);
const out = process.argv[2] ?? `${here}results/gcd-rejections.md`;
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, md);
log(`written to ${out}`);
