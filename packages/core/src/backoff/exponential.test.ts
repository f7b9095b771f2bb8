import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidOptionError } from '../errors.js';
import { exponentialBackoff, EXPONENTIAL_BACKOFF_DEFAULTS } from './exponential.js';

/** A seeded uniform source in [0, 1) (LCG), so the statistics below are reproducible. */
function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

/** n delays of one sequence. */
function take(b: { start(): { next(): number } }, n: number): number[] {
  const seq = b.start();
  return Array.from({ length: n }, () => seq.next());
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

describe('exponentialBackoff', () => {
  it('defaults: decorrelated jitter, 100 ms, ×2, capped at 30 s', () => {
    const b = exponentialBackoff();
    assert.equal(b.jitter, 'decorrelated');
    assert.equal(b.initialDelayMs, 100);
    assert.equal(b.multiplier, 2);
    assert.equal(b.maxDelayMs, 30_000);
    assert.ok(Object.isFrozen(EXPONENTIAL_BACKOFF_DEFAULTS));
  });

  it('none: initialDelayMs × multiplier^n, capped at maxDelayMs', () => {
    const b = exponentialBackoff({ jitter: 'none', initialDelayMs: 100, multiplier: 3, maxDelayMs: 5000 });
    assert.deepEqual(take(b, 6), [100, 300, 900, 2700, 5000, 5000]);
  });

  it('full: uniform in [0, capped exponential) from the injected random source', () => {
    const draws = [0.5, 0, 0.25, 0.999, 0.5];
    let i = 0;
    const b = exponentialBackoff({
      jitter: 'full',
      initialDelayMs: 100,
      maxDelayMs: 1000,
      random: () => draws[i++]!,
    });
    assert.deepEqual(take(b, 5), [50, 0, 100, 799.2, 500]);
  });

  it('decorrelated: Polly V2 formula, deterministic with an injected random source', () => {
    const b = exponentialBackoff({ initialDelayMs: 100, maxDelayMs: 1e6, random: () => 0.5 });
    // t = n + 0.5; f(t) = 2^t · tanh(√(4t)); delay = (f(tₙ) − f(tₙ₋₁)) · 100 / 1.4
    const f = (t: number) => 2 ** t * Math.tanh(Math.sqrt(4 * t));
    const expected = [0, 1, 2, 3].map((n) => ((f(n + 0.5) - (n === 0 ? 0 : f(n - 0.5))) * 100) / 1.4);
    const got = take(b, 4);
    for (let n = 0; n < 4; n++) assert.ok(Math.abs(got[n]! - expected[n]!) < 1e-9, `delay ${n}`);
    assert.ok(Math.abs(got[0]! - 89.74) < 0.01, `first delay ${got[0]}`);
  });

  it('decorrelated: median time of retry k ≈ initialDelayMs × 2^(k−1) (Polly V2 characteristic)', () => {
    const b = exponentialBackoff({ initialDelayMs: 100, maxDelayMs: 1e9, random: lcg(42) });
    const K = 5;
    const times: number[][] = Array.from({ length: K }, () => []);
    for (let i = 0; i < 10_000; i++) {
      const seq = b.start();
      let at = 0;
      for (let k = 0; k < K; k++) times[k]!.push((at += seq.next()));
    }
    for (let k = 0; k < K; k++) {
      const m = median(times[k]!);
      const target = 100 * 2 ** k;
      assert.ok(m > target * 0.85 && m < target * 1.15, `retry ${k + 1}: median ${m}, target ${target}`);
    }
  });

  it('decorrelated: delays are positive, never above maxDelayMs, never NaN even after 1,100 retries', () => {
    const b = exponentialBackoff({ initialDelayMs: 50, maxDelayMs: 2000, random: lcg(7) });
    const delays = take(b, 1100);
    for (const d of delays) assert.ok(d >= 0 && d <= 2000 && !Number.isNaN(d), `delay ${d}`);
    assert.equal(delays.at(-1), 2000);
  });

  it('each start() begins a fresh, independent sequence', () => {
    const b = exponentialBackoff({ initialDelayMs: 100, random: () => 0.5 });
    const a = b.start();
    const first = a.next();
    a.next();
    assert.equal(b.start().next(), first);
  });

  it('validates options at construction, naming the option', () => {
    const bad: [object, string][] = [
      [{ initialDelayMs: -1 }, 'exponentialBackoff.initialDelayMs'],
      [{ initialDelayMs: 5000, maxDelayMs: 1000 }, 'exponentialBackoff.initialDelayMs'],
      [{ maxDelayMs: Infinity }, 'exponentialBackoff.maxDelayMs'],
      [{ maxDelayMs: 2 ** 31 }, 'exponentialBackoff.maxDelayMs'],
      [{ multiplier: 1 }, 'exponentialBackoff.multiplier'],
      [{ multiplier: 0.5, jitter: 'none' }, 'exponentialBackoff.multiplier'],
      [{ jitter: 'half' }, 'exponentialBackoff.jitter'],
      [{ random: 4 }, 'exponentialBackoff.random'],
      [{ maxDelay: 10 }, 'exponentialBackoff.maxDelay'],
    ];
    for (const [options, option] of bad) {
      assert.throws(
        () => exponentialBackoff(options as never),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option,
        JSON.stringify(options),
      );
    }
    // multiplier 1 is a constant backoff, fine without decorrelated jitter
    assert.deepEqual(take(exponentialBackoff({ multiplier: 1, jitter: 'none' }), 3), [100, 100, 100]);
  });
});
