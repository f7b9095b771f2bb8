// The slow paths of issue 14 (item 0), each beside its bar: a new rate-limiter key vs a known one, the
// README's two-aggressive-timeout pipeline vs cockatiel's wrap, a call queued in a bulkhead inside a
// pipeline vs the bulkhead alone, retry through two failures vs a hand-written loop, and a pipeline around
// `undici.request` vs raw undici on a local server.
//
// Usage: node bench/core-paths.mjs [reps=5] [--node=<binary>]... [--only=<regex>]
//   Runs every case in `reps` fresh processes per Node binary (default: this one; pass --node several
//   times for several), the undici case with the server pinned to CPU 0 and the client to CPU 1
//   (`taskset`, when there are two CPUs), and writes results/core-paths.md.
// Child modes (used by the above): `--cases <seed> [regex]` prints JSON; `--serve` runs the HTTP server.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { canPin, fmt, median, shuffle } from './lib.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const self = fileURLToPath(import.meta.url);
const mode = process.argv[2];

if (mode === '--serve') await serve();
else if (mode === '--cases') await runCases(Number(process.argv[3] ?? 1), process.argv[4]);
else if (mode === '--undici') await runUndici(Number(process.argv[3]), Number(process.argv[4]));
else await orchestrate();

// ---------------------------------------------------------------------------------------------------------
// The cases, one process: prints { name: { ns, note? } } on stdout.

