/**
 * A FakeClock that says when a timer is scheduled, so a test waits on that event instead of sleeping.
 * (Test support, not shipped: `*.test.*` files are left out of the package; not a test file itself.)
 */
import { FakeClock, type ClockTimer } from '@bulwark/core';

export class TestClock extends FakeClock {
  /** Every delay scheduled, in order. */
  readonly scheduled: number[] = [];
  readonly #waiters: { pred: (delayMs: number) => boolean; resolve: (delayMs: number) => void }[] = [];

  override setTimeout(callback: () => void, delayMs: number): ClockTimer {
    const timer = super.setTimeout(callback, delayMs);
    this.scheduled.push(delayMs);
    for (const w of [...this.#waiters]) {
      if (w.pred(delayMs)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(delayMs);
      }
    }
    return timer;
  }

  /** Resolves with the delay of the first timer scheduled from now on that `pred` accepts. */
  nextTimer(pred: (delayMs: number) => boolean): Promise<number> {
    return new Promise((resolve) => this.#waiters.push({ pred, resolve }));
  }
}
