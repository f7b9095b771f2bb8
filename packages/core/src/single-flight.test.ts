import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { flushMicrotasks } from './clock.js';
import { singleFlight } from './single-flight.js';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('singleFlight', () => {
  it('100 concurrent calls with one key run the work once and all get its value', async () => {
    const group = singleFlight<number>();
    const gate = deferred<number>();
    let calls = 0;
    const results = Array.from({ length: 100 }, () =>
      group.run('k', () => {
        calls++;
        return gate.promise;
      }),
    );
    assert.equal(group.waiters('k'), 100);
    gate.resolve(7);
    const settled = await Promise.all(results);
    assert.equal(calls, 1);
    assert.ok(settled.every((r) => r.value === 7));
    assert.equal(settled.filter((r) => !r.shared).length, 1);
    assert.equal(settled[0]!.shared, false);
    assert.equal(group.size, 0);
  });

  it('different keys do not share; a settled key starts a new flight', async () => {
    const group = singleFlight<string>();
    let calls = 0;
    const work = async () => `v${++calls}`;
    const [a, b] = await Promise.all([group.run('a', work), group.run('b', work)]);
    assert.deepEqual([a.value, b.value].sort(), ['v1', 'v2']);
    const c = await group.run('a', work);
    assert.equal(c.value, 'v3');
    assert.equal(c.shared, false);
  });

  it('an error reaches every waiter, and the key is free again', async () => {
    const group = singleFlight<number>();
    const gate = deferred<number>();
    const p1 = group.run('k', () => gate.promise);
    const p2 = group.run('k', () => assert.fail('second work must not run'));
    gate.reject(new Error('upstream down'));
    await assert.rejects(p1, /upstream down/);
    await assert.rejects(p2, /upstream down/);
    assert.equal(group.size, 0);
    const sync = group.run('k', () => {
      throw new Error('sync');
    });
    await assert.rejects(sync, /sync/);
    assert.equal(group.size, 0);
  });

  it('one waiter aborting leaves the shared work running for the others', async () => {
    const group = singleFlight<number>();
    const gate = deferred<number>();
    let workSignal: AbortSignal | undefined;
    const leaver = new AbortController();
    const p1 = group.run(
      'k',
      (signal) => {
        workSignal = signal;
        return gate.promise;
      },
      leaver.signal,
    );
    const p2 = group.run('k', () => gate.promise);
    const reason = new Error('caller gave up');
    leaver.abort(reason);
    await assert.rejects(p1, (e) => e === reason);
    assert.equal(workSignal!.aborted, false, 'the shared call must not be aborted');
    assert.equal(group.waiters('k'), 1);
    gate.resolve(5);
    assert.deepEqual(await p2, { value: 5, shared: true });
  });

  it('the shared work is aborted only when every waiter has left', async () => {
    const group = singleFlight<number>();
    let workSignal: AbortSignal | undefined;
    const events: string[] = [];
    group.onFlight((e) => events.push(`${e.type}:${e.waiters}`));
    const a = new AbortController();
    const b = new AbortController();
    const work = (signal: AbortSignal) => {
      workSignal = signal;
      return new Promise<number>((_, reject) =>
        signal.addEventListener('abort', () => reject(signal.reason)),
      );
    };
    const p1 = group.run('k', work, a.signal);
    const p2 = group.run('k', work, b.signal);
    a.abort(new Error('a left'));
    await assert.rejects(p1, /a left/);
    assert.equal(workSignal!.aborted, false);
    b.abort(new Error('b left'));
    await assert.rejects(p2, /b left/);
    assert.equal(workSignal!.aborted, true);
    assert.equal(group.size, 0, 'an abandoned key is free at once');
    await flushMicrotasks();
    assert.deepEqual(events, ['start:1', 'join:2', 'abandon:0']);
  });

  it('an already aborted signal rejects without starting or joining', async () => {
    const group = singleFlight<number>();
    const c = new AbortController();
    c.abort(new Error('early'));
    await assert.rejects(
      group.run('k', () => assert.fail('must not run'), c.signal),
      /early/,
    );
    assert.equal(group.size, 0);
  });

  it('no abort listener outlives its call', async () => {
    const group = singleFlight<number>();
    const c = new AbortController();
    let added = 0;
    let removed = 0;
    const signal = c.signal;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((...args: Parameters<typeof add>) => {
      added++;
      return add(...args);
    }) as typeof add;
    signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
      removed++;
      return remove(...args);
    }) as typeof remove;
    for (let i = 0; i < 10; i++) await group.run('k', async () => i, signal);
    await assert.rejects(
      group.run('k', () => Promise.reject(new Error('x')), signal),
      /x/,
    );
    assert.equal(added, 11);
    assert.equal(removed, 11);
  });
});
