/**
 * The injectable clock. Every time-based policy takes one (`clock` option), so tests drive time by hand
 * with {@link FakeClock} instead of sleeping.
 */

/**
 * The longest delay a Node timer honours: 2^31 − 1 ms (about 24.8 days). Node cuts a longer one to 1 ms
 * (with a `TimeoutOverflowWarning`), so every option handed to a timer is checked against it.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/** A timer handle. Node's `Timeout` fits; `ref`/`unref` are optional so any clock can implement it. */
export interface ClockTimer {
  ref?(): unknown;
  unref?(): unknown;
}

export interface Clock {
  /** Milliseconds on a monotonic scale (never goes backwards). Only differences are meaningful. */
  now(): number;
  /** Calls `callback` once after `delayMs`. */
  setTimeout(callback: () => void, delayMs: number): ClockTimer;
  clearTimeout(timer: ClockTimer): void;
}

/** The real clock: `performance.now()` and the runtime's timers. */
export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  setTimeout: (callback: () => void, delayMs: number): ClockTimer => setTimeout(callback, delayMs),
  clearTimeout: (timer: ClockTimer) => clearTimeout(timer as ReturnType<typeof setTimeout>),
});

interface FakeTimer extends ClockTimer {
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
  cancelled: boolean;
}

/**
 * A clock that only moves when told to. Timers fire in due order (ties in creation order) during
 * {@link FakeClock.advance} / {@link FakeClock.advanceAsync}.
 */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  #timers: FakeTimer[] = [];

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, delayMs: number): ClockTimer {
    const timer: FakeTimer = {
      id: this.#nextId++,
      at: this.#now + Math.max(0, delayMs),
      callback,
      cancelled: false,
      ref: () => timer,
      unref: () => timer,
    };
    this.#timers.push(timer);
    return timer;
  }

  clearTimeout(timer: ClockTimer): void {
    const t = timer as FakeTimer;
    t.cancelled = true;
    const i = this.#timers.indexOf(t);
    if (i >= 0) this.#timers.splice(i, 1);
  }

  /** Number of timers still waiting to fire. A leak test asserts this is 0 after calls settle. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** When the next timer is due, or `undefined` if none is pending. */
  get nextTimerAt(): number | undefined {
    return this.#next()?.at;
  }

  #next(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.#timers)
      if (!best || t.at < best.at || (t.at === best.at && t.id < best.id)) best = t;
    return best;
  }

  /** Moves time forward by `ms`, firing due timers synchronously in order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (let t = this.#next(); t && t.at <= target; t = this.#next()) {
      this.#timers.splice(this.#timers.indexOf(t), 1);
      this.#now = Math.max(this.#now, t.at);
      t.callback();
    }
    this.#now = target;
  }

  /**
   * Moves time forward by `ms`, firing due timers in order and letting promise continuations run
   * between them (so code awaiting a timer resumes before the next one fires).
   */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.#now + ms;
    await flushMicrotasks();
    for (let t = this.#next(); t && t.at <= target; t = this.#next()) {
      this.#timers.splice(this.#timers.indexOf(t), 1);
      this.#now = Math.max(this.#now, t.at);
      t.callback();
      await flushMicrotasks();
    }
    this.#now = target;
    await flushMicrotasks();
  }
}

/** Lets every queued promise continuation run (a macrotask turn). */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
