// Benchmark cases for @bulwark/core beside cockatiel (4, and 3 as `cockatiel3`) and opossum (10, and 9 as
// `opossum9`). One process runs every case once, in an order shuffled by the seed, and prints JSON
// { case: { avgNs, p50Ns } } on stdout.
// Usage: node --expose-gc core-cases.mjs <seed>
// Cases are grouped: each group compares ours, the competitors and the bare baseline on the same work.
import { measure, do_not_optimize } from 'mitata';
import * as cockatiel from 'cockatiel';
import * as cockatiel3 from 'cockatiel3';
import CircuitBreaker from 'opossum';
import CircuitBreaker9 from 'opossum9';
import * as bw from '@bulwark/core';

const fn = async () => 1;
const readsSignal = async (ctx) => ctx.signal.aborted;
const cockatielReadsSignal = async ({ signal }) => signal.aborted;

function ourBreaker(name) {
  return bw.circuitBreaker({ name, strategy: { type: 'consecutive', threshold: 5 }, openDurationMs: 10_000 });
}
function ourRetry() {
  return bw.retry({ maxAttempts: 3 });
}
function ourBulkhead() {
  return bw.bulkhead({ maxConcurrent: 100, maxQueue: 1000 });
}
function ourTimeout(strategy = 'aggressive') {
  return bw.timeout({ timeoutMs: 1000, strategy });
}
const ckBreaker = (ck = cockatiel) =>
  ck.circuitBreaker(ck.handleAll, {
    halfOpenAfter: 10_000,
    breaker: new ck.ConsecutiveBreaker(5),
  });
const ckRetry = (ck = cockatiel) =>
  ck.retry(ck.handleAll, { maxAttempts: 3, backoff: new ck.ExponentialBackoff() });
const ckTimeout = (s = cockatiel.TimeoutStrategy.Cooperative, ck = cockatiel) => ck.timeout(1000, s);
const ckBulkhead = (ck = cockatiel) => ck.bulkhead(100, 1000);

/** Opens a breaker by real failures, then returns an async function that calls it once. */
async function openedOurs() {
  const b = bw.circuitBreaker({ strategy: { type: 'consecutive', threshold: 5 }, openDurationMs: 1e9 });
  for (let i = 0; i < 5; i++) await b.execute(() => Promise.reject(new Error('x'))).catch(() => {});
  return b;
}
async function openedCockatiel(ck = cockatiel) {
  const b = ck.circuitBreaker(ck.handleAll, {
    halfOpenAfter: 1e9,
    breaker: new ck.ConsecutiveBreaker(5),
  });
  for (let i = 0; i < 5; i++) await b.execute(() => Promise.reject(new Error('x'))).catch(() => {});
  return b;
}

