/**
 * One timer per clock for every wait whose end is not in FIFO order: call deadlines (`execute(fn,
 * { deadline })`), hedge delays, rate-limiter waits, injected latency, and the breakers' due transitions.
 *
 * A binary min-heap of entries ordered by due time, and at most one timer on the clock, armed for the
 * earliest entry. Adding or removing an entry is O(log n) and sets no timer unless the earliest entry
 * changes for the sooner (a later entry, or the removal of the earliest, leaves the armed timer alone: it
 * fires, finds nothing due and re-arms for the new earliest). The heap is shared by every policy on the
 * same clock (a `WeakMap` keyed by the clock), so a thousand breakers or in-flight deadlines cost one
 * timer, not a thousand.
 *
 * An entry either keeps the process alive (a call's deadline: the caller is waiting) or not (a breaker's
 * open → half-open change: nobody waits for it). The timer is ref'd while at least one keep-alive entry is
 * queued, else unref'd. When the heap empties the timer is left to lapse (unref'd) rather than cleared:
 * with one call in flight at a time, each call's deadline then finds the previous call's timer armed
 * earlier than it needs and sets no timer of its own (it fires, finds nothing due, and re-arms for
 * whatever is queued then). A `FakeClock` shows that timer as pending until its due time. A delay longer
 * than the longest a Node timer honours (2^31 − 1 ms) arms for that long and re-arms when it fires.
 */
import { MAX_TIMER_MS, type Clock, type ClockTimer } from './clock.js';
import { reportListenerError } from './events.js';

/** Something waiting in a {@link TimerQueue}. The fields belong to the queue; set none of them by hand. */
export interface TimerEntry {
  /** Due time on the queue's clock. */
  timerAt: number;
  /** Place in the heap, or -1 when not queued. */
  timerIndex: number;
  /** Whether this entry keeps the process alive while it waits. */
  timerKeepAlive: boolean;
  /** Order of queueing, so that entries due at the same time fire in the order they were queued. */
  timerSeq: number;
  /** Called once when due (after it has left the queue). A throw goes to the listener-error handler. */
  onTimer(now: number): void;
}

const queues = new WeakMap<Clock, TimerQueue>();
/** The clock last asked for, and its queue (a one-entry cache in front of the WeakMap). */
let lastClock: Clock | undefined;
let lastQueue: TimerQueue | undefined;
let sequence = 0;

/** Whether `a` fires before `b`: earlier due time, then earlier queueing. */
function before(a: TimerEntry, b: TimerEntry): boolean {
  return a.timerAt < b.timerAt || (a.timerAt === b.timerAt && a.timerSeq < b.timerSeq);
}

export class TimerQueue {
  readonly clock: Clock;
  readonly #heap: TimerEntry[] = [];
  #timer: ClockTimer | undefined = undefined;
  /** When the armed timer fires (clock time). */
  #armedAt = Infinity;
  #keepAlive = 0;
  #refed = false;
  /** True while due entries are being fired (the timer is re-armed once, after them). */
  #firing = false;

  private constructor(clock: Clock) {
    this.clock = clock;
  }

  /** The queue shared by everything on `clock`. */
  static for(clock: Clock): TimerQueue {
    if (clock === lastClock) return lastQueue!; // nearly always one clock: skip the WeakMap
    let queue = queues.get(clock);
    if (queue === undefined) {
      queue = new TimerQueue(clock);
      queues.set(clock, queue);
    }
    lastClock = clock;
    lastQueue = queue;
    return queue;
  }

  /** Entries waiting. */
  get size(): number {
    return this.#heap.length;
  }

  /** Queues `entry` (not queued yet) to fire at `at`. */
  add(entry: TimerEntry, at: number, keepAlive: boolean): void {
    entry.timerAt = at;
    entry.timerKeepAlive = keepAlive;
    entry.timerSeq = sequence++;
    const heap = this.#heap;
    entry.timerIndex = heap.length;
    heap.push(entry);
    this.#up(entry.timerIndex);
    if (keepAlive) this.#keepAlive++;
    if (this.#firing) return;
    if (at < this.#armedAt) this.#arm(at);
    else this.#setRef();
  }

  /** Takes `entry` out of the queue; does nothing if it is not queued. */
  remove(entry: TimerEntry): void {
    const i = entry.timerIndex;
    if (i < 0) return;
    this.#unlink(i);
    if (this.#firing) return;
    // An emptied queue keeps its timer, unref'd, to lapse at its due time: the next entry (typically
    // the next call's deadline, due later) then needs no new timer. Clearing and re-arming for every
    // call would cost a timer per call, which is what this queue is for avoiding.
    this.#setRef();
  }

  /** Moves a queued entry to `at` (or queues it). */
  move(entry: TimerEntry, at: number, keepAlive: boolean): void {
    if (entry.timerIndex >= 0) {
      if (entry.timerAt === at && entry.timerKeepAlive === keepAlive) return;
      this.#unlink(entry.timerIndex);
    }
    this.add(entry, at, keepAlive);
  }

  #unlink(i: number): void {
    const heap = this.#heap;
    const entry = heap[i]!;
    entry.timerIndex = -1;
    if (entry.timerKeepAlive) this.#keepAlive--;
    const last = heap.pop()!;
    if (last !== entry) {
      heap[i] = last;
      last.timerIndex = i;
      this.#down(i);
      this.#up(last.timerIndex);
    }
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer);
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - this.clock.now()));
    this.#armedAt = at;
    this.#timer = this.clock.setTimeout(this.#fire, delay);
    this.#refed = true;
    this.#setRef();
  }

  /** Ref'd while a keep-alive entry waits, unref'd otherwise. */
  #setRef(): void {
    const timer = this.#timer;
    if (timer === undefined) return;
    const want = this.#keepAlive > 0;
    if (want === this.#refed) return;
    this.#refed = want;
    if (want) timer.ref?.();
    else timer.unref?.();
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#armedAt = Infinity;
    const heap = this.#heap;
    const now = this.clock.now();
    this.#firing = true;
    try {
      while (heap.length > 0 && heap[0]!.timerAt <= now) {
        const entry = heap[0]!;
        this.#unlink(0);
        try {
          entry.onTimer(now);
        } catch (error) {
          reportListenerError(error);
        }
      }
    } finally {
      this.#firing = false;
    }
    // callbacks above may have added or removed entries: arm once, for the earliest left
    if (heap.length > 0) this.#arm(heap[0]!.timerAt);
  };

  #up(i: number): void {
    const heap = this.#heap;
    const entry = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!before(entry, p)) break;
      heap[i] = p;
      p.timerIndex = i;
      i = parent;
    }
    heap[i] = entry;
    entry.timerIndex = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const entry = heap[i]!;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && before(heap[right]!, heap[left]!) ? right : left;
      const c = heap[child]!;
      if (!before(c, entry)) break;
      heap[i] = c;
      c.timerIndex = i;
      i = child;
    }
    heap[i] = entry;
    entry.timerIndex = i;
  }
}
