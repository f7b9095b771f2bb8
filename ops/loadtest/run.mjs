#!/usr/bin/env node
// Load test of gcd-service: `npm run loadtest` (builds first), or `node ops/loadtest/run.mjs` after a build.
//
// Starts the built service (apps/gcd-service/dist/src/main.js) as a child process on a free loopback
// port, drives it with autocannon (closed loop, no pipelining) at several concurrency levels with small
// inputs, then with Euclid's worst case near MAX_DIGITS (consecutive Fibonacci numbers, computed in the
// worker pool), then at a fixed rate; scrapes /metrics around every run for the server's CPU time, memory,
// event-loop lag and shed counts; stops the service with SIGTERM and checks it exits 0. Writes
// docs/ops/load-testing.md (the report), ops/loadtest/last-run.json (every number), and the measured
// block of docs/ops/capacity-plan.md. Bounded: the whole run takes about 2 minutes and is killed at 170 s.
//
// Options: --quick (1 run of 2 s per point: a smoke test of the script, not numbers to publish),
// --no-write (print the report instead of writing the files), --from-json (no load: re-render the
// report and the capacity block from ops/loadtest/last-run.json after a change to this script's text).
/* global fetch */
import autocannon from 'autocannon';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const QUICK = process.argv.includes('--quick');
const WRITE = !process.argv.includes('--no-write');
/** Re-render the report and the capacity block from ops/loadtest/last-run.json, without load. */
const FROM_JSON = process.argv.includes('--from-json');
const RUNS = QUICK ? 1 : 3;
const SECONDS = QUICK ? 2 : 4;
const HARD_LIMIT_MS = 170_000;
const started = Date.now();

/** The service's settings for the test (everything else is the default). */
const SERVICE_ENV = {
  HOST: '127.0.0.1',
  LOG_LEVEL: 'warn',
  // One client address sends everything: the per-client limit (20/s by default) would answer 429 to
  // nearly all of it. The limiter's own cost is measured in bench/; here it is off.
  RATE_LIMIT_PER_SECOND: '0',
};

