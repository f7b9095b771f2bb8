import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidOptionError } from '../errors.js';
import { constantBackoff } from './constant.js';

describe('constantBackoff', () => {
  it('returns delayMs every time (0 by default), sharing one stateless sequence', () => {
    const b = constantBackoff({ delayMs: 250 });
    const seq = b.start();
    assert.deepEqual([seq.next(), seq.next(), seq.next()], [250, 250, 250]);
    assert.equal(b.start(), seq);
    assert.equal(constantBackoff().start().next(), 0);
  });

  it('full jitter: uniform in [0, delayMs) from the injected random source', () => {
    const draws = [0.1, 0.9];
    let i = 0;
    const seq = constantBackoff({ delayMs: 100, jitter: 'full', random: () => draws[i++]! }).start();
    assert.deepEqual([seq.next(), seq.next()], [10, 90]);
  });

  it('validates options, naming the option', () => {
    for (const [options, option] of [
      [{ delayMs: -5 }, 'constantBackoff.delayMs'],
      [{ delayMs: Infinity }, 'constantBackoff.delayMs'],
      [{ jitter: 'decorrelated' }, 'constantBackoff.jitter'],
      [{ delay: 5 }, 'constantBackoff.delay'],
    ] as const) {
      assert.throws(
        () => constantBackoff(options as never),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option,
      );
    }
  });
});
