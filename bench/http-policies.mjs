// Hedging and adaptive throttling measured through @bulwark/http — the client (`createHttpClient`) and
// `fetchAll` — against a local node:http server (issue 14 item 4). Two scenarios, each variant side by
// side in one run:
//
// - Slow tail: 5 % of answers take 200 ms, the rest 2 ms (a seeded generator decides per request).
//   Closed loop at concurrency 20. p50/p99 per call and requests that reached the server per call, with
//   and without `hedge: { delayMs: 10 }` (default budget: ≤ 10 % extra). Bars: p99 hedged ≤ 1/5 of p99
//   unhedged; extra requests ≤ 10 %.
// - Overloaded backend: the server accepts at most a tenth of the offered rate (a token bucket) and
//   answers 503 to the rest; the client offers OFFERED calls per second open-loop, no retries, no breaker,
//   through the default adaptive throttle (k = 2) and with `adaptiveThrottle: false`. Reports requests
//   reaching the server per accepted one over the last half of the run (the SRE book's "about k").
//
// Usage: node bench/http-policies.mjs [tailCalls=4000] [offeredPerSecond=300] [overloadSeconds=20]
// The server is pinned to CPU 0 and the load generator to CPU 1 with taskset when there are two CPUs.
// Writes results/http-policies.md.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { canPin, machineLine } from './lib.mjs';

const self = fileURLToPath(import.meta.url);
const here = fileURLToPath(new URL('.', import.meta.url));
const CONCURRENCY = 20;
const HEDGE_DELAY_MS = 10;

const mode = process.argv[2];
if (mode === '--serve') serve(Number(process.argv[3]));
else if (mode === '--client') await client(JSON.parse(process.argv[3]));
else await orchestrate();

function serve(capacity) {
  // mulberry32, seeded: the same slow/fast sequence every run
  let seed = 42;
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let tokens = capacity / 10;
  let at = performance.now();
  let requests = 0;
  let accepted = 0;
  const server = createServer((req, res) => {
    if (req.url === '/stats') {
      res.end(JSON.stringify({ requests, accepted }));
      requests = accepted = 0;
      return;
    }
    requests++;
    if (req.url.startsWith('/tail')) {
      const ms = random() < 0.05 ? 200 : 2;
      const timer = setTimeout(() => {
        accepted++;
        res.end('ok');
      }, ms);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    const now = performance.now();
    tokens = Math.min(capacity / 10, tokens + ((now - at) * capacity) / 1000);
    at = now;
    if (tokens >= 1) {
      tokens -= 1;
      accepted++;
      res.end('ok');
    } else {
      res.statusCode = 503;
      res.end('overloaded');
    }
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function client({ port, scenario, variant, calls, offered, seconds }) {
  const http = await import('@bulwark/http');
  const { Agent, request } = await import('undici');
  const base = `http://127.0.0.1:${port}`;
  const control = new Agent();
  const stats = async () =>
    JSON.parse(await (await request(`${base}/stats`, { dispatcher: control })).body.text());
  await stats();
  const hedge =
    variant === 'hedge' ? { delayMs: HEDGE_DELAY_MS } : variant === 'adaptive' ? { percentile: 0.9 } : false;
  const adaptiveThrottle = variant === 'no-throttle' ? false : undefined;
  let out;
  if (scenario === 'tail') {
    const latencies = [];
    if (process.env.BENCH_API === 'fetchAll') {
      const urls = Array.from({ length: calls }, (_, i) => `${base}/tail/${i}`);
      const t0 = performance.now();
      for await (const r of http.fetchAll(urls, {
        concurrency: CONCURRENCY,
        perHostConcurrency: CONCURRENCY,
        hedge,
        retry: false,
      })) {
        if (!r.ok) throw new Error(`${r.url}: ${r.errorCode}`);
        latencies.push(r.durationMs);
      }
      out = { wallMs: performance.now() - t0 };
    } else {
      const c = http.createHttpClient({ cache: false, hedge, retry: false });
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < calls) {
            const i = next++;
            const s = performance.now();
            await c.get(`${base}/tail/${i}`);
            latencies.push(performance.now() - s);
          }
        }),
      );
      out = { wallMs: performance.now() - t0 };
      await c.close();
    }
    latencies.sort((a, b) => a - b);
    const server = await stats();
    out = { ...out, calls, p50: pct(latencies, 0.5), p99: pct(latencies, 0.99), reached: server.requests };
  } else {
    // open loop: `offered` calls per second for `seconds`; the server's counts over the second half
    const totalMs = seconds * 1000;
    let sent = 0;
    let half;
    const pending = new Set();
    const api = process.env.BENCH_API;
    const c =
      api === 'fetchAll'
        ? undefined
        : http.createHttpClient({ cache: false, retry: false, circuitBreaker: false, adaptiveThrottle });
    // fetchAll: a paced async input
    let feed;
    let run;
    if (api === 'fetchAll') {
      const queue = [];
      let wake;
      let done = false;
      feed = {
        push: (u) => {
          queue.push(u);
          wake?.();
        },
        end: () => {
          done = true;
          wake?.();
        },
      };
      async function* input() {
        for (;;) {
          if (queue.length > 0) yield queue.shift();
          else if (done) return;
          else await new Promise((r) => (wake = r));
        }
      }
      const results = http.fetchAll(input(), {
        concurrency: 200,
        perHostConcurrency: 200,
        retry: false,
        circuitBreaker: false,
        adaptiveThrottle,
      });
      run = (async () => {
        for await (const _ of results) void _;
      })();
    }
    const t0 = performance.now();
    await new Promise((resolve) => {
      const timer = setInterval(() => {
        const elapsed = performance.now() - t0;
        if (elapsed >= totalMs) {
          clearInterval(timer);
          resolve();
          return;
        }
        if (half === undefined && elapsed >= totalMs / 2) half = stats();
        const due = Math.floor((elapsed * offered) / 1000);
        for (; sent < due; sent++) {
          if (feed) feed.push(`${base}/busy/${sent}`);
          else {
            const p = c.get(`${base}/busy/${sent}`).catch(() => undefined);
            pending.add(p);
            p.finally(() => pending.delete(p));
          }
        }
      }, 5);
    });
    const second = await stats();
    if (feed) {
      feed.end();
      await run;
    } else {
      await Promise.all(pending);
      await c.close();
    }
    await half;
    out = { offered: sent, reached: second.requests, accepted: second.accepted };
  }
  await control.close();
  process.stdout.write(JSON.stringify(out));
}