function log(message) {
  process.stderr.write(`[loadtest +${((Date.now() - started) / 1000).toFixed(0)}s] ${message}\n`);
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Consecutive Fibonacci numbers with `digits` digits: the most steps Euclid's algorithm can take. */
function fibonacciPair(digits) {
  let a = 1n;
  let b = 1n;
  const min = 10n ** BigInt(digits - 1);
  while (b < min) [a, b] = [b, a + b];
  return [b.toString(), a.toString()];
}

/** Selected samples of the exposition text. */
function parseMetrics(text) {
  const one = (name) => {
    const m = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text);
    return m === null ? undefined : Number(m[1]);
  };
  const sum = (name, labelFilter = () => true) => {
    let total = 0;
    for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} ([0-9.e+-]+)$`, 'gm'))) {
      if (labelFilter(m[1])) total += Number(m[2]);
    }
    return total;
  };
  return {
    cpuSeconds: one('process_cpu_seconds_total'),
    rssBytes: one('process_resident_memory_bytes'),
    heapUsedBytes: sum('nodejs_heap_size_used_bytes') || one('nodejs_heap_size_used_bytes'),
    lagP99Seconds: one('nodejs_eventloop_lag_p99_seconds'),
    shed: sum('bulwark_shed_total'),
    shedEventLoop: sum('bulwark_shed_total', (l) => l.includes('reason="event_loop"')),
    busy: sum('gcd_computations_total', (l) => l.includes('outcome="busy"')),
    computeTimeouts: sum('gcd_computations_total', (l) => l.includes('outcome="timeout"')),
    poolOk: sum('gcd_computations_total', (l) => l.includes('path="pool"') && l.includes('outcome="ok"')),
    concurrencyLimit: one('bulwark_concurrency_limit'),
  };
}

async function scrape(base) {
  const res = await fetch(`${base}/metrics`);
  return parseMetrics(await res.text());
}

function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** One autocannon run, with the server's counters read before and after. */
async function runOnce(base, { path, connections, overallRate }) {
  const before = await scrape(base);
  const t0 = performance.now();
  const r = await autocannon({
    url: `${base}${path}`,
    connections,
    pipelining: 1,
    duration: SECONDS,
    timeout: 10,
    ...(overallRate === undefined ? {} : { overallRate }),
  });
  const wall = (performance.now() - t0) / 1000;
  const after = await scrape(base);
  const codes = Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([k, v]) => [k, v.count]));
  const ok = codes['200'] ?? 0;
  const serverCores = (after.cpuSeconds - before.cpuSeconds) / wall;
  return {
    requestsPerSecond: r.requests.average,
    okPerSecond: ok / r.duration,
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
    codes,
    errors: r.errors,
    timeouts: r.timeouts,
    serverCores,
    okPerServerCore: serverCores > 0 ? ok / r.duration / serverCores : NaN,
    rssMiB: after.rssBytes / 2 ** 20,
    heapUsedMiB: after.heapUsedBytes / 2 ** 20,
    lagP99Ms: after.lagP99Seconds * 1000,
    shed: after.shed - before.shed,
    shedEventLoop: after.shedEventLoop - before.shedEventLoop,
    busy: after.busy - before.busy,
    computeTimeouts: after.computeTimeouts - before.computeTimeouts,
    concurrencyLimit: after.concurrencyLimit,
  };
}

/** RUNS runs of one point; the median of each number (and the sum of the counts). */
async function point(base, spec) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    if (Date.now() - started > HARD_LIMIT_MS - 20_000) throw new Error('out of time budget');
    runs.push(await runOnce(base, spec));
  }
  const med = (f) => median(runs.map(f));
  const codes = {};
  for (const r of runs) for (const [k, v] of Object.entries(r.codes)) codes[k] = (codes[k] ?? 0) + v;
  const summary = {
    ...spec,
    runs: runs.length,
    secondsPerRun: SECONDS,
    requestsPerSecond: med((r) => r.requestsPerSecond),
    okPerSecond: med((r) => r.okPerSecond),
    latencyMs: {
      p50: med((r) => r.latencyMs.p50),
      p90: med((r) => r.latencyMs.p90),
      p99: med((r) => r.latencyMs.p99),
      max: Math.max(...runs.map((r) => r.latencyMs.max)),
    },
    codes,
    errors: runs.reduce((a, r) => a + r.errors, 0),
    timeouts: runs.reduce((a, r) => a + r.timeouts, 0),
    serverCores: med((r) => r.serverCores),
    okPerServerCore: med((r) => r.okPerServerCore),
    rssMiB: Math.max(...runs.map((r) => r.rssMiB)),
    heapUsedMiB: Math.max(...runs.map((r) => r.heapUsedMiB)),
    lagP99Ms: med((r) => r.lagP99Ms),
    shed: runs.reduce((a, r) => a + r.shed, 0),
    shedEventLoop: runs.reduce((a, r) => a + r.shedEventLoop, 0),
    busy: runs.reduce((a, r) => a + r.busy, 0),
    computeTimeouts: runs.reduce((a, r) => a + r.computeTimeouts, 0),
    concurrencyLimit: runs.at(-1).concurrencyLimit,
  };
  log(
    `${spec.name}: ${summary.okPerSecond.toFixed(0)} ok/s, p50 ${summary.latencyMs.p50} ms, p99 ${summary.latencyMs.p99} ms, ` +
      `codes ${JSON.stringify(codes)}, server ${summary.serverCores.toFixed(2)} cores`,
  );
  return summary;
}

function machine() {
  const cpus = os.cpus();
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'apps', 'packages'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    if (dirty.trim() !== '') commit += ' (with uncommitted changes in apps/ or packages/)';
  } catch {
    // not a git checkout
  }
  return {
    cpu: `${cpus.length} × ${cpus[0]?.model ?? 'unknown'}`,
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} (${os.arch()})`,
    node: process.version,
    autocannon: JSON.parse(readFileSync(join(ROOT, 'node_modules', 'autocannon', 'package.json'), 'utf8'))
      .version,
    commit,
    loadAverageBefore: os.loadavg().map((x) => x.toFixed(2)),
  };
}

/**
 * Bytes Redis needs per rate-limit key: 1000 buckets written through the service's own
 * RedisRateLimitStore (its Lua script, its key shape), measured with MEMORY USAGE, then deleted. Uses
 * REDIS_URL or redis://127.0.0.1:6379; skipped (null) when Redis does not answer within a second.
 */
