import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InvalidOptionError } from '../errors.js';
import { memoryRateLimitStore } from './memory-store.js';
import type { RateLimitRule } from './store.js';

const rule = (ratePerSecond: number, burst: number): RateLimitRule => ({ ratePerSecond, burst });

describe('memoryRateLimitStore', () => {
  it('validates options', () => {
    assert.throws(
      () => memoryRateLimitStore({ maxKeys: 0 }),
      (e) => e instanceof InvalidOptionError && e.option === 'memoryRateLimitStore.maxKeys',
    );
    assert.throws(
      () => memoryRateLimitStore({ max: 3 } as never),
      (e) => e instanceof InvalidOptionError && e.option === 'memoryRateLimitStore.max',
    );
    assert.equal(memoryRateLimitStore().maxKeys, 10_000);
  });

  it('a new key starts with a full bucket; takes count down; a denial takes nothing', () => {
    const s = memoryRateLimitStore();
    const r = rule(1, 3);
    assert.deepEqual(s.take('k', 1, 0, r), { allowed: true, remaining: 2, retryAfterMs: 0 });
    assert.deepEqual(s.take('k', 1, 0, r), { allowed: true, remaining: 1, retryAfterMs: 0 });
    assert.deepEqual(s.take('k', 1, 0, r), { allowed: true, remaining: 0, retryAfterMs: 0 });
    assert.deepEqual(s.take('k', 1, 0, r), { allowed: false, remaining: 0, retryAfterMs: 1000 });
    assert.deepEqual(s.take('k', 1, 0, r), { allowed: false, remaining: 0, retryAfterMs: 1000 });
  });

  it('refills continuously: retryAfterMs is exact (integer rate)', () => {
    const s = memoryRateLimitStore();
    const r = rule(2, 1);
    assert.equal(s.take('k', 1, 0, r).allowed, true);
    assert.deepEqual(s.take('k', 1, 0, r), { allowed: false, remaining: 0, retryAfterMs: 500 });
    assert.deepEqual(s.take('k', 1, 200, r), { allowed: false, remaining: 0, retryAfterMs: 300 });
    assert.deepEqual(s.take('k', 1, 499, r), { allowed: false, remaining: 0, retryAfterMs: 1 });
    assert.deepEqual(s.take('k', 1, 500, r), { allowed: true, remaining: 0, retryAfterMs: 0 });
  });

  it('fractional rates: 0.5/s means one token every 2 s; 3/s rounds the wait up to whole ms', () => {
    const s = memoryRateLimitStore();
    const slow = rule(0.5, 1);
    s.take('slow', 1, 0, slow);
    assert.equal(s.take('slow', 1, 0, slow).retryAfterMs, 2000);
    assert.equal(s.take('slow', 1, 1999, slow).allowed, false);
    assert.equal(s.take('slow', 1, 2000, slow).allowed, true);

    const three = rule(3, 2);
    s.take('three', 2, 0, three);
    assert.equal(s.take('three', 1, 0, three).retryAfterMs, 334);
    assert.equal(s.take('three', 1, 333, three).allowed, false);
    assert.equal(s.take('three', 1, 334, three).allowed, true);
    // 334 ms gave 1.002 tokens; the 0.002 left carries over: the next token is due 333 ms later (at 667)
    assert.equal(s.take('three', 1, 334, three).retryAfterMs, 333);
    assert.equal(s.take('three', 1, 666, three).allowed, false);
    assert.equal(s.take('three', 1, 667, three).allowed, true);
  });

  it('never holds more than burst, however long a key was idle', () => {
    const s = memoryRateLimitStore();
    const r = rule(10, 5);
    s.take('k', 5, 0, r);
    assert.deepEqual(s.take('k', 1, 1e9, r), { allowed: true, remaining: 4, retryAfterMs: 0 });
    assert.deepEqual(s.take('k', 4, 1e9, r), { allowed: true, remaining: 0, retryAfterMs: 0 });
    assert.equal(s.take('k', 1, 1e9, r).allowed, false);
  });

  it('a take of several tokens waits for all of them', () => {
    const s = memoryRateLimitStore();
    const r = rule(1, 4);
    s.take('k', 3, 0, r);
    assert.deepEqual(s.take('k', 3, 0, r), { allowed: false, remaining: 1, retryAfterMs: 2000 });
    assert.deepEqual(s.take('k', 3, 2000, r), { allowed: true, remaining: 0, retryAfterMs: 0 });
  });

  it('keys are independent', () => {
    const s = memoryRateLimitStore();
    const r = rule(1, 1);
    assert.equal(s.take('a', 1, 0, r).allowed, true);
    assert.equal(s.take('a', 1, 0, r).allowed, false);
    assert.equal(s.take('b', 1, 0, r).allowed, true);
    assert.equal(s.take('a', 1, 0, r).allowed, false);
  });

  it('time going backwards adds no tokens', () => {
    const s = memoryRateLimitStore();
    const r = rule(1, 1);
    s.take('k', 1, 5000, r);
    assert.deepEqual(s.take('k', 1, 1000, r), { allowed: false, remaining: 0, retryAfterMs: 1000 });
    assert.equal(s.take('k', 1, 6000, r).allowed, true);
  });

  it('after waiting exactly retryAfterMs the same take succeeds, and 1 ms earlier it does not (any rate)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 5000, noNaN: true }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 1, max: 20 })), {
          maxLength: 30,
        }),
        (ratePerSecond, burst, steps) => {
          const s = memoryRateLimitStore();
          const r = rule(ratePerSecond, burst);
          let now = 0;
          for (const [dt, rawCost] of steps) {
            now += dt;
            const cost = Math.min(rawCost, burst);
            const result = s.take('k', cost, now, r);
            assert.ok(result.remaining >= 0 && result.remaining <= burst);
            if (result.allowed) {
              assert.equal(result.retryAfterMs, 0);
              continue;
            }
            assert.ok(result.retryAfterMs >= 1 && Number.isInteger(result.retryAfterMs));
            if (result.retryAfterMs > 1) {
              assert.equal(s.take('k', cost, now + result.retryAfterMs - 1, r).allowed, false);
            }
            now += result.retryAfterMs;
            assert.equal(s.take('k', cost, now, r).allowed, true);
          }
        },
      ),
      { numRuns: 300, seed: 20261127 },
    );
  });

  it('holds at most maxKeys, evicting the least recently used key', () => {
    const s = memoryRateLimitStore({ maxKeys: 3 });
    const r = rule(1, 1);
    for (const k of ['a', 'b', 'c']) s.take(k, 1, 0, r);
    s.take('a', 1, 0, r); // a is now the most recently used (and still empty)
    s.take('d', 1, 0, r); // evicts b
    assert.equal(s.size, 3);
    assert.equal(s.take('a', 1, 0, r).allowed, false, 'a kept its state');
    assert.equal(s.take('b', 1, 0, r).allowed, true, 'b was evicted and starts full');
    for (let i = 0; i < 1000; i++) s.take(`k${i}`, 1, 0, r);
    assert.equal(s.size, 3);
  });

  it('once half full, drops idle buckets that refilled to burst when new keys arrive (no timers)', () => {
    const s = memoryRateLimitStore({ maxKeys: 16 });
    const r = rule(1, 1);
    for (let i = 0; i < 8; i++) s.take(`idle${i}`, 1, 0, r);
    assert.equal(s.size, 8);
    s.take('new1', 1, 999, r); // nothing full yet: nothing dropped
    assert.equal(s.size, 9);
    s.take('new2', 1, 1000, r); // idle0..3 are full again: dropped (at most 4 per insert)
    assert.equal(s.size, 6);
    s.take('new3', 1, 1000, r); // below half full again: no sweep
    assert.equal(s.size, 7);
    assert.equal(s.take('new1', 1, 1000, r).allowed, false, 'a bucket that is not full is kept');

    const roomy = memoryRateLimitStore({ maxKeys: 16 });
    for (let i = 0; i < 7; i++) roomy.take(`idle${i}`, 1, 0, r);
    roomy.take('late', 1, 5000, r);
    assert.equal(roomy.size, 8, 'below half full nothing is swept');
  });

  it('a used bucket gets a second chance over an unused one when the sweep passes', () => {
    const s = memoryRateLimitStore({ maxKeys: 4 });
    const r = rule(1, 2);
    for (const k of ['a', 'b', 'c', 'd']) s.take(k, 1, 0, r);
    s.take('a', 1, 0, r); // a: used (and empty)
    s.take('e', 1, 0, r); // sweep: a moves to the young end; b (unused) is evicted
    assert.equal(s.size, 4);
    assert.equal(s.take('a', 1, 0, r).allowed, false, 'a kept its state');
    assert.deepEqual(s.take('b', 1, 0, r), { allowed: true, remaining: 1, retryAfterMs: 0 }, 'b starts full');
  });

  it('clear() forgets every key', () => {
    const s = memoryRateLimitStore();
    s.take('k', 1, 0, rule(1, 1));
    s.clear();
    assert.equal(s.size, 0);
    assert.equal(s.take('k', 1, 0, rule(1, 1)).allowed, true);
  });
});
