// http-get benchmark: peak RSS and time of a large download (1 GiB by default) through the CLI, side by
// side with curl and with the same CLI fetching a 1 KiB body (the baseline: what node + http-get cost
// before any body). The body streams from a server in a child process that generates it chunk by chunk
// (never held whole); every download is checked byte for byte against its SHA-256. Server and client are
// pinned to different cores with taskset when there are two. Loopback only.
// Needs `npm run build` first (it spawns apps/http-get/dist). Prints markdown and writes results/http-get.md.
// Usage: node bench/http-get.mjs [sizeMiB=1024] [rounds=3]
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, loadAverages, median, peakRssKiB, pinSelfTo } from './lib.mjs';

const CHUNK = 64 * 1024;

/** The body: a 64 KiB block of a fixed pattern, repeated and cut to `size` bytes. */
function block() {
  const b = Buffer.allocUnsafe(CHUNK);
  for (let i = 0; i < CHUNK; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

// ---- server mode: `node http-get.mjs --serve` ---------------------------------------------------------
if (process.argv[2] === '--serve') {
  const b = block();
  const server = createServer((req, res) => {
    const size = Number(new URL(req.url, 'http://x').searchParams.get('size'));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        const n = Math.min(CHUNK, size - sent);
        sent += n;
        if (!res.write(n === CHUNK ? b : b.subarray(0, n))) return res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}

async function main() {
  const sizeMiB = Number(process.argv[2] ?? 1024);
  const rounds = Math.max(1, Number(process.argv[3] ?? 3));
  const size = sizeMiB * 1024 * 1024;
  const root = fileURLToPath(new URL('..', import.meta.url));
  const cli = join(root, 'apps/http-get/dist/src/main.js');
  const log = (s) => process.stderr.write(`http-get bench: ${s}\n`);
  const load = () => loadAverages()[0];

  // pin: the server on core 1, this process and what it spawns on core 0 (when there are two)
  const pinned = pinSelfTo(0);
  const pin = (core, argv) =>
    pinned ? ['taskset', ['-c', String(core), ...argv]] : [argv[0], argv.slice(1)];
  const [serverCmd, serverArgs] = pin(1, [process.execPath, fileURLToPath(import.meta.url), '--serve']);
  const server = spawn(serverCmd, serverArgs, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [{ port }] = await once(server, 'message');
  const url = (n) => `http://127.0.0.1:${port}/body?size=${n}`;

  log(`expected SHA-256 of ${fmt(sizeMiB)} MiB`);
  const expected = (() => {
    const h = createHash('sha256');
    const b = block();
    for (let sent = 0; sent < size; sent += CHUNK)
      h.update(sent + CHUNK <= size ? b : b.subarray(0, size - sent));
    return h.digest('hex');
  })();
  const sha256 = async (file) => {
    const h = createHash('sha256');
    for await (const c of createReadStream(file, { highWaterMark: 1024 * 1024 })) h.update(c);
    return h.digest('hex');
  };

  const dir = mkdtempSync(join(tmpdir(), 'http-get-bench-'));
  /** Runs a command; peak RSS (VmHWM, sampled every 20 ms) and wall time. */
  async function measure(argv, env = {}) {
    const [cmd, args] = pin(0, argv);
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    let peakKb = 0;
    const sample = () => {
      // with taskset the measured process is taskset's exec: the same pid
      peakKb = Math.max(peakKb, peakRssKiB(child.pid) ?? 0);
    };
    const timer = setInterval(sample, 20);
    const [code] = await once(child, 'exit');
    clearInterval(timer);
    if (code !== 0) throw new Error(`${argv.join(' ')} exited ${code}: ${stderr}`);
    return { ms: performance.now() - t0, peakMiB: peakKb / 1024 };
  }

  const out = join(dir, 'body.bin');
  const cache = join(dir, 'cache');
  const spool = join(dir, 'spool');
  execFileSync('mkdir', ['-p', spool]);
  const limit = String(2 * size);
  const cases = {
    'http-get, 1 KiB body (baseline)': [process.execPath, cli, url(1024), '--no-cache', '-o', out],
    [`http-get -o (${fmt(sizeMiB)} MiB)`]: [
      process.execPath,
      cli,
      url(size),
      '--no-cache',
      '-o',
      out,
      '-m',
      '3600',
      '--max-body-bytes',
      limit,
    ],
    [`http-get -o, cache on (${fmt(sizeMiB)} MiB)`]: [
      process.execPath,
      cli,
      url(size),
      '--cache-dir',
      cache,
      '-o',
      out,
      '-m',
      '3600',
      '--max-body-bytes',
      limit,
    ],
    [`http-get to stdout (${fmt(sizeMiB)} MiB, spooled)`]: [
      process.execPath,
      cli,
      url(size),
      '--no-cache',
      '-m',
      '3600',
      '--max-body-bytes',
      limit,
    ],
    [`curl -o (${fmt(sizeMiB)} MiB)`]: ['curl', '-s', '-o', out, url(size)],
  };
  const results = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  const loads = [];
  for (let r = 0; r < rounds; r++) {
    const names = Object.keys(cases);
    if (r % 2) names.reverse();
    loads.push(load());
    for (const name of names) {
      log(`round ${r + 1}/${rounds}: ${name}`);
      rmSync(out, { force: true });
      rmSync(cache, { recursive: true, force: true });
      results[name].push(await measure(cases[name], { TMPDIR: spool }));
      if (name.includes('-o') && !name.includes('baseline')) {
        if (statSync(out).size !== size || (await sha256(out)) !== expected)
          throw new Error(`${name}: the file is not the body`);
      }
    }
  }
  server.disconnect();
  rmSync(dir, { recursive: true, force: true });

  const baseline = median(results['http-get, 1 KiB body (baseline)'].map((x) => x.peakMiB));
  const curlMs = median(results[`curl -o (${fmt(sizeMiB)} MiB)`].map((x) => x.ms));
  const rows = Object.entries(results).map(([name, xs]) => {
    const rss = median(xs.map((x) => x.peakMiB));
    const ms = median(xs.map((x) => x.ms));
    const over =
      name.startsWith('http-get') && !name.includes('baseline') ? `${fmt(rss - baseline, 1)} MiB` : '—';
    return `| ${name} | ${fmt(rss, 1)} MiB | ${over} | ${fmt(ms)} | ${fmt(ms / curlMs, 2)}× |`;
  });
  const oRss = median(results[`http-get -o (${fmt(sizeMiB)} MiB)`].map((x) => x.peakMiB));
  const md = `## http-get

Command: \`node bench/http-get.mjs ${sizeMiB} ${rounds}\` (after \`npm run build\`), Node ${process.version},
${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}; ${pinned ? 'the server pinned to core 1, the clients to core 0 (taskset)' : 'not pinned (one core, or no taskset)'}.
The server (a child process) generates the ${fmt(sizeMiB)} MiB body 64 KiB at a time with a
\`Content-Length\`; every file written is checked against the body's SHA-256. Peak RSS is the client
process's VmHWM from /proc, sampled every 20 ms; wall time includes starting the process. Median of
${rounds} rounds, alternating order; 1-minute load average before each round: ${loads.join(', ')} (a shared
machine: compare within the table).

| client | peak RSS | over the 1 KiB baseline | wall ms | time vs curl |
| --- | ---: | ---: | ---: | ---: |
${rows.join('\n')}

**Peak RSS of a ${fmt(sizeMiB)} MiB \`-o\` download: ${fmt(oRss, 1)} MiB, ${fmt(oRss - baseline, 1)} MiB over the
baseline** (target ≤ 100 MiB over it). The body streams to a temp file (\`-o\`), to an unlinked spool
file (stdout: held until complete, then written), and with the cache on also into the cache's temp file
until it passes the cache's 256 MiB bound (then that copy is dropped); memory holds only what is in
flight. The stdout row writes the body twice (spool, then stdout), which is its cost in time.
`;
  writeFileSync(new URL('results/http-get.md', import.meta.url), md);
  process.stdout.write(md);
}
