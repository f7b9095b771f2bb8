import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.js';
import { InvalidOptionError } from './errors.js';
import { retryBudget } from './retry-budget.js';

/** Withdraws until refused; returns how many were granted. */
function drain(budget: { tryWithdraw(): boolean }, limit = 10_000): number {
  let n = 0;
  while (n < limit && budget.tryWithdraw()) n++;
  return n;
}

describe('retryBudget', () => {
  it('defaults to Finagle’s: 20 % of requests + 10 retries/s over 10 s', () => {
    const b = retryBudget({ clock: new FakeClock() });
    assert.equal(b.ratio, 0.2);
    assert.equal(b.minRetriesPerSecond, 10);
    assert.equal(b.windowMs, 10_000);
    assert.equal(b.available, 100);
  });

  it('without requests, only the floor: minRetriesPerSecond × window seconds', () => {
    const b = retryBudget({ ratio: 0.5, minRetriesPerSecond: 2, windowMs: 10_000, clock: new FakeClock() });
    assert.equal(b.available, 20);
    assert.equal(drain(b), 20);
    assert.equal(b.available, 0);
    assert.equal(b.totalRejected, 1);
  });

  it('retries ≤ ratio × requests in the window (+ floor)', () => {
    const b = retryBudget({ ratio: 0.1, minRetriesPerSecond: 0, clock: new FakeClock() });
    assert.equal(b.tryWithdraw(), false, 'no requests, no floor: no retry');
    for (let i = 0; i < 100; i++) b.deposit();
    assert.equal(b.available, 10);
    assert.equal(drain(b), 10);
    for (let i = 0; i < 9; i++) b.deposit();
    assert.equal(b.tryWithdraw(), false, '0.1 × 109 = 10.9: the 11th retry is not yet allowed');
    b.deposit();
    assert.equal(b.tryWithdraw(), true, '0.1 × 110 = 11');
  });

  it('slides: requests and retries leave the window bucket by bucket, on the injected clock', () => {
    const clock = new FakeClock();
    const b = retryBudget({ ratio: 0.5, minRetriesPerSecond: 0, windowMs: 1000, clock });
    for (let i = 0; i < 10; i++) b.deposit(); // bucket [0, 100)
    clock.advance(500);
    for (let i = 0; i < 10; i++) b.deposit(); // bucket [500, 600)
    assert.equal(b.requests, 20);
    assert.equal(drain(b), 10);
    clock.advance(599); // t = 1099: the window always covers at least windowMs, so all still count
    assert.equal(b.requests, 20);
    assert.equal(b.available, 0);
    clock.advance(1); // t = 1100: the first bucket left
    assert.equal(b.requests, 10);
    assert.equal(b.retries, 10, 'the retries taken at t = 500 still count');
    assert.equal(b.available, 0);
    clock.advance(500); // t = 1600: everything left
    assert.equal(b.requests, 0);
    assert.equal(b.retries, 0);
  });

  it('retries taken late in the window keep counting after the requests that allowed them expire', () => {
    const clock = new FakeClock();
    const b = retryBudget({ ratio: 1, minRetriesPerSecond: 0, windowMs: 1000, clock });
    for (let i = 0; i < 4; i++) b.deposit(); // t = 0
    clock.advance(900);
    assert.equal(drain(b), 4); // t = 900
    clock.advance(200); // t = 1100: the requests left; the retries (bucket 900) stay until t = 2000
    assert.equal(b.requests, 0);
    assert.equal(b.retries, 4);
    for (let i = 0; i < 4; i++) b.deposit();
    assert.equal(b.available, 0, 'the 4 recent retries already use the 4 new requests’ share');
    clock.advance(900); // t = 2000
    assert.equal(b.retries, 0);
    assert.equal(b.available, 4);
  });

  it('a long idle gap clears the whole window at once', () => {
    const clock = new FakeClock();
    const b = retryBudget({ ratio: 0.2, minRetriesPerSecond: 1, windowMs: 10_000, clock });
    for (let i = 0; i < 50; i++) b.deposit();
    drain(b);
    clock.advance(3_600_000);
    assert.deepEqual(b.toJSON(), {
      available: 10,
      requests: 0,
      retries: 0,
      totalRequests: 50,
      totalRetries: 20,
      totalRejected: 1,
    });
  });

  it('never creates a timer', () => {
    const clock = new FakeClock();
    const b = retryBudget({ clock });
    b.deposit();
    b.tryWithdraw();
    clock.advance(60_000);
    assert.equal(clock.pendingTimers, 0);
    assert.equal(b.available, 100);
  });

  it('validates options, naming the option', () => {
    for (const [options, option] of [
      [{ ratio: -0.1 }, 'retryBudget.ratio'],
      [{ ratio: NaN }, 'retryBudget.ratio'],
      [{ minRetriesPerSecond: -1 }, 'retryBudget.minRetriesPerSecond'],
      [{ windowMs: 0 }, 'retryBudget.windowMs'],
      [{ clock: {} }, 'retryBudget.clock'],
      [{ percent: 20 }, 'retryBudget.percent'],
    ] as const) {
      assert.throws(
        () => retryBudget(options as never),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option,
        JSON.stringify(options),
      );
    }
  });
});