async function measureRedis() {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  let store;
  try {
    const { RedisRateLimitStore } = await import(join(ROOT, 'packages/service/dist/index.js'));
    // not exported (internal to the kit): the key hash the limiter applies to header keys
    const { hashKey } = await import(join(ROOT, 'packages/service/dist/rate-limit/limiter.js'));
    store = new RedisRateLimitStore({ url, keyPrefix: 'bulwark:loadtest:', commandTimeoutMs: 1000 });
    if (store.client.status !== 'ready') {
      await new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no connection to ${url} within 1 s`)), 1000);
        store.client.once('ready', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    const rule = { ratePerSecond: 20, burst: 40 };
    const keys = Array.from({ length: 1000 }, (_, i) =>
      hashKey(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`),
    );
    await Promise.all(keys.map((k) => store.take(k, 1, Date.now(), rule)));
    const sizes = await Promise.all(
      keys.map((k) => store.client.call('MEMORY', 'USAGE', `bulwark:loadtest:${k}`)),
    );
    const ttls = await Promise.all(keys.map((k) => store.client.pttl(`bulwark:loadtest:${k}`)));
    await store.client.del(...keys.map((k) => `bulwark:loadtest:${k}`));
    const info = String(await store.client.info('server'));
    const version = /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? 'unknown';
    return {
      version,
      keys: keys.length,
      bytesPerKey: sizes.reduce((a, b) => a + Number(b), 0) / sizes.length,
      ttlMsAfterOneRequest: Math.max(...ttls),
      rule,
    };
  } catch (error) {
    log(`Redis not measured: ${error.message}`);
    return null;
  } finally {
    await store?.close().catch(() => {});
  }
}