export async function cases() {
  const ob = await openedOurs();
  const cb = await openedCockatiel();
  const cb3 = await openedCockatiel(cockatiel3);
  const opo = new CircuitBreaker(fn, { timeout: false, resetTimeout: 1e9 });
  opo.open();
  const opo9 = new CircuitBreaker9(fn, { timeout: false, resetTimeout: 1e9 });
  opo9.open();
  const swallow = () => {};
  // Like for like: cockatiel's wrap uses a cooperative timeout, so the headline pipeline does too; the
  // aggressive-timeout pipelines (our default strategy) are compared separately.
  const oursPipeline = bw.pipeline(ourRetry(), ourBreaker('p'), ourTimeout('cooperative'), ourBulkhead());
  const oursPipelineAggr = bw.pipeline(ourRetry(), ourBreaker('pa'), ourTimeout('aggressive'), ourBulkhead());
  const ckWrap = cockatiel.wrap(ckRetry(), ckBreaker(), ckTimeout(), ckBulkhead());
  const ckWrapAggr = cockatiel.wrap(
    ckRetry(),
    ckBreaker(),
    ckTimeout(cockatiel.TimeoutStrategy.Aggressive),
    ckBulkhead(),
  );
  const ck3WrapAggr = cockatiel3.wrap(
    ckRetry(cockatiel3),
    ckBreaker(cockatiel3),
    ckTimeout(cockatiel3.TimeoutStrategy.Aggressive, cockatiel3),
    ckBulkhead(cockatiel3),
  );
  const b1 = ourBreaker('b'),
    c1 = ckBreaker(),
    c1v3 = ckBreaker(cockatiel3),
    o1 = new CircuitBreaker(fn, { timeout: false }),
    o1v9 = new CircuitBreaker9(fn, { timeout: false });
  const r1 = ourRetry(),
    c2 = ckRetry(),
    c2v3 = ckRetry(cockatiel3);
  const t1 = ourTimeout('aggressive'),
    t2 = ourTimeout('cooperative'),
    c3 = ckTimeout(),
    c3a = ckTimeout(cockatiel.TimeoutStrategy.Aggressive);
  const k1 = ourBulkhead(),
    c4 = ckBulkhead();
  return {
    'baseline: await fn()': async () => do_not_optimize(await fn()),
    'breaker: bulwark (consecutive)': async () => do_not_optimize(await b1.execute(fn)),
    'breaker: cockatiel (consecutive)': async () => do_not_optimize(await c1.execute(fn)),
    'breaker: cockatiel 3 (consecutive)': async () => do_not_optimize(await c1v3.execute(fn)),
    'breaker: opossum (timeout: false)': async () => do_not_optimize(await o1.fire()),
    'breaker: opossum 9 (timeout: false)': async () => do_not_optimize(await o1v9.fire()),
    'retry: bulwark': async () => do_not_optimize(await r1.execute(fn)),
    'retry: cockatiel': async () => do_not_optimize(await c2.execute(fn)),
    'retry: cockatiel 3': async () => do_not_optimize(await c2v3.execute(fn)),
    'timeout: bulwark (aggressive)': async () => do_not_optimize(await t1.execute(fn)),
    'timeout: bulwark (cooperative)': async () => do_not_optimize(await t2.execute(fn)),
    'timeout: cockatiel (cooperative)': async () => do_not_optimize(await c3.execute(fn)),
    'timeout: cockatiel (aggressive)': async () => do_not_optimize(await c3a.execute(fn)),
    'bulkhead: bulwark': async () => do_not_optimize(await k1.execute(fn)),
    'bulkhead: cockatiel': async () => do_not_optimize(await c4.execute(fn)),
    'pipeline: bulwark (cooperative timeout), op ignores signal': async () =>
      do_not_optimize(await oursPipeline.execute(fn)),
    'pipeline: cockatiel wrap (cooperative timeout), op ignores signal': async () =>
      do_not_optimize(await ckWrap.execute(fn)),
    'pipeline: bulwark (aggressive timeout), op ignores signal': async () =>
      do_not_optimize(await oursPipelineAggr.execute(fn)),
    'pipeline: cockatiel wrap (aggressive timeout), op ignores signal': async () =>
      do_not_optimize(await ckWrapAggr.execute(fn)),
    'pipeline: cockatiel 3 wrap (aggressive timeout), op ignores signal': async () =>
      do_not_optimize(await ck3WrapAggr.execute(fn)),
    'pipeline: bulwark (cooperative timeout), op reads signal': async () =>
      do_not_optimize(await oursPipeline.execute(readsSignal)),
    'pipeline: cockatiel wrap (cooperative timeout), op reads signal': async () =>
      do_not_optimize(await ckWrap.execute(cockatielReadsSignal)),
    'pipeline: bulwark (aggressive timeout), op reads signal': async () =>
      do_not_optimize(await oursPipelineAggr.execute(readsSignal)),
    'pipeline: cockatiel wrap (aggressive timeout), op reads signal': async () =>
      do_not_optimize(await ckWrapAggr.execute(cockatielReadsSignal)),
    'open breaker: bulwark rejection': async () => {
      try {
        await ob.execute(fn);
      } catch (e) {
        do_not_optimize(e);
      }
    },
    'open breaker: cockatiel rejection': async () => {
      try {
        await cb.execute(fn);
      } catch (e) {
        do_not_optimize(e);
      }
    },
    'open breaker: opossum rejection': async () => {
      try {
        await opo.fire();
      } catch (e) {
        do_not_optimize(e);
      }
    },
    'open breaker: cockatiel 3 rejection': async () => {
      try {
        await cb3.execute(fn);
      } catch (e) {
        do_not_optimize(e);
      }
    },
    'open breaker: opossum 9 rejection': async () => {
      try {
        await opo9.fire();
      } catch (e) {
        do_not_optimize(e);
      }
    },
    'reject floor: await a pre-allocated rejection': (() => {
      const err = new Error('x');
      return async () => {
        try {
          await Promise.reject(err);
        } catch (e) {
          do_not_optimize(e);
        }
      };
    })(),
    _swallow: swallow,
  };
}

function shuffle(array, seed) {
  let s = seed >>> 0 || 1;
  const rnd = () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
  for (let i = array.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [array[i], array[j]] = [array[j], array[i]];
  }
  return array;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const seed = Number(process.argv[2] ?? 1);
  const only = process.argv[3] ? new RegExp(process.argv[3]) : undefined;
  const all = await cases();
  const names = shuffle(
    Object.keys(all).filter((n) => !n.startsWith('_') && (!only || only.test(n))),
    seed,
  );
  const out = {};
  for (const name of names) {
    const stats = await measure(all[name], { min_cpu_time: 300e6 });
    out[name] = { avgNs: stats.avg, p50Ns: stats.p50 };
  }
  process.stdout.write(JSON.stringify(out));
}
