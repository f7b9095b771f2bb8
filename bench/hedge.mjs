// Hedging against a slow tail, over real HTTP: a local node:http server answers 5 % of requests after
// 200 ms and the rest after 2 ms (chosen per request by a seeded generator); a client sends the same
// closed-loop load through raw undici.request, through @bulwark/core's hedge (adaptive delay, and a fixed
// 10 ms one) and through cockatiel's retry (plain, and with a 10 ms per-attempt timeout, the usual way to
// cut a tail with retries) for contrast. It reports latency percentiles and the requests that reached the
// server per call (extra load), and writes results/hedge.md.
//
// Usage: node bench/hedge.mjs [calls=10000] [concurrency=20] [repetitions=3]
// The server is pinned to CPU 0 and the client to CPU 1 with taskset when there are two CPUs.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { writeFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { canPin, fmt, machineLine, median } from './lib.mjs';

const self = fileURLToPath(import.meta.url);
const here = fileURLToPath(new URL('.', import.meta.url));
const SLOW_SHARE = 0.05;
const SLOW_MS = 200;
const FAST_MS = 2;
const DELAY_MS = 10;

const mode = process.argv[2];
if (mode === '--serve') serve(Number(process.argv[3] ?? 1));
else if (mode === '--client')
  await client(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]));
else await orchestrate();

// ---------------------------------------------------------------------------------------------------------

