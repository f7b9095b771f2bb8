import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry } from 'prom-client';
import { InvalidOptionError } from '@bulwark/core';
import { FastHistogram } from './duration-histogram.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const VALUES = [0, 0.0005, 0.001, 0.002, 0.05, 0.1, 0.7, 1, 3, 1e9];

describe('FastHistogram', () => {
  it('exposes exactly what a prom-client Histogram exposes for the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const fast = new FastHistogram({
      name: 'x_seconds',
      help: 'x',
      labelNames: ['path', 'code'],
      buckets: [...BUCKETS].reverse(),
      registers: [ours],
    });
    const reference = new Histogram({
      name: 'x_seconds',
      help: 'x',
      labelNames: ['path', 'code'],
      buckets: BUCKETS,
      registers: [theirs],
    });
    const a = fast.cell('inline', 200);
    const b = fast.cell('pool', '503');
    for (const v of VALUES) {
      a.observe(v);
      reference.labels('inline', '200').observe(v);
    }
    b.observe(0.02);
    reference.labels('pool', '503').observe(0.02);
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  it('without labels: one series from the start, observe() on the histogram itself', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const fast = new FastHistogram({ name: 'digits', help: 'd', buckets: [10, 100], registers: [ours] });
    const reference = new Histogram({ name: 'digits', help: 'd', buckets: [10, 100], registers: [theirs] });
    assert.equal(await ours.metrics(), await theirs.metrics());
    for (const v of [5, 50, 500]) {
      fast.observe(v);
      reference.observe(v);
    }
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  it('returns the same cell for the same values; a labelled series appears once observed; reset zeroes', async () => {
    const registry = new Registry();
    const h = new FastHistogram({
      name: 'y',
      help: 'y',
      labelNames: ['k'],
      buckets: [1],
      registers: [registry],
    });
    const cell = h.cell('a');
    assert.equal(h.cell('a'), cell);
    assert.doesNotMatch(await registry.metrics(), /y_count/);
    cell.observe(2);
    assert.match(await registry.metrics(), /y_count\{k="a"\} 1\n/);
    assert.match(await registry.metrics(), /y_bucket\{le="1",k="a"\} 0\n/);
    registry.resetMetrics();
    assert.equal(cell.count, 0);
    assert.doesNotMatch(await registry.metrics(), /y_count/);
    cell.observe(0.5);
    assert.match(await registry.metrics(), /y_bucket\{le="1",k="a"\} 1\n/);
  });

  it('checks its options and the number of label values', () => {
    const bad = [
      { name: 'bad name', help: '', buckets: [1] },
      { name: 'ok', help: '', labelNames: ['le'], buckets: [1] },
      { name: 'ok', help: '', buckets: [] },
      { name: 'ok', help: '', buckets: [Number.NaN] },
    ];
    for (const options of bad) assert.throws(() => new FastHistogram(options), InvalidOptionError);
    const h = new FastHistogram({ name: 'z', help: '', labelNames: ['a', 'b'], buckets: [1] });
    assert.throws(() => h.cell('only-one'), InvalidOptionError);
  });
});
