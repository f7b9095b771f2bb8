// The shared timer queue: fire order (due time, then queueing order), one clock timer, re-arming after
// callbacks that add or remove entries, keep-alive accounting, and long delays.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FakeClock, MAX_TIMER_MS, type Clock, type ClockTimer } from './clock.js';
import { setListenerErrorHandler } from './events.js';
import { TimerQueue, type TimerEntry } from './timer-queue.js';

class Entry implements TimerEntry {
  timerAt = Infinity;
  timerIndex = -1;
  timerKeepAlive = false;
  timerSeq = 0;
  constructor(
    readonly name: string,
    readonly fired: string[],
    readonly then?: (now: number) => void,
  ) {}
  onTimer(now: number): void {
    this.fired.push(`${this.name}@${now}`);
    this.then?.(now);
  }
}

/** A FakeClock that also reports ref/unref calls on its timers. */
function refClock() {
  const clock = new FakeClock();
  const refs: string[] = [];
  const wrapped: Clock = {
    now: () => clock.now(),
    setTimeout: (cb, ms) => {
      const t = clock.setTimeout(cb, ms);
      return {
        inner: t,
        ref: () => refs.push('ref'),
        unref: () => refs.push('unref'),
      } as ClockTimer;
    },
    clearTimeout: (t) => clock.clearTimeout((t as unknown as { inner: ClockTimer }).inner),
  };
  return { clock, wrapped, refs };
}