async function runCases(seed, only) {
  const { measure, do_not_optimize } = await import('mitata');
  const bw = await import('@bulwark/core');
  const ck4 = await import('cockatiel');
  const ck3 = await import('cockatiel3');
  const filter = only ? new RegExp(only) : undefined;
  const out = {};
  const record = (name, ns) => (out[name] = ns);
  const wanted = (group) => !filter || filter.test(group);
  const timed = async (fn) => (await measure(fn, { min_cpu_time: 300e6 })).avg;
  /** Process CPU ns per run of `run` (a batch): 20 warm-up runs, then the median of 15 samples of `per`. */
  const cpuPer = async (run, per) => {
    for (let i = 0; i < 20; i++) await run();
    const samples = [];
    for (let s = 0; s < 15; s++) {
      const before = process.cpuUsage();
      for (let i = 0; i < per; i++) await run();
      const used = process.cpuUsage(before);
      samples.push(((used.user + used.system) * 1000) / per);
    }
    return median(samples);
  };

  const groups = [];

  // A. The rate limiter's memory store under a flood of new client keys: a new key vs a known key,
  //    through `tryAcquire`. Time is simulated (one step per call), so the store sits at a steady size set
  //    by the arrival rate: keys refill after 1 s and are then dropped by the sweep, or evicted at maxKeys.
  groups.push([
    'rate-limiter',
    async () => {
      const BATCH = 500;
      const flood = (maxKeys, fill, rounds) => {
        let now = 0;
        const clock = { now: () => now, setTimeout: () => ({}), clearTimeout: () => {} };
        const store = bw.memoryRateLimitStore({ maxKeys });
        const limiter = bw.rateLimiter({ ratePerSecond: 1, burst: 1, store, clock });
        // one new key per step: about `1 s / stepMs` keys are not yet refilled (fill > 1: evictions)
        const stepMs = 1000 / (fill * maxKeys);
        let made = 0;
        const newKey = () => limiter.tryAcquire(`client-${made++}`);
        // a key made at most 0.4 s ago: still held (not refilled yet)
        const knownKey = (i) =>
          limiter.tryAcquire(`client-${made - 1 - ((i * 7919) % Math.floor(0.4 / (stepMs / 1000)))}`);
        for (let i = 0; i < 2 * maxKeys; i++) {
          now += stepMs;
          if (i % 2) knownKey(i);
          else newKey();
        }
        const known = [];
        const fresh = [];
        for (let r = 0; r < rounds; r++) {
          let t = process.hrtime.bigint();
          for (let i = 0; i < BATCH; i++) {
            now += stepMs;
            do_not_optimize(newKey());
          }
          fresh.push(Number(process.hrtime.bigint() - t) / BATCH);
          t = process.hrtime.bigint();
          for (let i = 0; i < BATCH; i++) {
            now += stepMs;
            do_not_optimize(knownKey(i));
          }
          known.push(Number(process.hrtime.bigint() - t) / BATCH);
        }
        return { known: median(known), fresh: median(fresh), size: store.size };
      };
      flood(10_000, 1, 20); // warm-up: every path compiled
      for (const maxKeys of [10_000, 100_000]) {
        for (const fill of [0.5, 0.9, 2]) {
          const { known, fresh, size } = flood(maxKeys, fill, 40);
          const label = `maxKeys ${maxKeys.toLocaleString('en-US')}, ${fill > 1 ? 'full, evicting' : `${Math.round(fill * 100)} % full`}`;
          record(`rate limiter: known key (${label})`, known);
          record(`rate limiter: new key (${label})`, fresh);
          if (size > maxKeys) throw new Error(`store holds ${size} keys, more than maxKeys ${maxKeys}`);
        }
      }
    },
  ]);

  // B. The README's pipeline: two aggressive timeouts, retry, breaker (the operation ignores its signal),
  //    beside cockatiel 4 and 3 composing the same four policies.
  const fn = async () => 1;
  const readsSignal = async (ctx) => ctx.signal.aborted;
  const ckReadsSignal = async ({ signal }) => signal.aborted;
  const readme = () =>
    bw.pipeline(
      bw.timeout({ timeoutMs: 2_000 }),
      bw.retry({ maxAttempts: 3, initialDelayMs: 10 }),
      bw.circuitBreaker({ strategy: { type: 'consecutive', threshold: 5 }, openDurationMs: 10_000 }),
      bw.timeout({ timeoutMs: 500 }),
    );
  const ckReadme = (ck) =>
    ck.wrap(
      ck.timeout(2_000, ck.TimeoutStrategy.Aggressive),
      ck.retry(ck.handleAll, { maxAttempts: 2, backoff: new ck.ExponentialBackoff({ initialDelay: 10 }) }),
      ck.circuitBreaker(ck.handleAll, { halfOpenAfter: 10_000, breaker: new ck.ConsecutiveBreaker(5) }),
      ck.timeout(500, ck.TimeoutStrategy.Aggressive),
    );
  groups.push([
    'readme-pipeline',
    async () => {
      const ours = readme();
      const c4 = ckReadme(ck4);
      const c3 = ckReadme(ck3);
      const cases = [
        ['baseline: await fn()', async () => do_not_optimize(await fn())],
        ['README pipeline: bulwark, op ignores signal', async () => do_not_optimize(await ours.execute(fn))],
        [
          'README pipeline: cockatiel 4 wrap, op ignores signal',
          async () => do_not_optimize(await c4.execute(fn)),
        ],
        [
          'README pipeline: cockatiel 3 wrap, op ignores signal',
          async () => do_not_optimize(await c3.execute(fn)),
        ],
        [
          'README pipeline: bulwark, op reads signal',
          async () => do_not_optimize(await ours.execute(readsSignal)),
        ],
        [
          'README pipeline: cockatiel 4 wrap, op reads signal',
          async () => do_not_optimize(await c4.execute(ckReadsSignal)),
        ],
      ];
      for (const [name, f] of shuffle(cases, seed)) record(name, await timed(f));
    },
  ]);

  // C. A call that queues in a bulkhead: batches of 100 calls at once on one slot (99 wait), alone and
  //    inside the README's pipeline with the bulkhead where docs/pipeline.md puts it. The operation yields
  //    to the event loop (setImmediate), as real work does, and the cost is process CPU per call; the same
  //    with an operation that resolves at once is reported beside it (mitata, per call).
  groups.push([
    'queued',
    async () => {
      const BATCH = 100;
      const yields = () => new Promise((resolve) => setImmediate(resolve));
      const slot = () => bw.bulkhead({ maxConcurrent: 1, maxQueue: Infinity });
      const inReadme = () =>
        bw.pipeline(
          bw.timeout({ timeoutMs: 2_000 }),
          bw.retry({ maxAttempts: 3, initialDelayMs: 10 }),
          bw.circuitBreaker({ strategy: { type: 'consecutive', threshold: 5 }, openDurationMs: 10_000 }),
          slot(),
          bw.timeout({ timeoutMs: 500 }),
        );
      const batch = (policy, op) => async () => {
        const calls = new Array(BATCH);
        for (let i = 0; i < BATCH; i++) calls[i] = policy.execute(op);
        do_not_optimize(await Promise.all(calls));
      };
      const cpu = [
        ['queued call: bulwark bulkhead alone', batch(slot(), yields)],
        ['queued call: bulwark bulkhead in the README pipeline', batch(inReadme(), yields)],
        ['queued call: cockatiel 4 bulkhead alone', batch(ck4.bulkhead(1, Infinity), yields)],
      ];
      for (const [name, f] of shuffle(cpu, seed)) record(`${name} (CPU)`, (await cpuPer(f, 10)) / BATCH);
      const wall = [
        ['queued call: bulwark bulkhead alone', batch(slot(), fn)],
        ['queued call: bulwark bulkhead in the README pipeline', batch(inReadme(), fn)],
      ];
      for (const [name, f] of shuffle(wall, seed))
        record(`${name} (op resolves at once)`, (await timed(f)) / BATCH);
    },
  ]);

  // D. Retry through two failures (the third attempt succeeds), 0 ms waits, a pre-allocated error: CPU
  //    per call over batches of 200 concurrent calls, beside a hand-written loop and cockatiel 4 / 3.
  groups.push([
    'retry-failures',
    async () => {
      const BATCH = 200;
      const error = new Error('flaky');
      const flaky = (attempt) => (attempt < 3 ? Promise.reject(error) : Promise.resolve(attempt));
      const wait0 = () => new Promise((resolve) => setTimeout(resolve, 0));
      async function handWritten() {
        for (let attempt = 1; ; attempt++) {
          try {
            return await flaky(attempt);
          } catch (e) {
            if (attempt >= 3) throw e;
            await wait0();
          }
        }
      }
      const ours = bw.retry({ maxAttempts: 3, backoff: bw.constantBackoff({ delayMs: 0 }) });
      const ck = (c) => c.retry(c.handleAll, { maxAttempts: 2, backoff: new c.ConstantBackoff(0) });
      const c4 = ck(ck4);
      const c3 = ck(ck3);
      const cases = [
        ['retry, two failures: hand-written loop', () => handWritten()],
        ['retry, two failures: bulwark', () => ours.execute((ctx) => flaky(ctx.attempt))],
        ['retry, two failures: cockatiel 4', () => c4.execute(({ attempt }) => flaky(attempt + 1))],
        ['retry, two failures: cockatiel 3', () => c3.execute(({ attempt }) => flaky(attempt + 1))],
      ];
      const cpuPerCall = async (call) => {
        const run = async () => {
          const calls = new Array(BATCH);
          for (let i = 0; i < BATCH; i++) calls[i] = call();
          const results = await Promise.all(calls);
          if (results[0] !== 3) throw new Error(`expected the third attempt to answer, got ${results[0]}`);
        };
        return (await cpuPer(run, 5)) / BATCH;
      };
      for (const [name, f] of shuffle(cases, seed)) record(name, await cpuPerCall(f));
    },
  ]);

  for (const [group, run] of shuffle(groups, seed)) if (wanted(group)) await run();
  process.stdout.write(JSON.stringify(out));
}

