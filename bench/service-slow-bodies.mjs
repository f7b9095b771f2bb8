#!/usr/bin/env node
// Slow uploads against a legitimate client (issue 10, finding 2): gcd-service pinned to one core, this
// process to another. A legitimate client (closed loop, 4 connections, `GET /api/gcd` and form `POST /gcd`
// alternately) measures its goodput alone, then while 200 connections each hold a `POST /gcd` open by
// sending its 4000-byte body one byte a second (from 20 loopback addresses, 127.0.0.2–21). Bar: ≥ 95 % of the unloaded goodput. One command:
// `node bench/service-slow-bodies.mjs` (after `npm run build`); writes bench/results/gcd-slow-bodies.md.
// The service runs with REQUEST_TIMEOUT_MS=120000 so the uploads stay open for the whole measurement (the
// default, 10 s, would cut them off with 408 — a defence too, but not the one measured here).
// Knobs (env): BENCH_ROUNDS (3), BENCH_DURATION_S (5), BENCH_UPLOADS (200).
import { connect } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import {
  CORES,
  f0,
  f1,
  here,
  int,
  log,
  MAIN,
  machine,
  median,
  pinSelf,
  Pool,
  requireBuilt,
  startServer,
} from './gcd-bench-lib.mjs';
import { dirname } from 'node:path';

const ROUNDS = int('BENCH_ROUNDS', 3);
const DURATION_S = int('BENCH_DURATION_S', 5);
const UPLOADS = int('BENCH_UPLOADS', 200);
// The rate limit far above the client's closed loop (it would otherwise measure the limit, by design).
const ENV = {
  LOG_LEVEL: 'warn',
  REQUEST_TIMEOUT_MS: '120000',
  HEADERS_TIMEOUT_MS: '60000',
  RATE_LIMIT_PER_SECOND: '1000000',
  RATE_LIMIT_BURST: '1000000',
};

/** Closed loop for `seconds`: 4 connections, GET /api/gcd and form POST /gcd alternately; 2xx per second. */
async function legitimate(origin, seconds) {
  const pool = new Pool(origin, { connections: 4 });
  let ok = 0;
  let other = 0;
  const end = performance.now() + seconds * 1000;
  const worker = async (i) => {
    for (let k = 0; performance.now() < end; k++) {
      const post = (k + i) % 2 === 1;
      const res = await pool.request(
        post
          ? {
              path: '/gcd',
              method: 'POST',
              body: `n=${1071 + k}&m=462`,
              headers: { 'content-type': 'application/x-www-form-urlencoded' },
            }
          : { path: `/api/gcd?n=${1071 + k}&m=462`, method: 'GET' },
      );
      await res.body.dump();
      if (res.statusCode === 200) ok++;
      else other++;
    }
  };
  await Promise.all([0, 1, 2, 3].map(worker));
  await pool.close();
  return { goodput: ok / seconds, other };
}

/** Opens `n` uploads that send their head and then one body byte a second; resolves when all are open. */
async function slowUploads(origin, n) {
  const { port } = new URL(origin);
  const sockets = [];
  await Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise((resolve) => {
          const socket = connect(
            { port: Number(port), host: '127.0.0.1', localAddress: `127.0.0.${2 + (i % 20)}` },
            () => {
              socket.write(
                'POST /gcd HTTP/1.1\r\nHost: bench\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 4000\r\n\r\nn',
              );
              resolve();
            },
          );
          socket.on('error', () => resolve());
          sockets.push(socket);
        }),
    ),
  );
  const drip = setInterval(() => {
    for (const s of sockets) if (!s.destroyed) s.write('1');
  }, 1000);
  return {
    open: () => sockets.filter((s) => !s.destroyed).length,
    close() {
      clearInterval(drip);
      for (const s of sockets) s.destroy();
    },
  };
}

requireBuilt();
pinSelf();
const started = Date.now();
const rows = [];
for (let round = 0; round < ROUNDS; round++) {
  log(`round ${round + 1}/${ROUNDS}`);
  const server = await startServer(MAIN, ENV);
  try {
    await legitimate(server.origin, 1); // warm-up
    const alone = await legitimate(server.origin, DURATION_S);
    const uploads = await slowUploads(server.origin, UPLOADS);
    try {
      const during = await legitimate(server.origin, DURATION_S);
      rows.push({ alone, during, open: uploads.open() });
    } finally {
      uploads.close();
    }
  } finally {
    await server.stop();
  }
}
const ratios = rows.map((r) => r.during.goodput / r.alone.goodput);
let md = `## gcd-service: a legitimate client while ${UPLOADS} slow uploads are open\n\n`;
md += `Machine: ${machine()}; gcd-service pinned to core ${CORES.server}, the client and the uploads to core ${CORES.generator}. Command: \`node bench/service-slow-bodies.mjs\` — ${ROUNDS} rounds (a fresh server each), ${DURATION_S} s alone then ${DURATION_S} s with the uploads. `;
md += `The client: closed loop over 4 connections, \`GET /api/gcd\` and form \`POST /gcd\` alternately. Each upload: \`POST /gcd\` declaring 4000 bytes, sending one a second, from 20 loopback addresses; the service runs with \`REQUEST_TIMEOUT_MS=120000\` so none is cut off during the run, and a rate limit far above the client's closed loop.\n\n`;
md += `| round | goodput alone (req/s) | goodput with the uploads (req/s) | ratio | non-200 during | uploads still open at the end |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n`;
rows.forEach((r, i) => {
  md += `| ${i + 1} | ${f0(r.alone.goodput)} | ${f0(r.during.goodput)} | ${f1(100 * ratios[i])} % | ${r.during.other} | ${r.open} |\n`;
});
md += `\nMedian: **${f1(100 * median(ratios))} %** of the unloaded goodput (bar ≥ 95 %). A request still receiving its body holds no concurrency slot (it is admitted once the body is read), so the uploads cost sockets and a timer check per second, not capacity; before, 50 such uploads took the initial limit and every other request got 503.\n\n`;
md += `_Whole run: ${f0((Date.now() - started) / 1000)} s._\n`;
process.stdout.write(md);
const out = process.argv[2] ?? `${here}results/gcd-slow-bodies.md`;
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, md);
log(`written to ${out}`);
