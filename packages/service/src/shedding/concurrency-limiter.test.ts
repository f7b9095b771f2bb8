import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidOptionError } from '@bulwark/core';
import { FakeClock } from '@bulwark/core/testing';
import { aimd, fixed, gradient2, GRADIENT2_DEFAULTS, type LimitAlgorithm } from './limit-algorithms.js';
import { ConcurrencyLimiter, type LimitChangeEvent } from './concurrency-limiter.js';

describe('gradient2', () => {
  it('keeps the limit while the service is app-limited (less than half the limit in flight)', () => {
    const g = gradient2({ initialLimit: 20 });
    for (let i = 0; i < 50; i++) g.update(10, 5, false);
    assert.equal(g.limit, 20);
  });

  it('grows by about smoothing × queueSize per window while latency stays at the baseline', () => {
    // (probes off: they take two windows now and then, see the probe tests below)
    const g = gradient2({ initialLimit: 20, maxLimit: 1000, smoothing: 0.2, queueSize: 4, probeInterval: 0 });
    g.update(10, 20, false);
    // gradient 1 (tolerance × long / short = 1.5 → capped at 1): new = 20 + 4; smoothed: 20·0.8 + 24·0.2
    assert.equal(g.limit, 20.8);
    for (let i = 0; i < 100; i++) g.update(10, Math.ceil(g.limit), false);
    assert.ok(g.limit > 90, `limit ${g.limit}`);
  });

  it('shrinks when latency rises well above the long-term baseline, never below half per step nor minLimit', () => {
    const g = gradient2({ initialLimit: 100, minLimit: 10, smoothing: 1, queueSize: 0 });
    for (let i = 0; i < 20; i++) g.update(10, 100, false); // baseline 10 ms; limit stays ≈100
    assert.equal(Math.round(g.limit), 100);
    g.update(100, 100, false); // 10× slower: gradient clamps at 0.5
    assert.equal(Math.round(g.limit), 50);
    for (let i = 0; i < 20; i++) g.update(1000, Math.ceil(g.limit), false);
    assert.equal(g.limit, 10);
  });

  it('tolerates latency up to rttTolerance × baseline without shrinking', () => {
    const g = gradient2({ initialLimit: 50, rttTolerance: 2, smoothing: 1, queueSize: 0 });
    for (let i = 0; i < 20; i++) g.update(10, 50, false);
    g.update(19, 50, false);
    assert.ok(g.limit >= 49.9, `limit ${g.limit}`);
  });

  it('respects maxLimit', () => {
    const g = gradient2({ initialLimit: 10, minLimit: 1, maxLimit: 12, smoothing: 1 });
    for (let i = 0; i < 20; i++) g.update(5, 12, false);
    assert.equal(g.limit, 12);
  });

  it('validates options', () => {
    assert.throws(() => gradient2({ minLimit: 0 }), InvalidOptionError);
    assert.throws(() => gradient2({ minLimit: 10, initialLimit: 5 }), /gradient2.initialLimit/);
    assert.throws(() => gradient2({ smoothing: 0 }), /gradient2.smoothing/);
    assert.throws(() => gradient2({ rttTolerance: 0.5 }), /gradient2.rttTolerance/);
    assert.throws(() => gradient2({ limit: 5 } as never), /gradient2.limit/);
    assert.throws(() => gradient2({ probeInterval: 1.5 }), /gradient2.probeInterval/);
  });
});

describe('aimd', () => {
  it('adds one per busy window and multiplies by backoffRatio on a drop or a slow window', () => {
    const a = aimd({ initialLimit: 10, backoffRatio: 0.5, latencyThresholdMs: 100 });
    a.update(10, 5, false);
    assert.equal(a.limit, 11);
    a.update(10, 2, false); // not busy: unchanged
    assert.equal(a.limit, 11);
    a.update(10, 11, true);
    assert.equal(a.limit, 5);
    a.update(150, 5, false);
    assert.equal(a.limit, 4); // floor(2.5) → 2, but minLimit 4
  });

  it('never exceeds maxLimit', () => {
    const a = aimd({ initialLimit: 4, maxLimit: 6 });
    for (let i = 0; i < 10; i++) a.update(1, 10, false);
    assert.equal(a.limit, 6);
  });

  it('validates options', () => {
    assert.throws(() => aimd({ backoffRatio: 1 }), /aimd.backoffRatio/);
    assert.throws(() => aimd({ latencyThresholdMs: -1 }), /aimd.latencyThresholdMs/);
  });
});

