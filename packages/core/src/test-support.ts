// Helpers shared by core's tests (not shipped: `files` in package.json leaves out test-support.*).
import assert from 'node:assert/strict';
import { MAX_TIMER_MS, type FakeClock } from './clock.js';
import { TimerQueue } from './timer-queue.js';

/**
 * Nothing is left waiting on `clock`: no entry in its shared timer queue and, once the queue's timer has
 * lapsed (it is left armed, unref'd, when the queue empties), no timer at all. Moves the clock far ahead:
 * call it last.
 */
export function assertIdle(clock: FakeClock): void {
  assert.equal(TimerQueue.for(clock).size, 0, 'nothing queued on the clock');
  clock.advance(MAX_TIMER_MS);
  assert.equal(clock.pendingTimers, 0, 'no timer left on the clock');
}
