// many-requests benchmarks: fetchAll vs raw undici.request, one black-holed host among ten (live hosts
// answering at once, and answering after a fixed 20 ms think time; the dead host with 1,000 and 5,000
// URLs; with attemptTimeoutMs 500, and at the defaults), RSS of a streamed 100k-URL run through the CLI. Loopback
// only; servers run in a child process pinned to core 1, the client on core 0 (taskset, when there are two).
// Prints markdown and writes results/many-requests.md. Needs `npm run build` first (it imports
// packages/http/dist and spawns apps/many-requests/dist).
// Usage: node bench/many-requests.mjs [rounds=5] [requests=10000] [rssUrls=100000]
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, loadAverages, median, peakRssKiB, pinSelfTo } from './lib.mjs';

const BODY = JSON.stringify({ hello: 'world', n: 42, items: [1, 2, 3] });
/** The live hosts' fixed think time in the "remote-like" ten-host case, in ms. */
const THINK_MS = 20;

// ---- server mode: `node many-requests.mjs --serve <good servers>` --------------------------------------
// <good servers> instant origins, as many again answering after THINK_MS, and one black hole
if (process.argv[2] === '--serve') {
  const count = Number(process.argv[3]);
  const listen = async (thinkMs) => {
    const s = createHttpServer((req, res) => {
      req.resume();
      const answer = () => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
        res.end(BODY);
      };
      if (thinkMs > 0) setTimeout(answer, thinkMs);
      else answer();
    });
    s.keepAliveTimeout = 60_000;
    await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
    return s.address().port;
  };
  const ports = [];
  const slowPorts = [];
  for (let i = 0; i < count; i++) ports.push(await listen(0));
  for (let i = 0; i < count; i++) slowPorts.push(await listen(THINK_MS));
  // the black hole: accepts connections and reads requests, never answers
  let accepted = 0;
  const hole = createTcpServer((socket) => {
    accepted++;
    socket.on('data', () => {});
    socket.on('error', () => {});
  });
  await new Promise((resolve) => hole.listen(0, '127.0.0.1', resolve));
  process.on('message', (m) => {
    if (m === 'accepted') process.send({ accepted });
  });
  process.send({ ports, slowPorts, blackhole: hole.address().port });
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}

