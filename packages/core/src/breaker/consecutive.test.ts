import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConsecutiveDetector } from './consecutive.js';
import { FAILURE, SLOW } from './detector.js';

describe('ConsecutiveDetector', () => {
  it('opens on the threshold-th failure in a row, not before', () => {
    const d = new ConsecutiveDetector(3);
    assert.equal(d.record(FAILURE), undefined);
    assert.equal(d.record(FAILURE), undefined);
    assert.equal(d.record(FAILURE), 'consecutive-failures');
  });

  it('a success (even a slow one) ends the failure run', () => {
    const d = new ConsecutiveDetector(2);
    assert.equal(d.record(FAILURE), undefined);
    assert.equal(d.record(SLOW), undefined);
    assert.equal(d.record(FAILURE), undefined);
    assert.deepEqual(d.metrics(), { type: 'consecutive', consecutiveFailures: 1, consecutiveSlowCalls: 0 });
    assert.equal(d.record(0), undefined);
    assert.equal(d.record(FAILURE), undefined);
    assert.equal(d.record(FAILURE), 'consecutive-failures');
  });

  it('opens on the threshold-th slow call in a row, failed or not', () => {
    const d = new ConsecutiveDetector(3);
    assert.equal(d.record(SLOW), undefined);
    assert.equal(d.record(SLOW | FAILURE), undefined);
    assert.equal(d.record(0), undefined); // a fast call ends the slow run
    assert.equal(d.record(SLOW), undefined);
    assert.equal(d.record(SLOW), undefined);
    assert.equal(d.record(SLOW), 'consecutive-slow-calls');
  });

  it('reset forgets both runs', () => {
    const d = new ConsecutiveDetector(2);
    d.record(FAILURE | SLOW);
    d.reset();
    assert.deepEqual(d.metrics(), { type: 'consecutive', consecutiveFailures: 0, consecutiveSlowCalls: 0 });
    assert.equal(d.record(FAILURE), undefined);
  });

  it('round-trips through toJSON/restore, keeping a restored run one short of the threshold', () => {
    const d = new ConsecutiveDetector(5);
    d.record(FAILURE);
    d.record(FAILURE | SLOW);
    const copy = new ConsecutiveDetector(5);
    copy.restore(d.toJSON());
    assert.deepEqual(copy.metrics(), d.metrics());
    const smaller = new ConsecutiveDetector(2);
    smaller.restore({ type: 'consecutive', consecutiveFailures: 9, consecutiveSlowCalls: 9 });
    assert.deepEqual(smaller.metrics(), {
      type: 'consecutive',
      consecutiveFailures: 1,
      consecutiveSlowCalls: 1,
    });
    assert.equal(smaller.record(FAILURE), 'consecutive-failures');
  });
});
