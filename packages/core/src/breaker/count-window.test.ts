import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CountWindow } from './count-window.js';
import { FAILURE, SLOW } from './detector.js';

const thresholds = (failureRateThreshold = 0.5, minimumCalls = 1, slowCallRateThreshold = 1) => ({
  failureRateThreshold,
  slowCallRateThreshold,
  minimumCalls,
});

describe('CountWindow', () => {
  it('does not open before minimumCalls outcomes, whatever the rate', () => {
    const w = new CountWindow(10, thresholds(0.5, 4));
    assert.equal(w.record(FAILURE), undefined);
    assert.equal(w.record(FAILURE), undefined);
    assert.equal(w.record(FAILURE), undefined);
    assert.equal(w.record(FAILURE), 'failure-rate');
  });

  it('opens when the failure rate reaches the threshold (at, not only above)', () => {
    const w = new CountWindow(4, thresholds(0.5, 4));
    w.record(0);
    w.record(FAILURE);
    w.record(0);
    assert.equal(w.record(FAILURE), 'failure-rate'); // 2/4 = 0.5
    const below = new CountWindow(4, thresholds(0.5, 4));
    below.record(0);
    below.record(FAILURE);
    below.record(0);
    assert.equal(below.record(0), undefined); // 1/4
  });

  it('slides: the oldest outcome leaves when a new one arrives', () => {
    const w = new CountWindow(3, thresholds(0.6, 3));
    w.record(FAILURE);
    w.record(0);
    w.record(0);
    assert.deepEqual(w.metrics(), {
      type: 'count',
      calls: 3,
      failures: 1,
      slowCalls: 0,
      failureRate: 1 / 3,
      slowCallRate: 0,
    });
    assert.equal(w.record(FAILURE), undefined); // the first failure left: 1/3
    assert.equal(w.record(FAILURE), 'failure-rate'); // 2/3
  });

  it('opens on the slow-call rate', () => {
    const w = new CountWindow(4, thresholds(1, 4, 0.75));
    w.record(SLOW);
    w.record(SLOW);
    w.record(0);
    assert.equal(w.record(SLOW), 'slow-call-rate');
  });

  it('toJSON lists the outcomes oldest first; restore keeps the newest that fit', () => {
    const w = new CountWindow(3, thresholds(1, 3));
    for (const f of [FAILURE, 0, SLOW, FAILURE | SLOW]) w.record(f);
    assert.deepEqual(w.toJSON(), { type: 'count', outcomes: [0, SLOW, FAILURE | SLOW] });
    const small = new CountWindow(2, thresholds(1, 2));
    small.restore(w.toJSON());
    assert.deepEqual(small.toJSON(), { type: 'count', outcomes: [SLOW, FAILURE | SLOW] });
    const other = new CountWindow(2, thresholds(1, 2));
    other.restore({ type: 'consecutive', consecutiveFailures: 1, consecutiveSlowCalls: 0 });
    assert.deepEqual(other.toJSON(), { type: 'count', outcomes: [] });
  });

  it('property: the totals always equal a recount of the last `size` outcomes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 60 }),
        (size, outcomes) => {
          const w = new CountWindow(size, thresholds(1, size));
          outcomes.forEach((o) => w.record(o));
          const last = outcomes.slice(-size);
          const failures = last.filter((o) => o & FAILURE).length;
          const slow = last.filter((o) => o & SLOW).length;
          const m = w.metrics();
          assert.equal(m.type, 'count');
          if (m.type !== 'count') return;
          assert.equal(m.calls, last.length);
          assert.equal(m.failures, failures);
          assert.equal(m.slowCalls, slow);
          assert.deepEqual(w.toJSON(), { type: 'count', outcomes: last });
        },
      ),
      { numRuns: 500 },
    );
  });
});
