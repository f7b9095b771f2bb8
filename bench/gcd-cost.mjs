#!/usr/bin/env node
// JavaScript CPU per request of GET /api/gcd, measured in-process and without the network: requests go
// through Node's own HTTP server (parser, headers, writes) on an in-memory socket, 20 pipelined at a
// time, so neither the kernel's loopback nor a load generator sharing the cores blurs what the server's
// JavaScript costs. Three servers, each in a fresh process per round (rotating order):
//   bare     — bench/gcd-bare-server.mjs's route: bare Fastify, nothing else;
//   headers  — the same plus the response headers the full stack sends (copied from a live answer);
//   full     — apps/gcd-service on its defaults (as bench/gcd-service.mjs runs it: JSON logs at info,
//              metrics, security headers, request ids, validation, shedding, a non-binding rate limit).
// Each process warms up (20,000 requests), then times 9 batches of 20,000 with process.cpuUsage(); it
// reports the lowest and the median batch in µs per request (other jobs on the machine can only add).
// Usage: node bench/gcd-cost.mjs [rounds=3]   (needs `npx tsc -b apps/gcd-service` first)
// Prints markdown; writes bench/results/gcd-cost.md.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { loadAverages } from './lib.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const PATH = '/api/gcd?n=18446744073709551615&m=12297829382473034410';
const PIPELINE = 20;
const BATCH = 20_000;
const BATCHES = 9;
const FULL_ENV = { LOG_LEVEL: 'info', RATE_LIMIT_PER_SECOND: '1000000', RATE_LIMIT_BURST: '1000000' };

/** A socket made of memory: what is pushed is read by the HTTP server; what it writes goes to `sink`. */
class MemorySocket extends Duplex {
  remoteAddress = '127.0.0.1';
  remotePort = 40000;
  remoteFamily = 'IPv4';
  localAddress = '127.0.0.1';
  localPort = 3000;
  encrypted = false;
  constructor(sink) {
    super();
    this.sink = sink;
  }
  _read() {}
  _write(chunk, _encoding, callback) {
    this.sink(chunk);
    callback();
  }
  _writev(chunks, callback) {
    for (const { chunk } of chunks) this.sink(chunk);
    callback();
  }
  setTimeout() {
    return this;
  }
  setNoDelay() {
    return this;
  }
  setKeepAlive() {
    return this;
  }
  ref() {
    return this;
  }
  unref() {
    return this;
  }
}

const OK = Buffer.from('HTTP/1.1 200 ');
const ANY = Buffer.from('HTTP/1.1 ');

/** Sends `n` requests through `server` (PIPELINE at a time); resolves when all have answered 200. */
function drive(server, n, request) {
  return new Promise((resolve, reject) => {
    let answered = 0;
    let sent = 0;
    let outstanding = 0;
    const socket = new MemorySocket((chunk) => {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
      for (let i = buffer.indexOf(ANY); i !== -1; i = buffer.indexOf(ANY, i + ANY.length)) {
        if (buffer.compare(OK, 0, OK.length, i, i + OK.length) !== 0) {
          reject(new Error(`not a 200: ${buffer.toString('latin1', i, i + 200)}`));
          return;
        }
        answered++;
        outstanding--;
      }
      if (answered === n) {
        socket.destroy();
        resolve();
      } else if (outstanding === 0) {
        pump();
      }
    });
    const burst = Buffer.concat(Array.from({ length: PIPELINE }, () => request));
    const pump = () => {
      const k = Math.min(PIPELINE, n - sent);
      sent += k;
      outstanding += k;
      socket.push(k === PIPELINE ? burst : burst.subarray(0, request.length * k));
    };
    server.emit('connection', socket);
    pump();
  });
}

/** The full stack's Fastify app, configured as bench/gcd-service.mjs runs it, ready. */
async function fullApp() {
  Object.assign(process.env, FULL_ENV);
  const { loadConfig } = await import(`${root}apps/gcd-service/dist/src/config.js`);
  const { createGcdServer } = await import(`${root}apps/gcd-service/dist/src/server.js`);
  const { app } = await createGcdServer(loadConfig(process.env));
  await app.ready();
  return app;
}

