// many-requests benchmarks: fetchAll vs raw undici.request, one black-holed host among ten, RSS of a
// streamed 100k-URL run through the CLI. Loopback only; servers run in a child process. Prints markdown and
// writes results/many-requests.md. Needs `npm run build` first (it imports packages/http/dist and spawns
// apps/many-requests/dist).
// Usage: node many-requests.mjs [rounds=5] [requests=10000] [rssUrls=100000]
import { fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BODY = JSON.stringify({ hello: 'world', n: 42, items: [1, 2, 3] });

// ---- server mode: `node many-requests.mjs --serve <good servers>` --------------------------------------
if (process.argv[2] === '--serve') {
  const count = Number(process.argv[3]);
  const ports = [];
  for (let i = 0; i < count; i++) {
    const s = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
      res.end(BODY);
    });
    s.keepAliveTimeout = 60_000;
    await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
    ports.push(s.address().port);
  }
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
  process.send({ ports, blackhole: hole.address().port });
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}

async function main() {
  const rounds = Math.max(3, Number(process.argv[2] ?? 5));
  const requests = Number(process.argv[3] ?? 10_000);
  const rssUrls = Number(process.argv[4] ?? 100_000);
  const concurrency = 50;
  const root = new URL('..', import.meta.url).pathname;
  const { fetchAll } = await import(new URL('../packages/http/dist/index.js', import.meta.url));
  const { Agent, request } = await import('undici');

  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
  const log = (s) => process.stderr.write(`many-requests bench: ${s}\n`);

  const server = fork(new URL(import.meta.url).pathname, ['--serve', '9'], { stdio: 'inherit' });
  const [{ ports, blackhole }] = await once(server, 'message');
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
  const tenHostTimeoutMs = 500;
  const perHost = Math.ceil(requests / 10);
  const withDead = [];
  for (let i = 0; i < perHost; i++) {
    for (let h = 0; h < 9; h++) withDead.push(`${origin(ports[h])}/t?${i}`);
    withDead.push(`${origin(blackhole)}/t?${i}`);
  }
  const deadHost = `127.0.0.1:${blackhole}`;
  const withoutDead = withDead.filter((u) => !u.includes(deadHost));

  async function tenHosts(list, readAhead) {
    const codes = {};
    let goodFailed = 0;
    const t0 = performance.now();
    for await (const r of fetchAll(list, { concurrency, timeoutMs: tenHostTimeoutMs, readAhead })) {
      if (r.host === deadHost) codes[r.errorCode ?? 'ok'] = (codes[r.errorCode ?? 'ok'] ?? 0) + 1;
      else if (!r.ok) goodFailed++;
    }
    const wall = performance.now() - t0;
    if (goodFailed) throw new Error(`ten hosts: ${goodFailed} URLs of healthy hosts failed`);
    return { wall, codes };
  }

  const variants = [
    ['without the dead host', withoutDead, 1000],
    ['with the dead host (readAhead 1000, default)', withDead, 1000],
    ['with the dead host (readAhead 50 = concurrency)', withDead, 50],
  ];
  const tenRuns = Object.fromEntries(variants.map(([name]) => [name, []]));
  const tenRounds = 3;
  for (let r = 0; r < tenRounds; r++) {
    const order = r % 2 ? [...variants].reverse() : variants;
    loads.push(load());
    log(`ten hosts round ${r + 1}/${tenRounds}`);
    await tenHosts(withoutDead.slice(0, 900), 1000); // warm-up
    for (const [name, list, readAhead] of order) tenRuns[name].push(await tenHosts(list, readAhead));
  }
  server.send('accepted');
  const [{ accepted }] = await once(server, 'message');
  const baseTen = tenRuns['without the dead host'];
  const tenRows = variants.map(([name, list]) => {
    const walls = tenRuns[name].map((x) => x.wall);
    const ratios = walls.map((w, i) => w / baseTen[i].wall);
    const codes = tenRuns[name].at(-1).codes;
    const codeText = Object.keys(codes).length
      ? Object.entries(codes)
          .map(([c, n]) => `${c} ${n}`)
          .join(', ')
      : '—';
    return `| ${name} | ${fmt(list.length)} | ${fmt(median(walls))} | ${fmt(Math.min(...walls))} – ${fmt(Math.max(...walls))} | ${fmt(median(ratios), 2)}× | ${codeText} |`;
  });

  // ---- 3. RSS of a streamed run through the CLI ---------------------------------------------------------
  const dir = mkdtempSync(join(tmpdir(), 'many-requests-bench-'));
  const cli = join(root, 'apps/many-requests/dist/src/main.js');
  async function rss(n) {
    const file = join(dir, `urls-${n}.txt`);
    const lines = [];
    for (let i = 0; i < n; i++) lines.push(`${origin(ports[i % 9])}/s?${i}`);
    writeFileSync(file, lines.join('\n') + '\n');
    lines.length = 0;
    const args = [cli, '--file', file, '-c', String(concurrency), '--per-host', String(concurrency), '-q'];
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    let peakKb = 0;
    const sample = () => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peakKb = Math.max(peakKb, Number(m[1]));
      } catch {
        // the process has exited
      }
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
  const tenRatio = median(
    tenRuns['with the dead host (readAhead 1000, default)'].map((x, i) => x.wall / baseTen[i].wall),
  );
  const md = `## many-requests

Command: \`node bench/many-requests.mjs ${rounds} ${requests} ${rssUrls}\` (after \`npm run build\`). Servers: plain
\`node:http\` in one child process on 127.0.0.1, answering a ${BODY.length}-byte JSON body; the client is this
process. Every body is read to its end and counted, in both clients. 1-minute load average before the
rounds: ${loads.join(', ')} (2 cores; other work shares the machine, so compare ratios, not absolute numbers).

### fetchAll vs raw undici.request (${fmt(requests)} requests, concurrency 50, one origin)

Alternating order, ${rounds} rounds, 1,000 warm-up requests per client per round; fresh Agent / fetchAll run
per measurement. fetchAll runs with every policy on (per-origin breaker, timeout, retry with budget) and
\`perHostConcurrency: 50\`. Ratio = undici time / fetchAll time, per round, median (> 1: fetchAll is faster).

| client | req/s (median) | req/s range | ms per ${fmt(requests)} (median) | ratio vs undici.request | ratio range |
| --- | ---: | ---: | ---: | ---: | ---: |
${throughputRows.join('\n')}

**fetchAll / undici.request: ${fmt(ratio, 2)}×** (target ≥ 0.9×).

### One black-holed host among ten

Ten origins (ten ports on 127.0.0.1): nine answer, one accepts connections and never answers. URLs
interleaved across the hosts, ${fmt(perHost)} per host; concurrency 50, per-host 10, \`timeoutMs: ${tenHostTimeoutMs}\`,
retries 2, breaker opens after 5 consecutive failures (defaults otherwise). "Without" is the same list
minus the dead host's URLs. ${tenRounds} rounds, alternating order. The black hole accepted ${fmt(accepted)}
connections over all the runs.

| run | URLs | wall ms (median) | range | ratio vs without | dead host's URLs (last round) |
| --- | ---: | ---: | ---: | ---: | --- |
${tenRows.join('\n')}

**With / without the dead host: ${fmt(tenRatio, 2)}×** (target ≤ 1.25×). The dead host costs about one
\`timeoutMs\` (its first requests must time out before its breaker opens), overlapped with the other
hosts' work as long as the read-ahead window can hold the dead host's URLs meanwhile; with a window of
only \`concurrency\` URLs the input stalls behind it for that timeout.

### Memory: streamed URLs through the CLI

\`many-requests --file urls.txt -c 50 --per-host 50 -q\` (NDJSON to /dev/null), nine origins; peak RSS is
the process's VmHWM from /proc, sampled every 20 ms.

| URLs | peak RSS | wall ms | URLs/s | exit |
| ---: | ---: | ---: | ---: | ---: |
${rssRows.join('\n')}
`;
  writeFileSync(new URL('results/many-requests.md', import.meta.url), md);
  process.stdout.write(md);
}
