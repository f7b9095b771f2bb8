// A deadline that crosses a service boundary, a hedge against a slow answer, and a chaos switch — with
// @bulwark/core alone, a node:http server and fetch, all on loopback.
//
//   node examples/deadlines-and-hedging.ts        (from the repository, after `npm run build`; with a
//   Node older than 22.19 on PATH: `npx node examples/deadlines-and-hedging.ts`)
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  chaos,
  currentDeadline,
  DEADLINE_HEADER,
  DeadlineExceededError,
  formatDeadlineHeader,
  hedge,
  parseDeadlineHeader,
  retryBudget,
  runWithDeadline,
  seededRandom,
  timeout,
} from '@bulwark/core';

// The upstream service: it makes the budget in `bulwark-timeout-ms` its request's deadline (capped at
// 5 s), answers at once when the budget is spent, and says how much it was given. `/slow-once` is slow
// the first time it is asked (a replica with a GC pause), fast afterwards.
let slowOnce = true;
const upstream = createServer((req, res) => {
  const budget = parseDeadlineHeader(req.headers[DEADLINE_HEADER], { maxMs: 5_000 });
  if (!budget.ok) {
    res.writeHead(400).end(budget.reason);
    return;
  }
  if (budget.present && budget.timeoutMs === 0) {
    res.writeHead(504).end('budget spent');
    return;
  }
  const answer = () => {
    const left = currentDeadline() - performance.now();
    if (req.url === '/slow-once' && slowOnce) {
      slowOnce = false;
      setTimeout(() => res.end('slow answer'), 1_000);
      return;
    }
    res.end(
      JSON.stringify({ given: budget.present ? budget.timeoutMs : null, leftWhenStarted: Math.floor(left) }),
    );
  };
  if (budget.present) runWithDeadline({ timeoutMs: budget.timeoutMs }, answer);
  else answer();
});
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

// The client side: every request carries what is left of the caller's deadline, minus the allowance.
const perRequest = timeout({ timeoutMs: 2_000 });
async function get(path: string, signal: AbortSignal, remainingMs: number): Promise<string> {
  const header = formatDeadlineHeader(remainingMs);
  const res = await fetch(base + path, {
    signal,
    headers: header === undefined ? {} : { [DEADLINE_HEADER]: header },
  });
  return res.text();
}

// 1. A request with a 300 ms budget: the upstream sees a smaller budget than the caller had.
await runWithDeadline({ timeoutMs: 300 }, async () => {
  const body = await perRequest.execute((ctx) => get('/', ctx.signal, ctx.remainingMs()));
  const { given } = JSON.parse(body) as { given: number };
  console.log(`upstream was given ${given <= 295 ? '<= 295' : given} ms of the caller's 300`);
});

// 2. A call that cannot finish within its deadline ends at the deadline, whatever the operation does.
try {
  await perRequest.execute(() => new Promise<never>(() => {}), { timeoutMs: 50 });
} catch (error) {
  console.log(`a hung call: ${error instanceof DeadlineExceededError ? error.code : String(error)}`);
}

// 3. A hedge: the first attempt at /slow-once hangs for a second; the second, started after 100 ms, wins.
// (The default budget allows hedges for 10 % of calls, so none before the 10th call; this one, a single
// call, gets a floor of one hedge per second.)
const hedged = hedge({
  idempotent: true,
  delayMs: 100,
  budget: retryBudget({ ratio: 0.1, minRetriesPerSecond: 1 }),
});
hedged.onHedge((e) => {
  if (e.type !== 'cancelled') console.log(`hedge: ${e.type} attempt ${e.attempt}`);
});
const startedAt = performance.now();
const hedgedBody = await hedged.execute((ctx) => get('/slow-once', ctx.signal, ctx.remainingMs()), {
  timeoutMs: 900,
});
console.log(
  `hedged answer ${hedgedBody.startsWith('{') ? 'from the fast attempt' : hedgedBody} in under 900 ms: ${performance.now() - startedAt < 900}`,
);

// 4. A game day: a fault in a seeded 30 % of the calls, switched on and off at run time.
const gameDay = chaos.fault({ rate: 0.3, random: seededRandom(7), enabled: false });
const call = () => gameDay.execute(() => 'ok').catch(() => 'fault');
console.log(`switched off: ${(await Promise.all(Array.from({ length: 10 }, call))).join(' ')}`);
gameDay.enabled = true;
console.log(`switched on:  ${(await Promise.all(Array.from({ length: 10 }, call))).join(' ')}`);

upstream.closeAllConnections();
upstream.close();
