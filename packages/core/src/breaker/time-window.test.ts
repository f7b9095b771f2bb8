import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TimeWindow } from './time-window.js';
import { FAILURE, SLOW } from './detector.js';

const thresholds = (failureRateThreshold = 0.5, minimumCalls = 1, slowCallRateThreshold = 1) => ({
  failureRateThreshold,
  slowCallRateThreshold,
  minimumCalls,
});

function calls(w: TimeWindow, now: number): number {
  const m = w.metrics(now);
  return m.type === 'time' ? m.calls : NaN;
}

describe('TimeWindow', () => {
  it('counts calls per bucket and forgets a bucket once it leaves the window', () => {
    // 1000 ms in 4 buckets of 250 ms
    const w = new TimeWindow(1000, 4, thresholds(1, 100));
    w.record(0, 0); // bucket 0
    w.record(0, 260); // bucket 1
    w.record(0, 510); // bucket 2
    w.record(0, 999); // bucket 3
    assert.equal(calls(w, 999), 4);
    assert.equal(calls(w, 1000), 3); // bucket 4 began: bucket 0 left
    assert.equal(calls(w, 1250), 2);
    assert.equal(calls(w, 1749), 1);
    assert.equal(calls(w, 1750), 0);
  });

  it('zeroes every bucket after an idle gap longer than the window (no timer needed)', () => {
    const w = new TimeWindow(1000, 10, thresholds(0.5, 3));
    w.record(FAILURE, 0);
    w.record(FAILURE, 50);
    assert.equal(w.record(0, 1_000_000), undefined); // only this call is in the window now
    const m = w.metrics(1_000_000);
    assert.deepEqual(m, {
      type: 'time',
      calls: 1,
      failures: 0,
      slowCalls: 0,
      failureRate: 0,
      slowCallRate: 0,
    });
  });

  it('opens on the failure rate once minimumCalls are in the window', () => {
    const w = new TimeWindow(10_000, 10, thresholds(0.5, 4));
    assert.equal(w.record(FAILURE, 0), undefined);
    assert.equal(w.record(FAILURE, 100), undefined);
    assert.equal(w.record(0, 200), undefined);
    assert.equal(w.record(FAILURE, 300), 'failure-rate'); // 3/4
  });

  it('expired failures no longer count towards the rate', () => {
    const w = new TimeWindow(1000, 4, thresholds(0.5, 2));
    w.record(FAILURE, 0);
    // 1000 ms later the failure's bucket has left: one success alone
    assert.equal(w.record(0, 1000), undefined);
    assert.equal(w.record(FAILURE, 1001), 'failure-rate'); // 1/2
  });

  it('opens on the slow-call rate', () => {
    const w = new TimeWindow(1000, 4, thresholds(1, 2, 1));
    w.record(SLOW, 0);
    assert.equal(w.record(SLOW, 1), 'slow-call-rate');
  });

  it('toJSON/restore re-buckets by age, dropping what expired in between', () => {
    const w = new TimeWindow(1000, 4, thresholds(1, 100));
    w.record(FAILURE, 100); // bucket 0
    w.record(SLOW, 300); // bucket 1
    w.record(0, 800); // bucket 3
    const snap = w.toJSON(900);
    // ages of the buckets' middles: 125, 375 and 875 ms on the clock
    assert.deepEqual(snap, {
      type: 'time',
      buckets: [
        [775, 1, 1, 0],
        [525, 1, 0, 1],
        [25, 1, 0, 0],
      ],
    });
    const same = new TimeWindow(1000, 4, thresholds(1, 100));
    same.restore(snap, 0, 5900); // another clock, no time passed
    assert.deepEqual(same.metrics(5900), w.metrics(900));
    assert.deepEqual(same.toJSON(5900), snap);
    const later = new TimeWindow(1000, 4, thresholds(1, 100));
    later.restore(snap, 300, 900); // 300 ms passed: the failure (1075 ms old) has expired, the rest has not
    assert.deepEqual(later.metrics(900), {
      type: 'time',
      calls: 2,
      failures: 0,
      slowCalls: 1,
      failureRate: 0,
      slowCallRate: 0.5,
    });
  });

  it('property: the totals equal a recount of the calls whose bucket is in the window', () => {
    const step = fc.record({ dt: fc.integer({ min: 0, max: 700 }), flags: fc.integer({ min: 0, max: 3 }) });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(step, { maxLength: 60 }), (buckets, steps) => {
        const windowMs = 1000;
        const bucketMs = windowMs / buckets;
        const w = new TimeWindow(windowMs, buckets, thresholds(1, 1000));
        const seen: { at: number; flags: number }[] = [];
        let now = 0;
        for (const s of steps) {
          now += s.dt;
          w.record(s.flags, now);
          seen.push({ at: now, flags: s.flags });
          const head = Math.floor(now / bucketMs);
          const live = seen.filter((c) => Math.floor(c.at / bucketMs) > head - buckets);
          const m = w.metrics(now);
          assert.equal(m.type, 'time');
          if (m.type !== 'time') return;
          assert.equal(m.calls, live.length);
          assert.equal(m.failures, live.filter((c) => c.flags & FAILURE).length);
          assert.equal(m.slowCalls, live.filter((c) => c.flags & SLOW).length);
        }
      }),
      { numRuns: 500 },
    );
  });
});
