import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.js';
import { degrade, type TierEvent } from './degrade.js';
import { setListenerErrorHandler } from './events.js';
import { AllSourcesFailedError, DeadlineExceededError, InvalidOptionError, TimeoutError } from './errors.js';
import { timeout } from './timeout.js';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Settles when `signal` aborts, with its reason. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) =>
    signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
  );
}

describe('degrade', () => {
  it('validates options, naming the option', () => {
    const run = () => 1;
    const bad: [unknown, string][] = [
      [{ tiers: [] }, 'degrade.tiers'],
      [
        {
          tiers: [
            { name: 'a', run },
            { name: 'a', run },
          ],
        },
        'degrade.tiers[1].name',
      ],
      [{ tiers: [{ name: 'a' }] }, 'degrade.tiers[0].run'],
      [{ tiers: [{ name: 'a', run, policy: {} }] }, 'degrade.tiers[0].policy'],
      [{ tiers: [{ name: 'a', run, when: 1 }] }, 'degrade.tiers[0].when'],
      [{ tiers: [{ name: 'a', run }], singleFlight: 'yes' }, 'degrade.singleFlight'],
      [{ tiers: [{ name: 'a', run }], keyOf: () => 'k' }, 'degrade.keyOf'],
    ];
    for (const [options, option] of bad) {
      assert.throws(
        () => degrade(options as never),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option,
        option,
      );
    }
  });

  it('the first tier that serves wins; earlier skips and failures are reported in order', async () => {
    const clock = new FakeClock();
    const ladder = degrade<string, string>({
      clock,
      tiers: [
        { name: 'fresh-cache', run: (ctx) => ctx.skip('NOT_CACHED', 'not cached') },
        {
          name: 'primary',
          run: () => {
            clock.advance(30);
            throw Object.assign(new Error('ECONNREFUSED'), { code: 'ECONNREFUSED' });
          },
        },
        {
          name: 'fallback',
          run: async (ctx) => {
            assert.deepEqual(
              ctx.previous.map((r) => `${r.tier}:${r.status}`),
              ['fresh-cache:skipped', 'primary:failed'],
            );
            clock.advance(20);
            return `body of ${ctx.input}`;
          },
        },
        { name: 'stale-cache', run: () => assert.fail('must not be reached') },
      ],
    });
    const result = await ladder.execute('/x');
    assert.equal(result.value, 'body of /x');
    assert.equal(result.tier, 'fallback');
    assert.equal(result.tierIndex, 2);
    assert.equal(result.elapsedMs, 50);
    assert.equal(result.shared, false);
    assert.deepEqual(
      result.tiers.map((r) => [r.tier, r.status, r.code, r.reason, r.elapsedMs]),
      [
        ['fresh-cache', 'skipped', 'NOT_CACHED', 'not cached', 0],
        ['primary', 'failed', 'ECONNREFUSED', 'ECONNREFUSED', 30],
        ['fallback', 'served', undefined, '', 20],
      ],
    );
  });

  it('every tier failing → AllSourcesFailedError listing each tier', async () => {
    const boom = new Error('HTTP 503');
    const ladder = degrade<void, string>({
      tiers: [
        { name: 'fresh-cache', run: (ctx) => ctx.skip('NOT_CACHED') },
        { name: 'primary', run: () => Promise.reject(boom) },
        {
          name: 'stale-cache',
          run: (ctx) => ctx.skip('TOO_STALE', 'stale copy is 90000 ms old; max-stale 60000 ms'),
        },
      ],
    });
    const error = await ladder.execute().then(
      () => assert.fail('expected a failure'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof AllSourcesFailedError);
    assert.equal(error.code, 'BULWARK_ERR_ALL_SOURCES_FAILED');
    assert.deepEqual(
      error.tiers.map((t) => `${t.tier}:${t.status}`),
      ['fresh-cache:skipped', 'primary:failed', 'stale-cache:skipped'],
    );
    assert.deepEqual(
      error.tiers.map((t) => [t.code, t.reason]),
      [
        ['NOT_CACHED', 'NOT_CACHED'], // no reason given: the code stands in for it
        [undefined, 'HTTP 503'], // a failure without a string code has none
        ['TOO_STALE', 'stale copy is 90000 ms old; max-stale 60000 ms'],
      ],
    );
    assert.deepEqual(error.errors, [boom]);
    assert.equal(error.cause, boom);
    assert.match(
      error.message,
      /primary failed \(HTTP 503\).*stale-cache skipped \(stale copy is 90000 ms old/,
    );
  });

  it('each tier runs under its own policy: a timed-out tier hands over to the next', async () => {
    const clock = new FakeClock();
    const ladder = degrade<void, string>({
      clock,
      tiers: [
        {
          name: 'primary',
          policy: timeout({ timeoutMs: 100, clock }),
          run: (ctx) => untilAborted(ctx.signal),
        },
        { name: 'fallback', run: () => 'from fallback' },
      ],
    });
    const call = ladder.execute();
    await clock.advanceAsync(100);
    const result = await call;
    assert.equal(result.tier, 'fallback');
    const [primary] = result.tiers;
    assert.ok(primary!.error instanceof TimeoutError);
    assert.equal(primary!.elapsedMs, 100);
    assert.equal(clock.pendingTimers, 0);
  });

  it("the caller's abort stops the ladder at once with signal.reason", async () => {
    const controller = new AbortController();
    let reachedFallback = false;
    const ladder = degrade<void, string>({
      tiers: [
        { name: 'primary', run: (ctx) => untilAborted(ctx.signal) },
        {
          name: 'fallback',
          run: () => {
            reachedFallback = true;
            return 'x';
          },
        },
      ],
    });
    const call = ladder.execute(undefined, { signal: controller.signal });
    const reason = new Error('user pressed Ctrl-C');
    controller.abort(reason);
    await assert.rejects(call, (e) => e === reason);
    assert.equal(reachedFallback, false);
    const early = ladder.execute(undefined, { signal: controller.signal });
    await assert.rejects(early, (e) => e === reason);
  });

  it('shouldDegrade=false makes an error final (a 404 is an answer, not an outage)', async () => {
    const notFound = Object.assign(new Error('HTTP 404'), { status: 404 });
    const ladder = degrade<void, string>({
      shouldDegrade: (e) => (e as { status?: number }).status !== 404,
      tiers: [
        { name: 'primary', run: () => Promise.reject(notFound) },
        { name: 'stale-cache', run: () => assert.fail('must not serve stale for a 404') },
      ],
    });
    await assert.rejects(ladder.execute(), (e) => e === notFound);
  });

  it('emits start/outcome events per tier; a throwing listener changes nothing', async () => {
    const ladder = degrade<void, number>({
      name: 'get',
      tiers: [
        { name: 'a', run: (ctx) => ctx.skip('EMPTY', 'empty') },
        { name: 'b', run: () => Promise.reject(Object.assign(new Error('down'), { code: 'E_DOWN' })) },
        { name: 'c', run: () => 3 },
      ],
    });
    const seen: string[] = [];
    const sub = ladder.onTier((e: TierEvent) =>
      seen.push(`${e.name}/${e.key}/${e.tier}:${e.status}:${e.code ?? ''}:${e.reason}`),
    );
    ladder.onTier(() => {
      throw new Error('listener bug');
    });
    const listenerErrors: unknown[] = [];
    const previous = setListenerErrorHandler((e) => listenerErrors.push(e));
    const result = await ladder.execute(undefined, { key: 'k1' });
    assert.equal(result.value, 3);
    assert.deepEqual(seen, [
      'get/k1/a:start::',
      'get/k1/a:skipped:EMPTY:empty',
      'get/k1/b:start::',
      'get/k1/b:failed:E_DOWN:down',
      'get/k1/c:start::',
      'get/k1/c:served::',
    ]);
    sub.dispose();
    await ladder.execute(undefined, { key: 'k1' });
    assert.equal(seen.length, 6);
    setListenerErrorHandler(previous);
    assert.equal(listenerErrors.length, 12, 'the throwing listener saw both runs');
  });

  it('single-flight: 100 concurrent calls for one key → the ladder runs once', async () => {
    const clock = new FakeClock();
    let upstreamCalls = 0;
    const ladder = degrade<string, string>({
      clock,
      singleFlight: true,
      key: (url) => url,
      tiers: [
        { name: 'fresh-cache', run: (ctx) => ctx.skip('NOT_CACHED', 'not cached') },
        {
          name: 'primary',
          run: (ctx) => {
            upstreamCalls++;
            return new Promise<string>((resolve) => clock.setTimeout(() => resolve(`body ${ctx.input}`), 50));
          },
        },
      ],
    });
    const calls = Array.from({ length: 100 }, () => ladder.execute('/k'));
    const other = ladder.execute('/other');
    assert.equal(ladder.inFlight, 2);
    await clock.advanceAsync(50);
    const results = await Promise.all(calls);
    assert.equal((await other).value, 'body /other');
    assert.equal(upstreamCalls, 2, 'one upstream call per key');
    assert.ok(results.every((r) => r.value === 'body /k' && r.tier === 'primary'));
    assert.equal(results.filter((r) => r.shared).length, 99);
    assert.equal(ladder.inFlight, 0);
    assert.equal(clock.pendingTimers, 0);
  });

  it("single-flight: a joiner never fails with the starter's deadline; it goes on with a flight of its own", async () => {
    const clock = new FakeClock();
    const budgets: number[] = [];
    const ladder = degrade<void, string>({
      clock,
      singleFlight: true,
      tiers: [
        {
          name: 'primary',
          run: (ctx) => {
            budgets.push(ctx.remainingMs());
            const answer = new Promise<string>((resolve) => clock.setTimeout(() => resolve('body'), 120));
            return Promise.race([answer, untilAborted(ctx.signal)]);
          },
        },
      ],
    });
    const a = ladder.execute(undefined, { key: 'k', timeoutMs: 50 }); // starts the flight
    const aFailed = assert.rejects(a, (e) => DeadlineExceededError.is(e));
    await clock.advanceAsync(5);
    const b = ladder.execute(undefined, { key: 'k' }); // joins it, with no deadline of its own
    const c = ladder.execute(undefined, { key: 'k', timeoutMs: 1_000 }); // joins it, with a later one
    await clock.advanceAsync(45); // a's deadline: the flight ends; b and c go on in a new one
    await aFailed;
    assert.equal(ladder.inFlight, 1);
    await clock.advanceAsync(120);
    const [rb, rc] = await Promise.all([b, c]);
    assert.equal(rb.value, 'body');
    assert.equal(rc.value, 'body');
    assert.deepEqual(budgets, [50, Infinity], "two flights: a's, then one b started and c joined");
    assert.equal(ladder.inFlight, 0);
  });

  it('single-flight: a joiner whose own deadline passes fails with it', async () => {
    const clock = new FakeClock();
    const ladder = degrade<void, string>({
      clock,
      singleFlight: true,
      tiers: [{ name: 'primary', run: (ctx) => untilAborted(ctx.signal) as Promise<string> }],
    });
    const a = ladder.execute(undefined, { key: 'k', timeoutMs: 50 });
    const b = ladder.execute(undefined, { key: 'k', timeoutMs: 50 });
    const both = Promise.allSettled([a, b]);
    await clock.advanceAsync(50);
    const [ra, rb] = await both;
    assert.ok(ra.status === 'rejected' && DeadlineExceededError.is(ra.reason));
    assert.ok(rb.status === 'rejected' && DeadlineExceededError.is(rb.reason));
    assert.equal(ladder.inFlight, 0);
  });

  it('single-flight: a leaving waiter does not abort the shared call; the last one does', async () => {
    let upstreamSignal: AbortSignal | undefined;
    const gate = deferred<string>();
    const ladder = degrade<void, string>({
      singleFlight: true,
      tiers: [
        {
          name: 'primary',
          run: (ctx) => {
            upstreamSignal = ctx.signal;
            return Promise.race([gate.promise, untilAborted(ctx.signal)]);
          },
        },
      ],
    });
    const a = new AbortController();
    const b = new AbortController();
    const pa = ladder.execute(undefined, { key: 'k', signal: a.signal });
    const pb = ladder.execute(undefined, { key: 'k', signal: b.signal });
    const pc = ladder.execute(undefined, { key: 'k' });
    await new Promise((r) => setImmediate(r));
    a.abort(new Error('a left'));
    await assert.rejects(pa, /a left/);
    assert.equal(upstreamSignal!.aborted, false);
    gate.resolve('shared body');
    assert.equal((await pb).value, 'shared body');
    assert.equal((await pc).shared, true);

    // now everyone leaves: the upstream call is aborted
    let second: AbortSignal | undefined;
    const ladder2 = degrade<void, string>({
      singleFlight: true,
      tiers: [
        {
          name: 'primary',
          run: (ctx) => {
            second = ctx.signal;
            return untilAborted(ctx.signal);
          },
        },
      ],
    });
    const x = new AbortController();
    const y = new AbortController();
    const px = ladder2.execute(undefined, { key: 'k', signal: x.signal });
    const py = ladder2.execute(undefined, { key: 'k', signal: y.signal });
    await new Promise((r) => setImmediate(r));
    x.abort(new Error('x left'));
    y.abort(new Error('y left'));
    await assert.rejects(px, /x left/);
    await assert.rejects(py, /y left/);
    assert.equal(second!.aborted, true);
    assert.equal(ladder2.inFlight, 0);
  });

  it('without a key there is no sharing', async () => {
    let calls = 0;
    const ladder = degrade<void, number>({
      singleFlight: true,
      tiers: [{ name: 'p', run: async () => ++calls }],
    });
    const [a, b] = await Promise.all([ladder.execute(), ladder.execute()]);
    assert.deepEqual([a.value, b.value].sort(), [1, 2]);
  });
});
