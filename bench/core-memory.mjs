// Heap growth over N sequential calls through one policy instance (fresh process per subject).
// Usage: node --expose-gc core-memory.mjs <subject> [calls]; prints JSON.
import * as cockatiel from 'cockatiel';
import CircuitBreaker from 'opossum';
import * as bw from '@bulwark/core';

const subject = process.argv[2];
const calls = Number(process.argv[3] ?? 1_000_000);
const fn = async () => 1;
const subjects = {
  baseline: () => fn,
  'bulwark-breaker': () => {
    const b = bw.circuitBreaker({ strategy: { type: 'consecutive', threshold: 5 } });
    return () => b.execute(fn);
  },
  'bulwark-pipeline': () => {
    const p = bw.pipeline(
      bw.retry({ maxAttempts: 3 }),
      bw.circuitBreaker({ strategy: { type: 'consecutive', threshold: 5 } }),
      bw.timeout({ timeoutMs: 1000 }),
      bw.bulkhead({ maxConcurrent: 100, maxQueue: 1000 }),
    );
    return () => p.execute(fn);
  },
  'cockatiel-wrap': () => {
    const p = cockatiel.wrap(
      cockatiel.retry(cockatiel.handleAll, { maxAttempts: 3, backoff: new cockatiel.ExponentialBackoff() }),
      cockatiel.circuitBreaker(cockatiel.handleAll, {
        halfOpenAfter: 10_000,
        breaker: new cockatiel.ConsecutiveBreaker(5),
      }),
      cockatiel.timeout(1000, cockatiel.TimeoutStrategy.Cooperative),
      cockatiel.bulkhead(100, 1000),
    );
    return () => p.execute(fn);
  },
  'opossum-timeout': () => {
    const b = new CircuitBreaker(fn);
    return () => b.fire();
  },
};
if (!subjects[subject]) {
  console.error(`unknown subject ${subject}; one of ${Object.keys(subjects).join(', ')}`);
  process.exit(2);
}
const call = subjects[subject]();
const heap = () => {
  for (let i = 0; i < 4; i++) globalThis.gc();
  return process.memoryUsage().heapUsed;
};
for (let i = 0; i < 10_000; i++) await call();
const start = heap();
const t0 = performance.now();
for (let i = 0; i < calls; i++) await call();
const wallNsPerCall = ((performance.now() - t0) * 1e6) / calls;
const end = heap();
process.stdout.write(
  JSON.stringify({
    subject,
    calls,
    growthKiB: (end - start) / 1024,
    wallNsPerCall,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
  }),
);
process.exit(0);
