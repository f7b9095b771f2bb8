#!/usr/bin/env node
// Every gcd-service benchmark, one command: `node bench/gcd-service.mjs` (after `npm run build`; the
// `gcd-service` suite of `npm run bench`). Each part pins the servers to one core and its load generator
// to another (taskset) and writes its own results file:
//   bench/gcd-throughput.mjs      → results/gcd-service.md     (CPU per request vs bare Fastify with the
//                                                                same headers; vs the hand-assembled stack)
//   bench/gcd-shedding.mjs        → results/gcd-shedding.md    (1000-digit inputs at 3× and 10× capacity;
//                                                                inline requests from 1000 connections)
//   bench/service-rejections.mjs  → results/gcd-rejections.md  (what a 503 and a 429 cost)
//   bench/service-slow-bodies.mjs → results/gcd-slow-bodies.md (a client's goodput beside 200 slow uploads)
// BENCH_PARTS picks some (throughput,shedding,rejections,slow-bodies); each part's own knobs pass through.
// Takes ~10 min with the defaults. Run it on a quiet machine: other jobs on the cores move every number.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const PARTS = {
  throughput: 'gcd-throughput.mjs',
  shedding: 'gcd-shedding.mjs',
  rejections: 'service-rejections.mjs',
  'slow-bodies': 'service-slow-bodies.mjs',
};
const chosen = (process.env.BENCH_PARTS ?? Object.keys(PARTS).join(',')).split(',');
for (const part of chosen) {
  if (!PARTS[part]) throw new Error(`unknown part ${part}; one of ${Object.keys(PARTS).join(', ')}`);
  console.error(`== gcd-service: ${part}`);
  execFileSync(process.execPath, [`${here}${PARTS[part]}`], { stdio: ['ignore', 'inherit', 'inherit'] });
}