async function orchestrate() {
  const args = process.argv.slice(2).map(Number);
  const tailCalls = args[0] || 4000;
  const offered = args[1] || 300;
  const seconds = args[2] || 20;
  const pin = canPin();
  const node = process.execPath;
  const server = spawn(
    pin ? 'taskset' : node,
    [...(pin ? ['-c', '0', node] : []), self, '--serve', String(offered / 10)],
    {
      cwd: here,
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const [chunk] = await once(server.stdout, 'data');
  const port = Number(String(chunk).trim());
  const run = (api, spec) => {
    process.stderr.write(`http-policies: ${api} ${spec.scenario} ${spec.variant}\n`);
    const cmd = pin ? ['taskset', ['-c', '1', node]] : [node, []];
    return JSON.parse(
      execFileSync(cmd[0], [...cmd[1], self, '--client', JSON.stringify({ port, ...spec })], {
        cwd: here,
        encoding: 'utf8',
        env: { ...process.env, BENCH_API: api },
        timeout: 600_000,
      }),
    );
  };
  const results = {};
  try {
    for (const api of ['client', 'fetchAll']) {
      results[api] = {
        plain: run(api, { scenario: 'tail', variant: 'plain', calls: tailCalls }),
        hedge: run(api, { scenario: 'tail', variant: 'hedge', calls: tailCalls }),
        adaptive: run(api, { scenario: 'tail', variant: 'adaptive', calls: tailCalls }),
        noThrottle: run(api, {
          scenario: 'busy',
          variant: 'no-throttle',
          offered,
          seconds: Math.max(6, seconds / 2),
        }),
        throttle: run(api, { scenario: 'busy', variant: 'throttle', offered, seconds }),
      };
    }
  } finally {
    server.stdin.end();
  }
  const f = (n, d = 1) => n.toFixed(d);
  let md = `# @bulwark/http: hedging and adaptive throttling (\`bench/http-policies.mjs\`)\n\n`;
  md += `Command: \`node bench/http-policies.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}\`. Node ${process.version}; ${machineLine()}; server ${pin ? 'pinned to CPU 0, load generator to CPU 1 (taskset)' : 'not pinned'}. **Taken on a busy shared machine (other work running on both cores)**: absolute latencies are noisy; each row's variants ran back to back in one run.\n\n`;
  md += `### Slow tail (5 % of answers 200 ms, the rest 2 ms; ${tailCalls} calls, concurrency ${CONCURRENCY})\n\n`;
  md += `| API | variant | p50 ms | p99 ms | requests per call | p99 hedged / plain (bar ≤ 0.2) | extra requests (bar ≤ 10 %) |\n|---|---|---|---|---|---|---|\n`;
  for (const api of ['client', 'fetchAll']) {
    const { plain } = results[api];
    md += `| ${api} | no hedge | ${f(plain.p50)} | ${f(plain.p99)} | ${f(plain.reached / plain.calls, 3)} | | |\n`;
    for (const [name, r] of [
      [`\`hedge: { delayMs: ${HEDGE_DELAY_MS} }\``, results[api].hedge],
      ['`hedge: { percentile: 0.9 }` (adaptive delay)', results[api].adaptive],
    ]) {
      const ratio = r.p99 / plain.p99;
      const extra = r.reached / r.calls - 1;
      md += `| ${api} | ${name} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.reached / r.calls, 3)} | ${f(ratio, 3)} ${ratio <= 0.2 ? '(yes)' : '(**no**)'} | ${f(extra * 100)} % ${extra <= 0.1 ? '(yes)' : '(**no**)'} |\n`;
    }
  }
  md += `\n### Backend refusing 90 % (accepts ${offered / 10}/s, offered ${offered}/s open loop, no retries, no breaker)\n\n`;
  md += `Counted by the server over the second half of each run.\n\n| API | variant | requests reaching it | accepted | reaching / accepted |\n|---|---|---|---|---|\n`;
  for (const api of ['client', 'fetchAll']) {
    const { noThrottle, throttle } = results[api];
    md += `| ${api} | \`adaptiveThrottle: false\` | ${noThrottle.reached} | ${noThrottle.accepted} | ${f(noThrottle.reached / noThrottle.accepted, 2)} |\n`;
    md += `| ${api} | default (\`k: 2\`) | ${throttle.reached} | ${throttle.accepted} | ${f(throttle.reached / throttle.accepted, 2)} (≈ k = 2) |\n`;
  }
  writeFileSync(new URL('results/http-policies.md', import.meta.url), md);
  process.stdout.write(md);
}