function serve(seed) {
  let s = seed >>> 0 || 1;
  const random = () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
  let requests = 0;
  let slow = 0;
  let cancelled = 0;
  const server = createServer((req, res) => {
    if (req.url === '/stats') {
      res.end(JSON.stringify({ requests, slow, cancelled }));
      requests = slow = cancelled = 0;
      return;
    }
    requests++;
    const isSlow = random() < SLOW_SHARE;
    if (isSlow) slow++;
    const timer = setTimeout(() => res.end('ok'), isSlow ? SLOW_MS : FAST_MS);
    res.on('close', () => {
      if (!res.writableEnded) {
        cancelled++;
        clearTimeout(timer);
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------------------

async function client(port, calls, concurrency) {
  const { Agent, request } = await import('undici');
  const bw = await import('@bulwark/core');
  const ck = await import('cockatiel');
  const dispatcher = new Agent({ connections: 256, keepAliveTimeout: 60_000 });
  const url = `http://127.0.0.1:${port}/`;
  const get = async (signal) => {
    const res = await request(url, { dispatcher, signal });
    await res.body.text();
    return res.statusCode;
  };
  const stats = async () => {
    const res = await request(`http://127.0.0.1:${port}/stats`, { dispatcher });
    return JSON.parse(await res.body.text());
  };

  const variants = {
    'raw undici.request': () => (call) => call(undefined),
    'bulwark hedge (adaptive: p95, budget 10 %)': () => {
      const h = bw.hedge({ idempotent: true });
      const counter = count(h);
      return Object.assign((call) => h.execute((ctx) => call(ctx.signal)), counter);
    },
    [`bulwark hedge (fixed ${DELAY_MS} ms, budget 10 %)`]: () => {
      const h = bw.hedge({ idempotent: true, delayMs: DELAY_MS });
      const counter = count(h);
      return Object.assign((call) => h.execute((ctx) => call(ctx.signal)), counter);
    },
    'cockatiel retry (1 retry)': () => {
      const r = ck.retry(ck.handleAll, { maxAttempts: 1 });
      return (call) => r.execute(({ signal }) => call(signal));
    },
    [`cockatiel retry (1 retry) + ${DELAY_MS} ms attempt timeout`]: () => {
      const p = ck.wrap(
        ck.retry(ck.handleAll, { maxAttempts: 1 }),
        ck.timeout(DELAY_MS, ck.TimeoutStrategy.Aggressive),
      );
      return (call) => p.execute(({ signal }) => call(signal));
    },
  };

  const run = async (name) => {
    const policy = variants[name]();
    // warm-up: connections, JIT, and the adaptive hedge's latency window (not measured)
    await loop(policy, Math.min(1_000, calls), concurrency, get, []);
    await stats();
    policy.hedges?.();
    const latencies = [];
    const started = performance.now();
    const failed = await loop(policy, calls, concurrency, get, latencies);
    const seconds = (performance.now() - started) / 1000;
    const server = await stats();
    return {
      latencies: summarize(latencies),
      requests: server.requests,
      slow: server.slow,
      cancelled: server.cancelled,
      calls,
      failed,
      seconds,
      hedges: policy.hedges?.() ?? 0,
    };
  };

  const out = {};
  for (const name of Object.keys(variants)) out[name] = await run(name);
  await dispatcher.close();
  process.stdout.write(JSON.stringify(out));
}

/** Counts the hedges a hedge policy started (after the warm-up as well: read and reset by the caller). */
function count(h) {
  let started = 0;
  h.onHedge((e) => {
    if (e.type === 'started') started++;
  });
  return {
    hedges: () => {
      const n = started;
      started = 0;
      return n;
    },
  };
}

/** `calls` calls through `policy`, `concurrency` at a time; pushes each call's latency in ms. */
async function loop(policy, calls, concurrency, get, latencies) {
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < calls) {
      next++;
      const t0 = performance.now();
      try {
        await policy(get);
        latencies.push(performance.now() - t0);
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return failed;
}

function summarize(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  return {
    p50: q(0.5),
    p90: q(0.9),
    p99: q(0.99),
    p999: q(0.999),
    max: s.at(-1),
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

// ---------------------------------------------------------------------------------------------------------

async function orchestrate() {
  const args = process.argv.slice(2).map(Number);
  const calls = args[0] || 10_000;
  const concurrency = args[1] || 20;
  const reps = args[2] || 3;
  const pin = canPin();
  const node = process.execPath;
  const runs = [];
  for (let r = 1; r <= reps; r++) {
    process.stderr.write(`hedge: repetition ${r}/${reps}\n`);
    const server = spawn(
      pin ? 'taskset' : node,
      [...(pin ? ['-c', '0', node] : []), self, '--serve', String(r)],
      {
        cwd: here,
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    const [chunk] = await once(server.stdout, 'data');
    const port = Number(String(chunk).trim());
    try {
      const cmd = pin ? ['taskset', ['-c', '1', node]] : [node, []];
      const json = execFileSync(
        cmd[0],
        [...cmd[1], self, '--client', String(port), String(calls), String(concurrency)],
        {
          cwd: here,
          encoding: 'utf8',
          maxBuffer: 1 << 26,
          timeout: 600_000,
        },
      );
      runs.push(JSON.parse(json));
    } finally {
      server.stdin.end();
      server.kill();
    }
  }
  const md = report(runs, { calls, concurrency, reps, pin });
  writeFileSync(new URL('results/hedge.md', import.meta.url), md);
  process.stdout.write(md);
}

function report(runs, { calls, concurrency, reps, pin }) {
  const names = Object.keys(runs[0]);
  const med = (f) => median(runs.map(f));
  const raw = 'raw undici.request';
  const version = (p) => {
    try {
      return JSON.parse(readFileSync(new URL(`../node_modules/${p}/package.json`, import.meta.url), 'utf8'))
        .version;
    } catch {
      return 'n/a';
    }
  };
  let md = `## Hedging against a slow tail (\`bench/hedge.mjs\`)\n\n`;
  md += `Command: \`node bench/hedge.mjs ${calls} ${concurrency} ${reps}\`. Node ${process.version}, undici ${version('undici')}, cockatiel ${version('cockatiel')}; ${machineLine()}. `;
  md += `**Taken on a busy shared machine** (other lanes' builds and tests running): timer jitter inflates the fast answers; compare the rows, not the absolute numbers.\n\n`;
  md += `A local \`node:http\` server (keep-alive) answers ${SLOW_SHARE * 100} % of requests after ${SLOW_MS} ms and the rest after ${FAST_MS} ms, chosen per request by a seeded generator (a hedge's second attempt draws again). `;
  md += `Each variant sends ${calls.toLocaleString('en-US')} calls, ${concurrency} at a time (closed loop), after 1,000 warm-up calls that are not measured (they also fill the adaptive hedge's latency window). `;
  md += `${reps} repetitions, each a fresh server and client process${pin ? ' (server pinned to CPU 0, client to CPU 1 with `taskset`)' : ''}; the table gives medians over repetitions. "Requests per call" counts what reached the server; "extra" is its excess over 1.\n\n`;
  md += `| variant | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | requests per call | extra | failed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n`;
  for (const n of names) {
    const l = (k) => med((r) => r[n].latencies[k]);
    const perCall = med((r) => r[n].requests / r[n].calls);
    md += `| ${n} | ${fmt(l('p50'), 1)} | ${fmt(l('p90'), 1)} | ${fmt(l('p99'), 1)} | ${fmt(l('p999'), 1)} | ${fmt(l('max'), 1)} | ${fmt(perCall, 3)} | ${fmt((perCall - 1) * 100, 1)} % | ${med((r) => r[n].failed)} |\n`;
  }
  const hedge = names.find((n) => n.startsWith('bulwark hedge (adaptive'));
  const p99ratio = med((r) => r[hedge].latencies.p99 / r[raw].latencies.p99);
  const extra = med((r) => r[hedge].requests / r[hedge].calls - 1);
  md += `\n| target | measured | bar | met |\n|---|---:|---:|:-:|\n`;
  md += `| p99 with hedging ÷ p99 without (${hedge}) | ${fmt(p99ratio, 3)} | ≤ 0.2 | ${p99ratio <= 0.2 ? 'yes' : '**no**'} |\n`;
  md += `| extra requests with hedging | ${fmt(extra * 100, 1)} % | ≤ 10 % | ${extra <= 0.1 ? 'yes' : '**no**'} |\n`;
  md += `\nPer repetition, p99 ms (raw / adaptive hedge / cockatiel retry + timeout): ${runs
    .map(
      (r) =>
        `${fmt(r[raw].latencies.p99, 1)} / ${fmt(r[hedge].latencies.p99, 1)} / ${fmt(r[names.at(-1)].latencies.p99, 1)}`,
    )
    .join(
      '; ',
    )}. Hedges started (adaptive): ${runs.map((r) => r[hedge].hedges).join(', ')}; losing attempts the server saw cancelled: ${runs.map((r) => r[hedge].cancelled).join(', ')}.\n\n`;
  md += `Reading it: plain retry does nothing for a slow answer (it is not a failure). Retry behind a per-attempt timeout cuts the tail too, but it abandons the first attempt (a slow answer that was about to arrive is thrown away), retries with no budget (under a real outage every call doubles), and its timeout must be tuned by hand; hedging keeps the first attempt running, takes whichever answers first, learns its delay from the observed latency, and is capped by its budget.\n`;
  return md;
}