describe('ConcurrencyLimiter', () => {
  it('admits up to the limit and refuses beyond it; release frees a slot', () => {
    const l = new ConcurrencyLimiter({ algorithm: fixed(2), clock: new FakeClock() });
    assert.equal(l.tryAcquire(), true);
    assert.equal(l.tryAcquire(), true);
    assert.equal(l.tryAcquire(), false);
    assert.equal(l.inflight, 2);
    l.release(5);
    assert.equal(l.tryAcquire(), true);
    l.abandon();
    assert.equal(l.inflight, 1);
  });

  it('feeds the algorithm one averaged sample per window (time and sample count both required)', () => {
    const clock = new FakeClock();
    const seen: Array<[number, number, boolean]> = [];
    const algorithm = {
      name: 'probe',
      limit: 10,
      update(rtt: number, inflight: number, drop: boolean) {
        seen.push([rtt, inflight, drop]);
        return 10;
      },
    };
    const l = new ConcurrencyLimiter({ algorithm, clock, windowMs: 100, windowMinSamples: 3 });
    for (let i = 0; i < 3; i++) assert.ok(l.tryAcquire());
    l.release(10);
    l.release(20);
    clock.advance(100);
    l.release(30, true); // third sample, window time reached: closes
    assert.deepEqual(seen, [[20, 3, true]]);
    // the next window: enough time but too few samples
    l.tryAcquire();
    clock.advance(500);
    l.release(7);
    assert.equal(seen.length, 1);
    l.tryAcquire();
    l.release(7);
    l.tryAcquire();
    l.release(7);
    assert.deepEqual(seen[1], [7, 1, false]);
  });

  it('moves its limit with gradient2 under a FakeClock: up under steady load, down when latency jumps', () => {
    const clock = new FakeClock();
    const events: LimitChangeEvent[] = [];
    const l = new ConcurrencyLimiter({
      algorithm: gradient2({ initialLimit: 10, minLimit: 2, maxLimit: 100 }),
      clock,
      windowMs: 100,
      windowMinSamples: 5,
    });
    l.onLimitChange((e) => events.push(e));
    const window = (rtt: number) => {
      const n = l.limit;
      for (let i = 0; i < n; i++) assert.ok(l.tryAcquire());
      assert.equal(l.tryAcquire(), false, 'one past the limit is refused');
      clock.advance(100);
      for (let i = 0; i < n; i++) l.release(rtt);
    };
    for (let w = 0; w < 30; w++) window(10);
    const grown = l.limit;
    assert.ok(grown > 20, `grew to ${grown}`);
    for (let w = 0; w < 10; w++) window(80);
    // each slow window: limit ← 0.8·limit + 0.2·(0.5·limit + 4) ≈ 0.9·limit + 0.8
    assert.ok(l.limit < grown * 0.6, `shrank from ${grown} to ${l.limit}`);
    assert.ok(events.length > 0);
    assert.ok(events.every((e) => e.from !== e.to));
  });

  /**
   * A synthetic service under a FakeClock: `servers` requests run at once, each for `serviceMs`; the rest
   * of those admitted wait in a FIFO queue (as the gcd worker pool's), so the RTT grows with the requests
   * in flight. Requests arrive at `overload` × capacity from the first millisecond (a cold start under
   * overload). Returns the limits of the last `tailS` seconds, the admitted RTTs then and the throughput.
   */
  function simulate(algorithm: LimitAlgorithm, servers: number, serviceMs: number, seconds: number) {
    const clock = new FakeClock();
    const l = new ConcurrencyLimiter({ algorithm, clock, windowMs: 500, windowMinSamples: 10 });
    const perMs = (10 * servers) / serviceMs; // 10× capacity
    const queue: number[] = []; // admission times
    const running: Array<{ admitted: number; done: number }> = [];
    const tailFrom = (seconds - 10) * 1000;
    const limits: number[] = [];
    const rtts: number[] = [];
    let completed = 0;
    let owed = 0;
    for (let t = 0; t < seconds * 1000; t++) {
      const now = clock.now();
      for (let i = running.length - 1; i >= 0; i--) {
        if (running[i]!.done > now) continue;
        const [job] = running.splice(i, 1);
        l.release(now - job!.admitted);
        if (t >= tailFrom) {
          rtts.push(now - job!.admitted);
          completed++;
        }
      }
      while (running.length < servers && queue.length > 0) {
        running.push({ admitted: queue.shift()!, done: now + serviceMs });
      }
      for (owed += perMs; owed >= 1; owed--) if (l.tryAcquire()) queue.push(now);
      if (t >= tailFrom) limits.push(l.limit);
      clock.advance(1);
    }
    rtts.sort((a, b) => a - b);
    return {
      minLimit: Math.min(...limits),
      maxLimit: Math.max(...limits),
      p99: rtts[Math.floor(rtts.length * 0.99)]!,
      throughputShare: completed / 10 / ((1000 * servers) / serviceMs),
    };
  }

  for (const [servers, serviceMs] of [
    [1, 2],
    [4, 10],
    [16, 20],
  ] as const) {
    it(`gradient2 started under 10× overload converges near the capacity (${servers} × ${serviceMs} ms), not to its queueing latency`, () => {
      // Gradient2's target is about rttTolerance × capacity + queueSize in flight (1.5 × servers + 4); it
      // saws above it as the limit grows between probes. Without probes it stays at 50 and beyond.
      const target = 2 * servers + GRADIENT2_DEFAULTS.queueSize;
      const r = simulate(gradient2({ initialLimit: 50, minLimit: 1 }), servers, serviceMs, 60);
      assert.ok(r.minLimit >= servers, `limit fell to ${r.minLimit}, below the ${servers} that keep it busy`);
      assert.ok(r.maxLimit <= target + 2, `limit up to ${r.maxLimit}, target ${target}`);
      assert.ok(r.throughputShare >= 0.95, `throughput ${r.throughputShare} of capacity`);
      assert.ok(
        r.p99 <= ((target + 4) * serviceMs) / servers + serviceMs,
        `admitted p99 ${r.p99} ms, service time ${serviceMs} ms`,
      );
    });
  }

  it('without probes (Netflix Gradient2) a cold start under overload keeps its limit at the queueing level', () => {
    const r = simulate(gradient2({ initialLimit: 50, minLimit: 1, probeInterval: 0 }), 4, 10, 60);
    assert.ok(r.minLimit >= 40, `limit ${r.minLimit}`);
  });

  it('gradient2 keeps growing where latency does not depend on the requests in flight (probes restore the limit)', () => {
    const g = gradient2({ initialLimit: 20, maxLimit: 1000 });
    const limits: number[] = [];
    for (let i = 0; i < 100; i++) limits.push(g.update(10, Math.floor(g.limit), false));
    assert.ok(g.limit > 80, `limit ${g.limit}`);
    // probes halved it for a window now and then, ever less often (the interval doubles)
    const probes = limits.filter((x, i) => i > 0 && x < limits[i - 1]! * 0.6).length;
    assert.ok(probes >= 2 && probes <= 6, `${probes} probes`);
  });

  it('validates options', () => {
    assert.throws(() => new ConcurrencyLimiter({} as never), /concurrencyLimiter.algorithm/);
    assert.throws(
      () => new ConcurrencyLimiter({ algorithm: fixed(1), windowMs: 0 }),
      /concurrencyLimiter.windowMs/,
    );
    assert.throws(() => fixed(0), /fixed.limit/);
  });
});