// ---------------------------------------------------------------------------------------------------------
// E. undici: the server (child, pinned to CPU 0) and one measurement per process (pinned to CPU 1).

async function serve() {
  const body = JSON.stringify({ hello: 'world', n: 42 });
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

/**
 * Prints { raw, ours, rawCpu, oursCpu }: requests per second and client CPU µs per request, `requests`
 * each, concurrency 50, 5 alternating pairs after 3 warm-up pairs (undici and the policies take tens of
 * thousands of requests to reach their steady speed).
 */
async function runUndici(port, requests) {
  const bw = await import('@bulwark/core');
  const { Agent, request } = await import('undici');
  const url = `http://127.0.0.1:${port}/`;
  const concurrency = 50;
  const policy = bw.pipeline(
    bw.timeout({ timeoutMs: 2_000 }),
    bw.retry({ maxAttempts: 3, initialDelayMs: 10 }),
    bw.circuitBreaker({ strategy: { type: 'consecutive', threshold: 5 }, openDurationMs: 10_000 }),
    bw.timeout({ timeoutMs: 500 }),
  );
  const get = async (dispatcher, signal) => {
    const { statusCode, body } = await request(url, { dispatcher, signal });
    await body.dump();
    if (statusCode !== 200) throw new Error(`status ${statusCode}`);
  };
  const clients = {
    raw: (dispatcher) => () => get(dispatcher, undefined),
    ours: (dispatcher) => () => policy.execute((ctx) => get(dispatcher, ctx.signal)),
  };
  const run = async (which, n) => {
    const dispatcher = new Agent({ connections: concurrency });
    const one = clients[which](dispatcher);
    let next = 0;
    let failed = 0;
    const worker = async () => {
      while (next < n) {
        next++;
        // a busy machine can time a request out (or open the breaker): count it, do not stop
        await one().catch(() => failed++);
      }
    };
    const cpu = process.cpuUsage();
    const t = performance.now();
    await Promise.all(Array.from({ length: concurrency }, worker));
    const seconds = (performance.now() - t) / 1000;
    const used = process.cpuUsage(cpu);
    await dispatcher.close();
    return { rps: (n - failed) / seconds, cpuUs: (used.user + used.system) / n, failed };
  };
  for (let i = 0; i < 3; i++) for (const which of ['raw', 'ours']) await run(which, requests);
  const out = { raw: [], ours: [], rawCpu: [], oursCpu: [], rawFailed: 0, oursFailed: 0 };
  for (let i = 0; i < 5; i++) {
    for (const which of i % 2 ? ['ours', 'raw'] : ['raw', 'ours']) {
      const { rps, cpuUs, failed } = await run(which, requests);
      out[which].push(rps);
      out[`${which}Cpu`].push(cpuUs);
      out[`${which}Failed`] += failed;
    }
  }
  process.stdout.write(JSON.stringify(out));
}

// ---------------------------------------------------------------------------------------------------------

async function orchestrate() {
  const args = process.argv.slice(2);
  const reps = Number(args.find((a) => /^\d+$/.test(a)) ?? 5);
  const only = args.find((a) => a.startsWith('--only='))?.slice(7);
  const nodes = args.filter((a) => a.startsWith('--node=')).map((a) => a.slice(7));
  if (nodes.length === 0) nodes.push(process.execPath);
  const pin = canPin();
  const sections = [];
  for (const node of nodes) {
    const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    const runs = [];
    for (let r = 1; r <= reps; r++) {
      process.stderr.write(`core paths (${version}): repetition ${r}/${reps}\n`);
      const cmd = pin ? ['taskset', ['-c', '1', node]] : [node, []];
      const json = execFileSync(cmd[0], [...cmd[1], self, '--cases', String(r), ...(only ? [only] : [])], {
        cwd: here,
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      });
      runs.push(JSON.parse(json));
    }
    let undici;
    if (!only || new RegExp(only).test('undici')) undici = await measureUndici(node, version, reps, pin);
    sections.push(report(version, runs, undici, reps));
  }
  let md = `## Slow paths (issue 14 item 0; \`bench/core-paths.mjs\`)\n\n`;
  md += `Command: \`node bench/core-paths.mjs ${reps}${nodes.length > 1 || nodes[0] !== process.execPath ? nodes.map((n) => ` --node=${n}`).join('') : ''}\`. `;
  md += `${reps} fresh processes per Node version; each runs every case once in a seeded shuffled order. Medians over processes; ratios are medians of per-process ratios. `;
  md += `Per-call costs are mean ns of mitata \`measure\` (≥ 300 ms CPU per case) except: the rate limiter (own loops under a simulated flood, one new client key per step of a fake clock, \`ratePerSecond: 1, burst: 1\`, so that the store holds the given share of \`maxKeys\` (keys refill after 1 s and are swept) or overflows it (evicting); median of 40 timed batches of 500 new-key calls, each followed by 500 calls of keys seen within the last 0.4 s) the queued calls marked CPU (process CPU time per call over batches of 100 concurrent calls on one slot, the operation yielding to the event loop with \`setImmediate\`) and retry (process CPU time per call, batches of 200 concurrent calls). `;
  md += pin
    ? `Measuring processes are pinned to CPU 1 and the undici case's server to CPU 0 (\`taskset\`).\n\n`
    : `Processes are not pinned (no \`taskset\` or a single CPU).\n\n`;
  md += sections.join('\n');
  writeFileSync(new URL('results/core-paths.md', import.meta.url), md);
  process.stdout.write(md);
}

async function measureUndici(node, version, reps, pin) {
  const requests = 5_000;
  const server = spawn(pin ? 'taskset' : node, pin ? ['-c', '0', node, self, '--serve'] : [self, '--serve'], {
    cwd: here,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const [chunk] = await once(server.stdout, 'data');
  const port = Number(String(chunk).trim());
  const rounds = [];
  try {
    for (let r = 1; r <= reps; r++) {
      process.stderr.write(`core paths (${version}): undici round ${r}/${reps}\n`);
      const cmd = pin ? ['taskset', ['-c', '1', node]] : [node, []];
      const json = execFileSync(cmd[0], [...cmd[1], self, '--undici', String(port), String(requests)], {
        cwd: here,
        encoding: 'utf8',
      });
      rounds.push(JSON.parse(json));
    }
  } finally {
    server.stdin.end();
    server.kill();
  }
  return { requests, rounds };
}

function report(version, runs, undici, reps) {
  const names = Object.keys(runs[0]);
  const med = (n) => median(runs.map((r) => r[n]));
  const ratio = (a, b) => median(runs.map((r) => r[a] / r[b]));
  let md = `### ${version}\n\n| case | ns per call (median) | range |\n|---|---:|---:|\n`;
  for (const n of names.sort()) {
    const xs = runs.map((r) => r[n]);
    md += `| ${n} | ${fmt(med(n))} | ${fmt(Math.min(...xs))} – ${fmt(Math.max(...xs))} |\n`;
  }
  const bars = [];
  for (const n of names.filter((x) => x.startsWith('rate limiter: new key'))) {
    bars.push([n, n.replace('new key', 'known key'), 2]);
  }
  bars.push(
    [
      'README pipeline: bulwark, op ignores signal',
      'README pipeline: cockatiel 4 wrap, op ignores signal',
      0.1,
    ],
    [
      'README pipeline: bulwark, op ignores signal',
      'README pipeline: cockatiel 3 wrap, op ignores signal',
      undefined,
    ],
    [
      'README pipeline: bulwark, op reads signal',
      'README pipeline: cockatiel 4 wrap, op reads signal',
      undefined,
    ],
    [
      'queued call: bulwark bulkhead in the README pipeline (CPU)',
      'queued call: bulwark bulkhead alone (CPU)',
      2,
    ],
    [
      'queued call: bulwark bulkhead in the README pipeline (op resolves at once)',
      'queued call: bulwark bulkhead alone (op resolves at once)',
      undefined,
    ],
    ['queued call: bulwark bulkhead alone (CPU)', 'queued call: cockatiel 4 bulkhead alone (CPU)', undefined],
    ['retry, two failures: bulwark', 'retry, two failures: hand-written loop', 1.2],
    ['retry, two failures: bulwark', 'retry, two failures: cockatiel 4', undefined],
    ['retry, two failures: bulwark', 'retry, two failures: cockatiel 3', undefined],
  );
  md += `\n| ours | against | ours ÷ against (median) | bar | met |\n|---|---|---:|---:|:-:|\n`;
  for (const [a, b, bar] of bars) {
    if (!(a in runs[0]) || !(b in runs[0])) continue;
    const q = ratio(a, b);
    md += `| ${a} | ${b} | ${fmt(q, 3)} | ${bar === undefined ? '(reported)' : `≤ ${bar}`} | ${bar === undefined ? '' : q <= bar ? 'yes' : '**no**'} |\n`;
  }
  if (undici !== undefined) {
    const per = undici.rounds.map((r) => median(r.ours.map((x, k) => x / r.raw[k])));
    const q = median(per);
    const cpu = median(undici.rounds.map((r) => median(r.rawCpu.map((x, k) => x / r.oursCpu[k]))));
    md += `| pipeline around \`undici.request\` (req/s) | raw \`undici.request\` (req/s) | ${fmt(q, 3)} | ≥ 0.85 | ${q >= 0.85 ? 'yes' : '**no**'} |\n`;
    md += `| pipeline around \`undici.request\` (requests per client CPU second) | raw \`undici.request\` | ${fmt(cpu, 3)} | (reported) | |\n`;
    md += `\nundici: ${undici.requests.toLocaleString('en-US')} requests per measurement at concurrency 50 to a local \`node:http\` server (keep-alive), 3 warm-up pairs then 5 alternating pairs per process, ${reps} processes; ratios are medians of per-pair ratios, then of processes. The pipeline is the README's (\`timeout(2 s)\`, \`retry\`, \`circuitBreaker\`, \`timeout(500 ms)\`) and hands \`ctx.signal\` to \`request\`. Raw req/s per process (median): ${undici.rounds.map((r) => fmt(median(r.raw))).join(', ')}; pipeline: ${undici.rounds.map((r) => fmt(median(r.ours))).join(', ')}. Client CPU µs per request, raw: ${undici.rounds.map((r) => fmt(median(r.rawCpu), 1)).join(', ')}; pipeline: ${undici.rounds.map((r) => fmt(median(r.oursCpu), 1)).join(', ')}. Failed requests (not counted in req/s), raw: ${undici.rounds.reduce((a, r) => a + r.rawFailed, 0)}; pipeline: ${undici.rounds.reduce((a, r) => a + r.oursFailed, 0)}.\n`;
  }
  return md;
}