async function child(kind) {
  let server;
  if (kind === 'full') {
    server = (await fullApp()).server;
  } else {
    process.env.BENCH_NO_LISTEN = '1';
    if (kind === 'headers') process.env.BARE_EXTRA_HEADERS = process.argv[4];
    const { app } = await import(`${root}bench/gcd-bare-server.mjs`);
    await app.ready();
    server = app.server;
  }
  const request = Buffer.from(`GET ${PATH} HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nUser-Agent: bench\r\n\r\n`);
  await drive(server, BATCH, request); // warm-up
  const perRequest = [];
  for (let b = 0; b < BATCHES; b++) {
    const start = process.cpuUsage();
    await drive(server, BATCH, request);
    const used = process.cpuUsage(start);
    perRequest.push((used.user + used.system) / BATCH);
  }
  if (process.send) process.send({ perRequest });
  else console.log(kind, perRequest.map((x) => x.toFixed(2)).join(' ')); // run by hand, e.g. under --cpu-prof
  process.exit(0);
}

/** The response headers of the full stack that bare Fastify does not send (the `headers` server's set). */
async function fullStackHeaders() {
  const c = fork(fileURLToPath(import.meta.url), ['--child', 'probe'], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const [{ headers }] = await once(c, 'message');
  return headers;
}

async function probe() {
  const res = await (await fullApp()).inject(PATH);
  const skip = new Set(['date', 'connection', 'keep-alive', 'content-length', 'content-type']);
  process.send({
    headers: Object.fromEntries(Object.entries(res.headers).filter(([name]) => !skip.has(name))),
  });
  process.exit(0);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function main() {
  const rounds = Number(process.argv[2] ?? 3);
  const headers = await fullStackHeaders();
  const kinds = ['bare', 'headers', 'full'];
  const results = { bare: [], headers: [], full: [] };
  for (let r = 0; r < rounds; r++) {
    const order = kinds.map((_, i) => kinds[(i + r) % kinds.length]);
    for (const kind of order) {
      process.stderr.write(`[gcd-cost] round ${r + 1}/${rounds}: ${kind}\n`);
      const c = fork(fileURLToPath(import.meta.url), ['--child', kind, JSON.stringify(headers)], {
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      const [{ perRequest }] = await once(c, 'message');
      results[kind].push(...perRequest);
    }
  }
  const lowest = (kind) => Math.min(...results[kind]);
  const f = (x) => x.toFixed(2);
  const label = {
    bare: 'bare Fastify',
    headers: `bare Fastify + the ${Object.keys(headers).length} headers the full stack adds`,
    full: 'gcd-service (full)',
  };
  let md = `## gcd-service: JavaScript CPU per request, in-process\n\n`;
  md += `Command: \`node bench/gcd-cost.mjs ${rounds}\` — Node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'} × ${os.cpus().length}, `;
  md += `load average before: ${loadAverages().join(', ')}. `;
  md += `\`GET ${PATH}\` through Node's HTTP server on an in-memory socket (no kernel, no load generator), ${PIPELINE} pipelined at a time; `;
  md += `${rounds} rounds × ${BATCHES} batches of ${BATCH.toLocaleString('en-US')} requests per server, each round a fresh process after a warm-up of ${BATCH.toLocaleString('en-US')}. `;
  md += `CPU = user + system of the process (server and the trivial in-memory client), per request. `;
  md += `Headers added by the full stack: ${Object.keys(headers)
    .map((h) => `\`${h}\``)
    .join(', ')}.\n\n`;
  md += `| server | µs/request (lowest batch) | µs/request (median batch) | bare ÷ this (lowest) |\n| --- | ---: | ---: | ---: |\n`;
  for (const kind of kinds) {
    md += `| ${label[kind]} | ${f(lowest(kind))} | ${f(median(results[kind]))} | ${f(lowest('bare') / lowest(kind))}× |\n`;
  }
  md += `\nThe full stack's JavaScript beyond its headers: ${f(lowest('full') - lowest('headers'))} µs per request (lowest batches); `;
  md += `its headers: ${f(lowest('headers') - lowest('bare'))} µs. Over a real socket the kernel's share per request is the same for every server, `;
  md += `so throughput ratios measured over loopback (bench/gcd-service.mjs) are closer to 1 than these.\n`;
  process.stdout.write(md);
  writeFileSync(new URL('results/gcd-cost.md', import.meta.url), md);
}

if (process.argv[2] === '--child') {
  if (process.argv[3] === 'probe') await probe();
  else await child(process.argv[3]);
} else {
  await main();
}