describe('TimerQueue', () => {
  it('one queue per clock, one timer for any number of entries, none once they fired', () => {
    const clock = new FakeClock();
    const q = TimerQueue.for(clock);
    assert.equal(TimerQueue.for(clock), q);
    assert.notEqual(TimerQueue.for(new FakeClock()), q);
    const fired: string[] = [];
    const entries = [30, 10, 20, 10].map((at, i) => new Entry(`e${i}`, fired));
    [30, 10, 20, 10].forEach((at, i) => q.add(entries[i]!, at, false));
    assert.equal(clock.pendingTimers, 1);
    q.remove(entries[2]!);
    clock.advance(30);
    assert.deepEqual(fired, ['e1@10', 'e3@10', 'e0@30'], 'due order, ties in queueing order');
    assert.equal(clock.pendingTimers, 0);
    assert.equal(q.size, 0);
  });

  it('re-arms for the earliest entry left after callbacks that add later ones (regression)', () => {
    // an entry firing at 100 queues another at 200 while an entry at 150 waits: 150 must still fire at 150
    const clock = new FakeClock();
    const q = TimerQueue.for(clock);
    const fired: string[] = [];
    const late = new Entry('late', fired);
    const first = new Entry('first', fired, (now) => q.add(late, now + 100, true));
    const middle = new Entry('middle', fired);
    q.add(middle, 150, true);
    q.add(first, 100, true);
    clock.advance(150);
    assert.deepEqual(fired, ['first@100', 'middle@150']);
    clock.advance(50);
    assert.deepEqual(fired, ['first@100', 'middle@150', 'late@200']);
  });

  it('an emptied queue leaves its timer to lapse: the next later entry sets no timer of its own', () => {
    const clock = new FakeClock();
    const q = TimerQueue.for(clock);
    const fired: string[] = [];
    const first = new Entry('first', fired);
    q.add(first, 100, true);
    q.remove(first);
    assert.equal(clock.pendingTimers, 1, 'left armed (unref’d)');
    const next = new Entry('next', fired);
    q.add(next, 150, true);
    assert.equal(clock.pendingTimers, 1, 'no second timer');
    clock.advance(100);
    assert.equal(clock.nextTimerAt, 150, 're-armed for what is queued');
    clock.advance(50);
    assert.deepEqual(fired, ['next@150']);
    assert.equal(clock.pendingTimers, 0);
  });

  it('removing the earliest entry leaves the timer; it fires early, finds nothing, re-arms', () => {
    const clock = new FakeClock();
    const q = TimerQueue.for(clock);
    const fired: string[] = [];
    const a = new Entry('a', fired);
    const b = new Entry('b', fired);
    q.add(a, 10, false);
    q.add(b, 50, false);
    q.remove(a);
    assert.equal(clock.nextTimerAt, 10);
    clock.advance(10);
    assert.equal(clock.nextTimerAt, 50);
    clock.advance(40);
    assert.deepEqual(fired, ['b@50']);
  });

  it('move() re-queues an entry; a throwing callback does not stop the others', () => {
    const clock = new FakeClock();
    const q = TimerQueue.for(clock);
    const fired: string[] = [];
    const a = new Entry('a', fired, () => {
      throw new Error('callback bug');
    });
    const b = new Entry('b', fired);
    q.add(a, 10, false);
    q.add(b, 20, false);
    q.move(b, 5, false);
    q.move(a, 10, false); // same place: nothing to do
    const reported: unknown[] = [];
    const previous = setListenerErrorHandler((error) => reported.push(error));
    try {
      clock.advance(10);
    } finally {
      setListenerErrorHandler(previous);
    }
    assert.deepEqual(fired, ['b@5', 'a@10']);
    assert.match(String(reported[0]), /callback bug/);
  });

  it('the timer is ref’d while a keep-alive entry waits, unref’d otherwise', () => {
    const { clock, wrapped, refs } = refClock();
    const q = TimerQueue.for(wrapped);
    const fired: string[] = [];
    const wake = new Entry('wake', fired);
    const deadline = new Entry('deadline', fired);
    q.add(wake, 100, false);
    assert.deepEqual(refs, ['unref']);
    q.add(deadline, 50, true); // earlier: a new timer, ref'd
    assert.deepEqual(refs, ['unref']);
    q.remove(deadline);
    assert.deepEqual(refs, ['unref', 'unref']);
    clock.advance(100);
    assert.deepEqual(fired, ['wake@100']);
  });

  it('a due time beyond the longest Node timer arms for that long and re-arms', () => {
    const clock = new FakeClock();
    const q = TimerQueue.for(clock);
    const fired: string[] = [];
    q.add(new Entry('far', fired), MAX_TIMER_MS * 2 + 5, false);
    assert.equal(clock.nextTimerAt, MAX_TIMER_MS);
    clock.advance(MAX_TIMER_MS);
    assert.deepEqual(fired, []);
    clock.advance(MAX_TIMER_MS + 5);
    assert.deepEqual(fired, [`far@${MAX_TIMER_MS * 2 + 5}`]);
  });

  it('property: entries fire in (due time, queueing order), each once, whatever the adds, moves and removes', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('add' as const), at: fc.integer({ min: 0, max: 50 }) }),
            fc.record({ op: fc.constant('move' as const), i: fc.nat(), at: fc.integer({ min: 0, max: 50 }) }),
            fc.record({ op: fc.constant('remove' as const), i: fc.nat() }),
            fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 20 }) }),
          ),
          { maxLength: 80 },
        ),
        (ops) => {
          const clock = new FakeClock();
          const q = TimerQueue.for(clock);
          const fired: string[] = [];
          const entries: Entry[] = [];
          /** The model: queued entries with their due time and queueing number. */
          const model = new Map<Entry, { at: number; seq: number }>();
          let seq = 0;
          const expected: string[] = [];
          for (const o of ops) {
            if (o.op === 'add') {
              const e = new Entry(`e${entries.length}`, fired);
              entries.push(e);
              const at = clock.now() + o.at;
              q.add(e, at, false);
              model.set(e, { at, seq: seq++ });
            } else if (o.op === 'move' && entries.length > 0) {
              const e = entries[o.i % entries.length]!;
              const at = clock.now() + o.at;
              const was = model.get(e);
              q.move(e, at, false);
              if (!(was !== undefined && was.at === at)) model.set(e, { at, seq: seq++ });
            } else if (o.op === 'remove' && entries.length > 0) {
              const e = entries[o.i % entries.length]!;
              q.remove(e);
              model.delete(e);
            } else if (o.op === 'advance') {
              const target = clock.now() + o.ms;
              const due = [...model.entries()]
                .filter(([, m]) => m.at <= target)
                .sort(([, x], [, y]) => x.at - y.at || x.seq - y.seq);
              for (const [e, m] of due) {
                expected.push(`${e.name}@${m.at}`);
                model.delete(e);
              }
              clock.advance(o.ms);
              assert.deepEqual(fired, expected);
            }
            assert.equal(q.size, model.size);
            // one timer while anything is queued; an emptied queue's timer may linger until it lapses
            if (model.size > 0) assert.equal(clock.pendingTimers, 1);
            else assert.ok(clock.pendingTimers <= 1);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
