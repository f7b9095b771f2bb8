/**
 * A FakeClock that says when timers are scheduled, so a test waits on that event instead of sleeping.
 * (Test support, not shipped: `*.test.*` files are left out of the package; not a test file itself.)
 */
import type { ClockTimer } from '@bulwark/core';
import { FakeClock } from '@bulwark/core/testing';

export class TestClock extends FakeClock {
  /** Every delay scheduled, in order. */
  readonly scheduled: number[] = [];
  readonly #waiters: {
    pred: (delayMs: number) => boolean;
    count: number;
    resolve: (delayMs: number) => void;
  }[] = [];

  override setTimeout(callback: () => void, delayMs: number): ClockTimer {
    const timer = super.setTimeout(callback, delayMs);
    this.scheduled.push(delayMs);
    for (const w of [...this.#waiters]) {
      if (this.#matches(w.pred) >= w.count) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(delayMs);
      }
    }
    return timer;
  }

  #matches(pred: (delayMs: number) => boolean): number {
    return this.scheduled.filter(pred).length;
  }

  /**
   * Resolves once `count` timers whose delay `pred` accepts have been scheduled since this clock was made
   * (those already scheduled count), with the delay of the last of them.
   */
  waitForTimers(pred: (delayMs: number) => boolean, count = 1): Promise<number> {
    const seen = this.scheduled.filter(pred);
    if (seen.length >= count) return Promise.resolve(seen[count - 1]!);
    return new Promise((resolve) => this.#waiters.push({ pred, count, resolve }));
  }
}
