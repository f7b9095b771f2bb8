// Core policies around a plain async function: a deadline, retries with backoff, a circuit breaker and a
// fallback, composed with pipeline(). Nothing here knows about HTTP; any async function will do.
//
//   node examples/core-policies.ts        (from the repository, after `npm run build`; with a
//   Node older than 22.19 on PATH: `npx node examples/core-policies.ts`)
import { CircuitOpenError, circuitBreaker, fallback, pipeline, retry, timeout } from '@bulwark/core';

// The dependency: a plain async function. It fails twice, then answers; later it goes down for good.
let calls = 0;
let down = false;
async function getPrice(sku: string, signal: AbortSignal): Promise<number> {
  calls++;
  signal.throwIfAborted();
  if (down || calls <= 2) throw new Error('ECONNRESET');
  return sku.length * 100;
}

const lastKnown = new Map<string, number>();

const breaker = circuitBreaker({
  name: 'prices',
  strategy: { type: 'consecutive', threshold: 3 },
  openDurationMs: 30_000,
});
breaker.onStateChange((e) => console.log(`breaker: ${e.from} -> ${e.to}`));

// Outermost first: the fallback answers from the last known price when everything inside failed; a 2 s
// deadline for the whole call; 3 attempts with jittered backoff; the breaker; 500 ms per attempt.
const policy = pipeline(
  fallback<number>({
    fallback: (reason, ctx) => {
      const cached = lastKnown.get(ctx.key ?? '');
      if (cached === undefined) throw reason.ok ? new Error('no price') : reason.error;
      const why = !reason.ok && reason.error instanceof CircuitOpenError ? 'breaker open' : 'failed';
      console.log(`fallback: ${why}, serving the last known price`);
      return cached;
    },
  }),
  timeout({ timeoutMs: 2_000 }),
  retry({ maxAttempts: 3, initialDelayMs: 5 }),
  breaker,
  timeout({ timeoutMs: 500 }),
);

async function price(sku: string): Promise<number> {
  const value = await policy.execute((ctx) => getPrice(sku, ctx.signal), { key: sku });
  lastKnown.set(sku, value);
  return value;
}

console.log(`price ${await price('sku-1')} after ${calls} calls`); // two failures retried away
down = true;
console.log(`price ${await price('sku-1')}`); // three failures: the breaker opens, the fallback answers
const before = calls;
console.log(`price ${await price('sku-1')} (the dependency was called ${calls - before} times)`); // fails fast