async function main() {
  const info = machine();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [join(ROOT, 'apps/gcd-service/dist/src/main.js')], {
    env: { PATH: process.env.PATH ?? '', ...SERVICE_ENV, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const hard = setTimeout(() => {
    log('time budget exceeded: killing the service');
    child.kill('SIGKILL');
    process.exit(1);
  }, HARD_LIMIT_MS);
  hard.unref();

  try {
    const t0 = performance.now();
    for (;;) {
      try {
        const r = await fetch(`${base}/readyz`);
        await r.arrayBuffer();
        if (r.status === 200) break;
      } catch {
        // not listening yet
      }
      if (performance.now() - t0 > 15_000) throw new Error('the service did not become ready within 15 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    const startupMs = performance.now() - t0;
    const idle = await scrape(base);
    log(
      `service ready on ${base} in ${startupMs.toFixed(0)} ms (idle RSS ${(idle.rssBytes / 2 ** 20).toFixed(0)} MiB)`,
    );

    const small = '/api/gcd?n=2305843009213693951&m=618970019642690137449562111';
    const [fa, fb] = fibonacciPair(1000);
    const big = `/api/gcd?n=${fa}&m=${fb}`;
    const mid = (() => {
      const [a, b] = fibonacciPair(300);
      return `/api/gcd?n=${a}&m=${b}`;
    })();

    // warm-up (JIT, worker start), not reported
    await autocannon({ url: `${base}${small}`, connections: 10, duration: QUICK ? 1 : 3 });
    await autocannon({ url: `${base}${big}`, connections: 2, duration: 1 });

    const points = [];
    for (const c of [1, 10, 50, 200]) {
      points.push(
        await point(base, { name: `small c=${c}`, scenario: 'small', path: small, connections: c }),
      );
    }
    points.push(await point(base, { name: 'mid c=10', scenario: 'mid', path: mid, connections: 10 }));
    for (const c of [2, 16, 64]) {
      points.push(await point(base, { name: `big c=${c}`, scenario: 'big', path: big, connections: c }));
    }
    const peak = Math.max(...points.filter((p) => p.scenario === 'small').map((p) => p.okPerSecond));
    const rate = Math.max(10, Math.round((peak * 0.5) / 10) * 10);
    points.push(
      await point(base, {
        name: `small at ${rate}/s`,
        scenario: 'fixed-rate',
        path: small,
        connections: 50,
        overallRate: rate,
      }),
    );
    const end = await scrape(base);

    const t1 = performance.now();
    child.kill('SIGTERM');
    const { code, signal } = await exited;
    const shutdownMs = performance.now() - t1;
    log(`service stopped: exit ${code ?? signal} after ${shutdownMs.toFixed(0)} ms`);

    const redis = await measureRedis();
    const result = {
      date: new Date().toISOString(),
      quick: QUICK,
      command: 'npm run loadtest',
      machine: { ...info, loadAverageAfter: os.loadavg().map((x) => x.toFixed(2)) },
      service: {
        env: SERVICE_ENV,
        startupMs,
        idleRssMiB: idle.rssBytes / 2 ** 20,
        endRssMiB: end.rssBytes / 2 ** 20,
        shutdown: { exitCode: code, signal, ms: shutdownMs },
        inputs: { small: small.length, bigDigits: fa.length, midDigits: 300 },
      },
      points,
      redis,
      durationSeconds: (Date.now() - started) / 1000,
    };
    if (code !== 0) throw new Error(`the service exited ${code ?? signal} after SIGTERM`);
    return result;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

// --- report ------------------------------------------------------------------------------------------------

const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '–');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const codesText = (codes) =>
  Object.entries(codes)
    .sort()
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');

function table(points) {
  const head =
    '| point | conns | ok req/s | p50 ms | p90 ms | p99 ms | max ms | responses (all runs) | errors / timeouts | server cores | ok req/s per server core | shed (of which event loop) | limit at end | pool busy | loop lag p99 ms | RSS MiB |\n' +
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n';
  return (
    head +
    points
      .map(
        (p) =>
          `| ${p.name} | ${p.connections} | ${f0(p.okPerSecond)} | ${f0(p.latencyMs.p50)} | ${f0(p.latencyMs.p90)} | ${f0(p.latencyMs.p99)} | ${f0(p.latencyMs.max)} | ${codesText(p.codes)} | ${p.errors} / ${p.timeouts} | ${f2(p.serverCores)} | ${f0(p.okPerServerCore)} | ${p.shed} (${p.shedEventLoop}) | ${f0(p.concurrencyLimit)} | ${p.busy} | ${f1(p.lagP99Ms)} | ${f0(p.rssMiB)} |`,
      )
      .join('\n')
  );
}

function derive(result) {
  const small = result.points.filter((p) => p.scenario === 'small');
  const big = result.points.filter((p) => p.scenario === 'big');
  const best = small.reduce((a, b) => (b.okPerSecond > a.okPerSecond ? b : a));
  const bestBig = big.reduce((a, b) => (b.okPerSecond > a.okPerSecond ? b : a));
  const maxRss = Math.max(...result.points.map((p) => p.rssMiB), result.service.endRssMiB);
  return {
    smallPeakOk: best.okPerSecond,
    smallPeakPoint: best.name,
    smallPerCore: best.okPerServerCore,
    smallPeakCores: best.serverCores,
    bigPeakOk: bestBig.okPerSecond,
    bigPeakPoint: bestBig.name,
    bigPerCore: bestBig.okPerServerCore,
    idleRss: result.service.idleRssMiB,
    maxRss,
  };
}

/** The interpretation, computed from the numbers so that it cannot contradict them. */
function reading(result, d) {
  const m = result.machine;
  const threads = Math.max(1, m.cores - 1);
  const by = (name) => result.points.find((p) => p.name === name);
  const lines = [];
  lines.push(
    `- **Small inputs** peaked at **${f0(d.smallPeakOk)} req/s** (${d.smallPeakPoint}) with the service using ${f2(d.smallPeakCores)} cores: ` +
      `**${f0(d.smallPerCore)} req/s per server core**. The service never had the ${m.cores} cores to itself: autocannon and the other work on the machine took the rest.`,
  );
  const top = by('small c=200');
  if (top !== undefined) {
    const ratio = top.okPerSecond / d.smallPeakOk;
    lines.push(
      ratio >= 0.8
        ? `- **At 200 connections** goodput stayed on the plateau (${f0(top.okPerSecond)} ok/s, ${f0(ratio * 100)} % of the peak; ${top.shed} shed, p99 ${f0(top.latencyMs.p99)} ms): excess requests are refused with a cheap 503 instead of queueing.`
        : `- **At 200 connections** goodput fell to ${f0(top.okPerSecond)} ok/s (${f0(ratio * 100)} % of the peak), with p99 ${f0(top.latencyMs.p99)} ms and event-loop lag p99 ${f1(top.lagP99Ms)} ms; ` +
            `the service got only ${f2(top.serverCores)} cores during those runs (the client drives 200 sockets on the same cores). ${top.shed} requests were shed (${top.shedEventLoop} for event-loop pressure) and there were ${top.errors} errors and ${top.timeouts} timeouts: ` +
            `the service degraded by refusing, not by timing out. On this machine the client, not the service, sets this point; do not plan with it.`,
    );
  }
  const mid = by('mid c=10');
  if (mid !== undefined) {
    lines.push(
      `- **300-digit inputs** go to the worker pool (${threads} thread(s), queue ${2 * threads}): ${f0(mid.okPerSecond)} ok/s at 10 connections; ${mid.busy} computations were refused at once with 503 \`GCD_ERR_BUSY\` ` +
        `because ten clients wanted a pool that holds ${3 * threads} at a time — by design, a short queue turns overload into fast refusals, not latency (p99 ${f0(mid.latencyMs.p99)} ms).`,
    );
  }
  const big64 = by('big c=64');
  lines.push(
    `- **Big inputs** (Euclid's worst case at 1000 digits) peaked at **${f0(d.bigPeakOk)} req/s** (${d.bigPeakPoint}), **${f0(d.bigPerCore)} per server core**.` +
      (big64 === undefined
        ? ''
        : ` At 64 connections the pool refused ${big64.busy} computations (503 \`GCD_ERR_BUSY\`) and ${big64.shed} requests were shed; admitted requests kept a p99 of ${f0(big64.latencyMs.p99)} ms, ` +
          (big64.computeTimeouts > 0
            ? `${big64.computeTimeouts} computations hit the 1 s compute deadline, `
            : 'no computation hit the 1 s compute deadline, ') +
          `and there were ${big64.timeouts} client timeouts.`),
  );
  const lagMax = Math.max(...result.points.map((p) => p.lagP99Ms));
  lines.push(
    `- **Event loop**: the largest end-of-run lag p99 was ${f1(lagMax)} ms` +
      (lagMax > 100
        ? ' — above the 100 ms at which the shedder starts refusing a share of requests and at which `GcdServiceEventLoopSaturated` would fire if it lasted 10 minutes; on this machine it tracks the CPU the client and other jobs took.'
        : '; `/livez` and `/readyz` stay answerable under load.'),
  );
  const fixed = result.points.find((p) => p.scenario === 'fixed-rate');
  if (fixed !== undefined) {
    const okShare = (fixed.codes['200'] ?? 0) / Object.values(fixed.codes).reduce((a, b) => a + b, 0);
    lines.push(
      `- **At a fixed ${fixed.overallRate} req/s** (half the small-input peak) p99 was **${f0(fixed.latencyMs.p99)} ms** and ${f0(okShare * 100)} % of requests were answered 200` +
        (okShare < 0.99
          ? ` (${fixed.shed} shed, ${fixed.shedEventLoop} of them for event-loop pressure, concurrency limit ${f0(fixed.concurrencyLimit)} at the end): half the peak measured a minute earlier was not half the capacity left on a machine this busy.`
          : ': the latency SLO (99 % within 0.25 s) holds at 50 % of the peak.'),
    );
  }
  return lines.join('\n');
}

function report(result) {
  const m = result.machine;
  const d = derive(result);
  return `# Load-testing report: gcd-service

Produced by \`${result.command}\` (\`ops/loadtest/run.mjs\`) on ${result.date.slice(0, 10)}; every number below is
from that run${result.quick ? ' — a **--quick** smoke run (1 × 2 s per point): not numbers to plan with' : ''}. The raw numbers are in
\`ops/loadtest/last-run.json\`; [capacity-plan.md](capacity-plan.md) is derived from them. Re-run it after any change
that could move them, and commit the new report.

## The machine

**Shared and small: read every number as a floor, not a benchmark.** ${m.cpu}, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}, autocannon ${m.autocannon}, commit ${m.commit}. The load generator (autocannon, one process) and the service
(one process: the event loop plus ${'`POOL_MAX_THREADS`'} = cores − 1 = ${Math.max(1, m.cores - 1)} worker thread(s)) share
the same ${m.cores} cores, and **other engineers' builds and tests were running on the machine at the same time**
(load average ${m.loadAverageBefore.join(' / ')} before the run, ${m.loadAverageAfter.join(' / ')} after, for ${m.cores} cores). On a
dedicated host, or with the client elsewhere, expect more.

## Method

- The built service (\`apps/gcd-service/dist/src/main.js\`) started as a child process on a free loopback port with
  its defaults except ${Object.entries(result.service.env)
    .map(([k, v]) => `\`${k}=${v}\``)
    .join(', ')} (one client address sends everything, so the per-client limit
  would turn the test into a 429 test; its cost is in the benchmarks). Load shedding on (gradient2 + event-loop gate), as in production.
- autocannon, closed loop (each connection sends its next request when the last one is answered), no pipelining,
  10 s client timeout; warm-up runs first (not reported). Each point: ${result.points[0]?.runs} run(s) of ${result.points[0]?.secondsPerRun} s; the table shows
  the median of the runs (max latency: the largest), and response counts summed over the runs.
- Scenarios: **small** — \`GET /api/gcd\` with a 19- and a 27-digit number (computed inline on the event loop);
  **mid** — consecutive 300-digit Fibonacci numbers (worker pool); **big** — consecutive ${result.service.inputs.bigDigits}-digit Fibonacci
  numbers, Euclid's worst case at the default \`MAX_DIGITS\` (1000), computed in the worker pool (\`COMPUTE_TIMEOUT_MS\` 1000,
  queue \`POOL_MAX_QUEUE\` = 2 × threads); **fixed rate** — small inputs at half the measured peak, the latency to plan
  an SLO with.
- Server CPU: the change of \`process_cpu_seconds_total\` (main thread and workers) over the run's wall time, scraped from
  \`/metrics\`; "ok req/s per server core" = 200 responses per second ÷ those cores. Shed: \`bulwark_shed_total\`; pool
  busy: \`gcd_computations_total{outcome="busy"}\` (503 \`GCD_ERR_BUSY\`); event-loop lag: prom-client's
  \`nodejs_eventloop_lag_p99_seconds\` at the end of the run; RSS: \`process_resident_memory_bytes\` (largest of the runs).
- Latencies are closed-loop: under saturation they understate what an open stream of users would see (coordinated
  omission); the fixed-rate point is closer to that.

## Results

${table(result.points)}

Service: ready ${f0(result.service.startupMs)} ms after spawn; RSS ${f0(result.service.idleRssMiB)} MiB idle, ${f0(d.maxRss)} MiB at most under load;
after the run, SIGTERM → exit ${result.service.shutdown.exitCode} in ${f0(result.service.shutdown.ms)} ms. The whole run took ${f0(result.durationSeconds)} s.

## Reading the numbers

${reading(result, d)}

## Reproduce

\`\`\`sh
npm run loadtest            # build, then ~2 minutes of load; rewrites this file, ops/loadtest/last-run.json
                            # and the measured block of docs/ops/capacity-plan.md
node ops/loadtest/run.mjs --quick --no-write   # a 30-second smoke run that prints instead of writing
\`\`\`

Only loopback is used. Stop other heavy work on the machine first if you can; if you cannot, say so, as this report does.
`;
}

/**
 * The measured per-core throughput is halved for planning: on loopback the network stack costs little,
 * and part of the kernel's work is billed to the client process, so a real network costs the service more.
 */
const PLANNING_FACTOR = 0.5;

/** Pods for a load needing `cores` server cores: each pod's 1-core request held at the HPA's 70 % target, plus one spare, at least 3. */
function podsFor(cores) {
  return Math.max(3, Math.ceil(cores / 0.7) + 1);
}

function capacityBlock(result) {
  const d = derive(result);
  const m = result.machine;
  const r = result.redis;
  const memRequest = Math.ceil((d.maxRss * 1.3) / 64) * 64;
  const rows = [100, 1000, 5000]
    .map((rate) => {
      const smallPerCore = d.smallPerCore * PLANNING_FACTOR;
      const bigPerCore = d.bigPerCore * PLANNING_FACTOR;
      const small = podsFor(rate / smallPerCore);
      const mixed = podsFor((rate * 0.9) / smallPerCore + (rate * 0.1) / bigPerCore);
      const big = podsFor(rate / bigPerCore);
      return `| ${rate} req/s | ${small} | ${mixed} | ${big} |`;
    })
    .join('\n');
  const redisRows =
    r === null
      ? '| Redis bytes per active client key | not measured (no Redis answered) |'
      : `| Redis bytes per active client key (MEMORY USAGE, Redis ${r.version}) | ${f0(r.bytesPerKey)} B |\n` +
        `| key TTL seen just after one request (${r.rule.ratePerSecond}/s, burst ${r.rule.burst}) | ${f0(r.ttlMsAfterOneRequest)} ms; at most burst ÷ rate + 1 s = ${f0((r.rule.burst / r.rule.ratePerSecond) * 1000 + 1000)} ms after a client's last request |`;
  return `<!-- loadtest:begin (written by ops/loadtest/run.mjs; do not edit by hand) -->
Measured by \`npm run loadtest\` on ${result.date.slice(0, 10)} (${m.cores}-core shared machine, load generator on the same cores; details in
[load-testing.md](load-testing.md)):

| measured | value |
|---|---|
| small inputs, peak | ${f0(d.smallPeakOk)} req/s using ${f2(d.smallPeakCores)} server cores |
| small inputs, per server core | ${f0(d.smallPerCore)} req/s |
| big inputs (1000-digit worst case), peak | ${f0(d.bigPeakOk)} req/s |
| big inputs, per server core | ${f0(d.bigPerCore)} req/s |
| RSS idle / largest under load | ${f0(d.idleRss)} MiB / ${f0(d.maxRss)} MiB |
| startup to ready / SIGTERM to exit | ${f0(result.service.startupMs)} ms / ${f0(result.service.shutdown.ms)} ms |
${redisRows}

Derived (formulas below): memory request ${memRequest} MiB (largest RSS × 1.3, rounded up to 64 MiB). Planning
throughput per core = measured × ${PLANNING_FACTOR} (loopback flatters the service: ${f0(d.smallPerCore * PLANNING_FACTOR)} small, ${f0(d.bigPerCore * PLANNING_FACTOR)} big req/s per core).
Pods per sustained rate, each with a 1-core CPU request held at the HPA's 70 % target, plus one spare, at least 3:

| sustained rate | all small inputs | 90 % small, 10 % worst-case big | all worst-case big |
|---|---|---|---|
${rows}
<!-- loadtest:end -->`;
}

try {
  const result = FROM_JSON
    ? JSON.parse(readFileSync(join(ROOT, 'ops/loadtest/last-run.json'), 'utf8'))
    : await main();
  const text = report(result);
  if (!WRITE) {
    process.stdout.write(`${text}\n---\ndocs/ops/capacity-plan.md block:\n\n${capacityBlock(result)}\n`);
  } else {
    // formatted as `npm run format:check` expects (prettier is a root devDependency)
    const jsonPath = join(ROOT, 'ops/loadtest/last-run.json');
    const prettier = await import('prettier');
    const options = { ...(await prettier.resolveConfig(jsonPath)), filepath: jsonPath };
    writeFileSync(jsonPath, await prettier.format(JSON.stringify(result), options));
    writeFileSync(join(ROOT, 'docs/ops/load-testing.md'), text);
    const planPath = join(ROOT, 'docs/ops/capacity-plan.md');
    let plan;
    try {
      plan = readFileSync(planPath, 'utf8');
    } catch {
      plan = undefined;
    }
    if (plan !== undefined && plan.includes('<!-- loadtest:begin')) {
      writeFileSync(
        planPath,
        plan.replace(/<!-- loadtest:begin[\s\S]*?<!-- loadtest:end -->/, capacityBlock(result)),
      );
    } else {
      log('docs/ops/capacity-plan.md has no loadtest block; printing it instead');
      process.stdout.write(capacityBlock(result) + '\n');
    }
    log(
      'wrote docs/ops/load-testing.md, ops/loadtest/last-run.json and the block of docs/ops/capacity-plan.md',
    );
  }
  process.exit(0);
} catch (error) {
  log(`failed: ${error.stack ?? error}`);
  process.exit(1);
}