async function main() {
  const rounds = Math.max(3, Number(process.argv[2] ?? 5));
  const requests = Number(process.argv[3] ?? 10_000);
  const rssUrls = Number(process.argv[4] ?? 100_000);
  const concurrency = 50;
  const root = fileURLToPath(new URL('..', import.meta.url));
  const { fetchAll, FETCH_ALL_DEFAULTS } = await import(
    new URL('../packages/http/dist/index.js', import.meta.url)
  );
  const { Agent, request } = await import('undici');

  const load = () => loadAverages()[0];
  const log = (s) => process.stderr.write(`many-requests bench: ${s}\n`);

  // pin: the servers on core 1, this process (and the CLI it spawns) on core 0
  const pinned = pinSelfTo(0);
  const serve = [process.execPath, fileURLToPath(import.meta.url), '--serve', '9'];
  const server = pinned
    ? spawn('taskset', ['-c', '1', ...serve], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    : spawn(serve[0], serve.slice(1), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [{ ports, slowPorts, blackhole }] = await once(server, 'message');
  const origin = (port) => `http://127.0.0.1:${port}`;
  const loads = [];

  // ---- 1. throughput: fetchAll vs undici.request, same concurrency, one server ------------------------
  const urls = (n, tag) => Array.from({ length: n }, (_, i) => `${origin(ports[0])}/r?${tag}-${i}`);

  async function raw(list) {
    const dispatcher = new Agent({ connections: concurrency });
    let next = 0;
    let failed = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < list.length) {
          const { statusCode, body } = await request(list[next++], { dispatcher });
          let bytes = 0;
          for await (const chunk of body) bytes += chunk.length;
          if (statusCode !== 200 || bytes !== BODY.length) failed++;
        }
      }),
    );
    const ms = performance.now() - t0;
    await dispatcher.close();
    if (failed) throw new Error(`undici.request: ${failed} failed`);
    return ms;
  }

  async function library(list, options = {}) {
    let failed = 0;
    const t0 = performance.now();
    for await (const r of fetchAll(list, { concurrency, perHostConcurrency: concurrency, ...options })) {
      if (!r.ok || r.bytes !== BODY.length) failed++;
    }
    const ms = performance.now() - t0;
    if (failed) throw new Error(`fetchAll: ${failed} failed`);
    return ms;
  }

  const clients = { 'undici.request (Agent, connections 50)': raw, 'fetchAll (@bulwark/http)': library };
  const ms = Object.fromEntries(Object.keys(clients).map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    const names = Object.keys(clients);
    if (r % 2) names.reverse();
    loads.push(load());
    log(`throughput round ${r + 1}/${rounds}: ${names.join(' then ')}`);
    for (const name of names) {
      await clients[name](urls(1000, `w${r}`)); // warm-up
      ms[name].push(await clients[name](urls(requests, `m${r}`)));
    }
  }
  const base = 'undici.request (Agent, connections 50)';
  const throughputRows = Object.keys(clients).map((name) => {
    const rps = ms[name].map((t) => (requests * 1000) / t);
    const ratios = ms[name].map((t, i) => ms[base][i] / t);
    return `| ${name} | ${fmt(median(rps))} | ${fmt(Math.min(...rps))} – ${fmt(Math.max(...rps))} | ${fmt(median(ms[name]))} | ${fmt(median(ratios), 2)}× | ${fmt(Math.min(...ratios), 2)} – ${fmt(Math.max(...ratios), 2)} |`;
  });

  // ---- 2. one black-holed host among ten --------------------------------------------------------------
  // Two settings of the nine live hosts, chosen up front (not tuned on results):
  // - instant: they answer at once (loopback, CPU-bound): the run without the dead host takes less than
  //   one attemptTimeoutMs, so the dead host's unavoidable one timeout can only partly overlap with it;
  // - think: they answer after a fixed THINK_MS, like remote hosts: the run is several attemptTimeoutMs long.
  // The dead host gets as many URLs as each live host (1,000) or five times as many: its cost should be about one
  // attemptTimeoutMs of its breaker-threshold slots, whatever its URL count (the read-ahead window permitting).
  const tenHostTimeoutMs = 500;
  const perHost = Math.ceil(requests / 10);
  const deadHost = `127.0.0.1:${blackhole}`;
  /** Live hosts' URLs interleaved (`count` per host), `deadCount` dead-host URLs spread evenly among them. */
  function tenHostList(livePorts, deadCount, count = perHost) {
    const live = [];
    for (let i = 0; i < count; i++) for (const port of livePorts) live.push(`${origin(port)}/t?${i}`);
    if (deadCount === 0) return live;
    const list = [];
    let d = 0;
    for (let i = 0; i < live.length; i++) {
      // after live URL i, the dead URLs due by then: d = round((i + 1) × deadCount / live.length)
      list.push(live[i]);
      for (const due = Math.round(((i + 1) * deadCount) / live.length); d < due; d++)
        list.push(`${origin(blackhole)}/t?${d}`);
    }
    return list;
  }

  async function tenHosts(list, readAhead, defaults = false) {
    const codes = {};
    let goodFailed = 0;
    let openedAt;
    let liveDone = 0;
    const t0 = performance.now();
    // at the defaults: nothing but the URLs (concurrency 50 and readAhead 1000 are the defaults too)
    const run = defaults
      ? fetchAll(list)
      : fetchAll(list, { concurrency, attemptTimeoutMs: tenHostTimeoutMs, readAhead });
    run.onBreakerStateChange((e) => {
      if (e.host === deadHost && e.to === 'open') openedAt ??= performance.now() - t0;
    });
    for await (const r of run) {
      if (r.host === deadHost) codes[r.errorCode ?? 'ok'] = (codes[r.errorCode ?? 'ok'] ?? 0) + 1;
      else {
        if (!r.ok) goodFailed++;
        liveDone = performance.now() - t0;
      }
    }
    const wall = performance.now() - t0;
    if (goodFailed) throw new Error(`ten hosts: ${goodFailed} URLs of healthy hosts failed`);
    return { wall, codes, openedAt, liveDone };
  }

  const tenCases = [
    {
      name: 'instant',
      title: 'live hosts answer at once',
      // short runs, noisier under other work: twice the rounds
      rounds: 2 * rounds,
      ports,
      variants: [
        ['without the dead host', 0, 1000],
        [`with the dead host: ${fmt(perHost)} URLs (readAhead 1000, default)`, perHost, 1000],
        [`with the dead host: ${fmt(5 * perHost)} URLs (readAhead 1000, default)`, 5 * perHost, 1000],
        [`with the dead host: ${fmt(perHost)} URLs (readAhead 50 = concurrency)`, perHost, 50],
      ],
    },
    {
      name: 'think',
      title: `live hosts answer after ${THINK_MS} ms`,
      rounds,
      ports: slowPorts,
      variants: [
        ['without the dead host', 0, 1000],
        [`with the dead host: ${fmt(perHost)} URLs (readAhead 1000, default)`, perHost, 1000],
        [`with the dead host: ${fmt(5 * perHost)} URLs (readAhead 1000, default)`, 5 * perHost, 1000],
      ],
    },
    {
      name: 'defaults',
      title: `at the defaults (attempt timeout ${fmt(FETCH_ALL_DEFAULTS.attemptTimeoutMs)} ms), live hosts answer after ${THINK_MS} ms`,
      rounds: Math.max(3, Math.ceil(rounds / 2)),
      ports: slowPorts,
      defaults: true,
      variants: [
        ['without the dead host', 0, 1000],
        [`with the dead host: ${fmt(perHost)} URLs`, perHost, 1000],
        ['without the dead host (3× the URLs per live host)', 0, 1000, 3 * perHost],
        [`with the dead host: ${fmt(perHost)} URLs (3× the URLs per live host)`, perHost, 1000, 3 * perHost],
      ],
      // each "with" row is compared with the "without" row of its own size
      baseOf: [0, 0, 2, 2],
    },
  ];
  const tenSections = [];
  const tenRatios = {};
  for (const c of tenCases) {
    const lists = c.variants.map(([, dead, , count]) => tenHostList(c.ports, dead, count));
    const runs = c.variants.map(() => []);
    for (let r = 0; r < c.rounds; r++) {
      const order = c.variants.map((_, i) => i);
      if (r % 2) order.reverse();
      loads.push(load());
      log(`ten hosts (${c.name}) round ${r + 1}/${c.rounds}`);
      await tenHosts(tenHostList(c.ports, 0).slice(0, 900), 1000); // warm-up
      for (const i of order) runs[i].push(await tenHosts(lists[i], c.variants[i][2], c.defaults === true));
    }
    const base = runs[0];
    const rows = c.variants.map(([name], i) => {
      const b = runs[c.baseOf?.[i] ?? 0];
      const isBase = (c.baseOf?.[i] ?? 0) === i;
      const walls = runs[i].map((x) => x.wall);
      const ratios = walls.map((w, k) => w / b[k].wall);
      const extra = walls.map((w, k) => w - b[k].wall);
      const opened = runs[i].map((x) => x.openedAt).filter((t) => t !== undefined);
      const codes = runs[i].at(-1).codes;
      const codeText = Object.keys(codes).length
        ? Object.entries(codes)
            .map(([code, n]) => `${code} ${fmt(n)}`)
            .join(', ')
        : '—';
      if (!isBase) tenRatios[`${c.name} ${name}`] = median(ratios);
      return `| ${name} | ${fmt(lists[i].length)} | ${fmt(median(walls))} | ${fmt(Math.min(...walls))} – ${fmt(Math.max(...walls))} | ${!isBase ? `${fmt(median(extra))}` : '—'} | ${fmt(median(ratios), 2)}× | ${!isBase ? `${fmt(Math.min(...ratios), 2)} – ${fmt(Math.max(...ratios), 2)}` : '—'} | ${opened.length ? fmt(median(opened)) : '—'} | ${fmt(median(runs[i].map((x) => x.liveDone)))} | ${codeText} |`;
    });
    tenSections.push({
      c,
      rows,
      withoutMs: median(base.map((x) => x.wall)),
      withoutMsOf: c.variants.map((_, i) => median(runs[i].map((x) => x.wall))),
    });
  }
  server.send('accepted');
  const [{ accepted }] = await once(server, 'message');

  // ---- 3. RSS of a streamed run through the CLI ---------------------------------------------------------
  const dir = mkdtempSync(join(tmpdir(), 'many-requests-bench-'));
  const cli = join(root, 'apps/many-requests/dist/src/main.js');
  async function rss(n) {
    const file = join(dir, `urls-${n}.txt`);
    const lines = [];
    for (let i = 0; i < n; i++) lines.push(`${origin(ports[i % 9])}/s?${i}`);
    writeFileSync(file, lines.join('\n') + '\n');
    lines.length = 0;
    const args = [cli, '-i', file, '-c', String(concurrency), '--per-host', String(concurrency), '-q'];
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    let peakKb = 0;
    const sample = () => {
      peakKb = Math.max(peakKb, peakRssKiB(child.pid) ?? 0);
    };
    const timer = setInterval(sample, 20);
    const [code] = await once(child, 'exit');
    clearInterval(timer);
    const wall = performance.now() - t0;
    return { n, code, wall, peakMb: peakKb / 1024 };
  }
  log(`RSS: ${fmt(rssUrls / 10)} and ${fmt(rssUrls)} URLs through the CLI`);
  loads.push(load());
  const rssRows = [];
  for (const n of [rssUrls / 10, rssUrls]) {
    const x = await rss(n);
    rssRows.push(
      `| ${fmt(x.n)} | ${fmt(x.peakMb, 1)} MB | ${fmt(x.wall)} | ${fmt((x.n * 1000) / x.wall)} | ${x.code} |`,
    );
  }
  rmSync(dir, { recursive: true, force: true });
  server.disconnect();

  const ratio = median(ms['fetchAll (@bulwark/http)'].map((t, i) => ms[base][i] / t));
  const tenTable = (
    rows,
  ) => `| run | URLs | wall ms (median) | range | extra ms vs without (median) | ratio vs without (median) | ratio range | breaker opened at ms (median) | last live URL done at ms (median) | dead host's URLs (last round) |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
${rows.join('\n')}`;
  const instantNote = (ms) =>
    ms < tenHostTimeoutMs
      ? `Here it took ${fmt(ms)} ms (median): the floor is ~${fmt(tenHostTimeoutMs / ms, 2)}×.`
      : `Here it took ${fmt(ms)} ms (median), more than one \`timeoutMs\`: the machine was slower than that ` +
        `(other work, or a slower host), so the timeout overlapped with the live hosts' work and this ratio ` +
        `is lower than a quiet, faster machine would show.`;
  const ratioOf = (c, n) =>
    fmt(tenRatios[`${c} with the dead host: ${fmt(n)} URLs (readAhead 1000, default)`], 2);
  const md = `## many-requests

Command: \`node bench/many-requests.mjs ${rounds} ${requests} ${rssUrls}\` (after \`npm run build\`), ${pinned ? 'servers pinned to core 1, the client to core 0 (taskset)' : 'not pinned'}, Node
${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}. Servers: plain \`node:http\` in one child
process on 127.0.0.1, answering a ${BODY.length}-byte JSON body; the client is this process. Every body is read
to its end and counted, in both clients. 1-minute load average before each round: ${loads.join(', ')}
(${cpus().length} cores, shared with other work, so compare ratios, not absolute numbers).

### fetchAll vs raw undici.request (${fmt(requests)} requests, concurrency 50, one origin)

Alternating order, ${rounds} rounds, 1,000 warm-up requests per client per round; fresh Agent / fetchAll run
per measurement. fetchAll runs with every policy on (per-origin breaker, timeout, retry with budget) and
\`perHostConcurrency: 50\`. Ratio = undici time / fetchAll time, per round, median (> 1: fetchAll is faster).

| client | req/s (median) | req/s range | ms per ${fmt(requests)} (median) | ratio vs undici.request | ratio range |
| --- | ---: | ---: | ---: | ---: | ---: |
${throughputRows.join('\n')}

**fetchAll / undici.request: ${fmt(ratio, 2)}×** (target ≥ 0.9×).

### One black-holed host among ten

Ten origins (ten ports on 127.0.0.1): nine answer, one accepts connections and never answers. Every
run: \`concurrency: 50\`, per-host 10, \`attemptTimeoutMs: ${tenHostTimeoutMs}\`, retries 2, breaker opens after 5
consecutive failures (defaults otherwise). ${fmt(perHost)} URLs per live host, interleaved; the dead host's
URLs are spread evenly among them. "Without" is the same list minus the dead host's URLs; every ratio is
with ÷ without of the same round (alternating order, one warm-up run per round). The
black hole accepted ${fmt(accepted)} connections over all the runs.

What a dead host must cost: its first 5 requests wait one \`timeoutMs\` (${tenHostTimeoutMs} ms) before its
breaker can open, and hold 5 of the 50 global slots meanwhile (a host that has not answered yet gets
as many requests in flight as the failures that open its breaker); then all its other URLs fail at once (\`CIRCUIT_OPEN\`). So the run
with it cannot end before ~${tenHostTimeoutMs} ms, and the live hosts lose 5 × ${tenHostTimeoutMs} ms of slot time (~${fmt((5 * tenHostTimeoutMs) / concurrency)} ms
of a 50-slot run).

**Case 1 — live hosts answer at once** (plain \`node:http\`, loopback, CPU-bound; the case the bar was
first measured on; ${tenCases[0].rounds} rounds). Sized so that the run without the dead host is shorter than one
\`timeoutMs\` on a quiet machine; then the ratio cannot go below ~${tenHostTimeoutMs} ms ÷ that run's length
whatever the library does, and says how close to that floor the run gets, not what a dead host costs a
real run. ${instantNote(tenSections[0].withoutMs)}

${tenTable(tenSections[0].rows)}

**Case 2 — live hosts answer after a fixed ${THINK_MS} ms** (a \`setTimeout\` per request in the server: a
typical remote API's latency; ${tenCases[1].rounds} rounds). The runs are several \`timeoutMs\` long, as runs against remote hosts are,
so the dead host's one timeout overlaps with the live hosts' work; the ${THINK_MS} ms was chosen for that
before measuring, not tuned on the result.

${tenTable(tenSections[1].rows)}

**With / without the dead host (target ≤ 1.25×):** live hosts answering at once: ${ratioOf('instant', perHost)}× (dead
host with ${fmt(perHost)} URLs), ${ratioOf('instant', 5 * perHost)}× (${fmt(5 * perHost)} URLs); live hosts answering after ${THINK_MS} ms:
${ratioOf('think', perHost)}× (${fmt(perHost)} URLs), ${ratioOf('think', 5 * perHost)}× (${fmt(5 * perHost)} URLs).

Reading the rows: the breaker opens one \`attemptTimeoutMs\` into the run; the dead host's URLs beyond its first 5
stop holding slots and the read-ahead window then (they wait for the host while the live hosts work, and
fail with \`CIRCUIT_OPEN\` once nothing else is left), so "extra ms" is what the dead host costs. Before
its breaker opens, the read-ahead window (\`concurrency + readAhead\` URLs held) holds the dead host's
URLs; when it receives more than that within one \`timeoutMs\` (more URLs, faster live hosts, or a
window of only \`concurrency\`), the input stalls behind it until then.

**Case 3 — at the defaults** (\`fetchAll(urls)\`, nothing else: attempt timeout
${fmt(FETCH_ALL_DEFAULTS.attemptTimeoutMs)} ms, \`maxWaitMs\` ${FETCH_ALL_DEFAULTS.maxWaitMs}, concurrency ${FETCH_ALL_DEFAULTS.concurrency}, per host ${FETCH_ALL_DEFAULTS.perHostConcurrency};
the CLI's defaults are the same), live hosts answering after ${THINK_MS} ms; ${tenCases[2].rounds} rounds. The dead host
costs one attempt timeout, overlapped with the live hosts' work; the run with it cannot end before it.
So the ratio depends on how long the run is against ${fmt(FETCH_ALL_DEFAULTS.attemptTimeoutMs)} ms: two sizes,
${fmt(perHost)} and ${fmt(3 * perHost)} URLs per live host (runs of ~${fmt(tenSections[2].withoutMsOf[0] / 1000, 1)} s and ~${fmt(tenSections[2].withoutMsOf[2] / 1000, 1)} s here).

${tenTable(tenSections[2].rows)}

**Dead-host ratio at the defaults: ${fmt(tenRatios[`defaults with the dead host: ${fmt(perHost)} URLs`], 2)}× (a ~${fmt(tenSections[2].withoutMsOf[0] / 1000, 1)} s run),
${fmt(tenRatios[`defaults with the dead host: ${fmt(perHost)} URLs (3× the URLs per live host)`], 2)}× (a ~${fmt(tenSections[2].withoutMsOf[2] / 1000, 1)} s run)** (target ≤ 1.25×). A run shorter than one attempt
timeout cannot get below ${fmt(FETCH_ALL_DEFAULTS.attemptTimeoutMs)} ms ÷ its length: a bulk job is longer than that.

### Memory: streamed URLs through the CLI

\`many-requests -i urls.txt -c 50 --per-host 50 -q\` (NDJSON to /dev/null), nine origins; peak RSS is
the process's VmHWM from /proc, sampled every 20 ms.

| URLs | peak RSS | wall ms | URLs/s | exit |
| ---: | ---: | ---: | ---: | ---: |
${rssRows.join('\n')}
`;
  writeFileSync(new URL('results/many-requests.md', import.meta.url), md);
  process.stdout.write(md);
}
