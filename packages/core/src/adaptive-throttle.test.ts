// adaptiveThrottle: the SRE book's formula on a FakeClock, a reference model of the window, and the
// convergence property (requests reaching a capacity-limited backend settle at about k × its accepts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FakeClock } from './clock.js';
import { adaptiveThrottle, type ThrottleRejectEvent } from './adaptive-throttle.js';
import { circuitBreaker } from './circuit-breaker.js';
import { classify } from './classify.js';
import { BulkheadRejectedError, InvalidOptionError, ThrottledError } from './errors.js';
import { pipeline } from './policy.js';
import { seededRandom } from './random.js';

const refuse = () => Promise.reject(new Error('503'));
const accept = () => Promise.resolve('ok');

describe('adaptiveThrottle', () => {
  it('validates its options', () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ k: 0.5 }, 'adaptiveThrottle.k'],
      [{ k: NaN }, 'adaptiveThrottle.k'],
      [{ windowMs: 0 }, 'adaptiveThrottle.windowMs'],
      [{ minimumRequests: -1 }, 'adaptiveThrottle.minimumRequests'],
      [{ minimumRequests: 1.5 }, 'adaptiveThrottle.minimumRequests'],
      [{ maxKeys: 0 }, 'adaptiveThrottle.maxKeys'],
      [{ random: 0.5 }, 'adaptiveThrottle.random'],
      [{ K: 2 }, 'adaptiveThrottle.K'],
    ];
    for (const [options, option] of bad) {
      assert.throws(
        () => adaptiveThrottle(options as never),
        (e) => e instanceof InvalidOptionError && e.option === option,
        option,
      );
    }
  });

  it('rejects locally with probability (requests − k·accepts) / (requests + 1), once the window holds minimumRequests', async () => {
    const clock = new FakeClock();
    let roll = 0;
    const t = adaptiveThrottle({ clock, minimumRequests: 10, random: () => roll });
    const events: ThrottleRejectEvent[] = [];
    t.onReject((e) => events.push(e));
    // 9 refusals: below minimumRequests, never throttled even with the worst roll
    for (let i = 0; i < 9; i++) await assert.rejects(t.execute(refuse), /503/);
    assert.equal(t.probability(), 0);
    await t.execute(accept); // 10 requests, 1 accept
    assert.deepEqual(t.stats(), { requests: 10, accepts: 1, probability: (10 - 2) / 11 });
    roll = 0.72; // < 8/11 = 0.727…: rejected, and the rejection counts as a request
    await assert.rejects(t.execute(accept), (e) => {
      assert.ok(e instanceof ThrottledError);
      assert.equal(e.code, 'BULWARK_ERR_THROTTLED');
      assert.equal(e.probability, 8 / 11);
      assert.equal(e.retryAfterMs, 0);
      return true;
    });
    assert.deepEqual(events, [
      { name: 'adaptiveThrottle', key: '', reason: 'throttled', probability: 8 / 11 },
    ]);
    assert.deepEqual(t.stats(), { requests: 11, accepts: 1, probability: (11 - 2) / 12 });
    roll = 0.76; // ≥ 9/12 = 0.75: admitted
    assert.equal(await t.execute(accept), 'ok');
    assert.deepEqual(t.stats(), { requests: 12, accepts: 2, probability: (12 - 4) / 13 });
  });

  it('forgets what left the window, so the dependency is tried again by itself', async () => {
    const clock = new FakeClock();
    const t = adaptiveThrottle({
      clock,
      windowMs: 10_000,
      minimumRequests: 0,
      maxRejectionProbability: 1,
      random: () => 0.999,
    });
    for (let i = 0; i < 50; i++) await t.execute(refuse).catch(() => {});
    assert.ok(t.probability() > 0.9);
    clock.advance(5_000);
    assert.ok(t.probability() > 0.9, 'still in the window');
    clock.advance(6_000); // 11 s: every bucket has left the window (it covers 10 to 11 s)
    assert.equal(t.probability(), 0);
    assert.deepEqual(t.stats(), { requests: 0, accepts: 0, probability: 0 });
  });

  it('never rejects more than maxRejectionProbability: probes see a dependency that healed (red-team RT-2 F4)', async () => {
    const clock = new FakeClock();
    let reached = 0;
    let healthy = false;
    const op = () => {
      reached++;
      return healthy ? Promise.resolve('ok') : Promise.reject(new Error('503'));
    };
    // a draw of 0.95: rejected by the book's p (~0.98 after 50 refusals), let through under the 0.9 cap
    const t = adaptiveThrottle({ clock, minimumRequests: 0, random: () => 0.95 });
    for (let i = 0; i < 50; i++) await t.execute(op).catch(() => {});
    assert.equal(t.probability(), 0.9);
    healthy = true; // the dependency heals: the next call is a probe that reaches it, within the window
    reached = 0;
    await t.execute(op);
    assert.equal(reached, 1);
    let calls = 1;
    while (t.probability() > 0) {
      await t.execute(op);
      calls++;
    }
    assert.ok(calls <= 60, `${calls} calls until p = 0, all of them sent`);
    assert.equal(reached, calls);
    // the uncapped formula, for contrast: the same draw is rejected and nothing reaches the dependency
    const strict = adaptiveThrottle({
      clock,
      minimumRequests: 0,
      maxRejectionProbability: 1,
      random: () => 0.95,
    });
    healthy = false;
    for (let i = 0; i < 50; i++) await strict.execute(op).catch(() => {});
    healthy = true;
    reached = 0;
    await assert.rejects(strict.execute(op), (e: unknown) => ThrottledError.is(e));
    assert.equal(reached, 0);
  });

  it('maxRejectionProbability and what random returns are checked', async () => {
    for (const bad of [-0.1, 1.5, Number.NaN, '0.5'])
      assert.throws(
        () => adaptiveThrottle({ maxRejectionProbability: bad as number }),
        (e: unknown) => InvalidOptionError.is(e) && /maxRejectionProbability/.test((e as Error).message),
      );
    const t = adaptiveThrottle({ minimumRequests: 0, random: () => 2 });
    for (let i = 0; i < 30; i++) await t.execute(refuse).catch(() => {});
    await assert.rejects(
      t.execute(accept),
      (e: unknown) => InvalidOptionError.is(e) && /random/.test((e as Error).message),
    );
  });

  it('counts by the classifier: success is an accept, failure a refusal; rejected, ignored and aborted calls not at all', async () => {
    const clock = new FakeClock();
    const t = adaptiveThrottle({
      clock,
      classify: classify.result((v: string) => v === 'busy', 'failure'),
    });
    await t.execute(accept);
    await t.execute(() => 'busy');
    await t
      .execute(() => Promise.reject(Object.assign(new Error('404'), { retryable: false })))
      .catch(() => {});
    await t.execute(() => Promise.reject(new BulkheadRejectedError('queue-full', 1, 0))).catch(() => {});
    const controller = new AbortController();
    const aborted = t.execute(
      (ctx) =>
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
      { signal: controller.signal },
    );
    controller.abort(new Error('caller left'));
    await aborted.catch(() => {});
    assert.deepEqual(t.stats(), { requests: 3, accepts: 2, probability: 0 });
  });

  it('keeps one window per key (keyOf), and at most maxKeys of them, forgetting the least recently used', async () => {
    const clock = new FakeClock();
    const t = adaptiveThrottle({ clock, maxKeys: 2, keyOf: (ctx) => `host:${ctx.key}` });
    await t.execute(refuse, { key: 'a' }).catch(() => {});
    await t.execute(accept, { key: 'b' });
    await t.execute(accept, { key: 'a' }); // a is now the most recently used
    await t.execute(accept, { key: 'c' }); // evicts b
    assert.equal(t.size, 2);
    assert.deepEqual(t.stats('host:a'), { requests: 2, accepts: 1, probability: 0 });
    assert.deepEqual(t.stats('host:b'), { requests: 0, accepts: 0, probability: 0 });
    assert.deepEqual(t.stats('host:c'), { requests: 1, accepts: 1, probability: 0 });
  });

  it('a local rejection is not counted by a breaker outside, and runs inline in a pipeline', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, strategy: { type: 'consecutive', threshold: 3 } });
    const t = adaptiveThrottle({ clock, minimumRequests: 0, random: () => 0 });
    const p = pipeline(breaker, t);
    await p.execute(refuse).catch(() => {}); // p = 1/2 next: rolls 0 → throttled
    assert.equal(breaker.metrics.window.type, 'consecutive');
    for (let i = 0; i < 5; i++) await assert.rejects(p.execute(accept), ThrottledError);
    assert.equal(breaker.state, 'closed');
    assert.deepEqual(breaker.metrics.window, {
      type: 'consecutive',
      consecutiveFailures: 1,
      consecutiveSlowCalls: 0,
    });
    assert.equal(clock.pendingTimers, 0);
  });

  it('model: decisions and counts match a reference window over random traffic', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            advanceMs: fc.integer({ min: 0, max: 3_000 }),
            roll: fc.double({ min: 0, max: 0.999_999, noNaN: true }),
            outcome: fc.constantFrom('accept', 'refuse', 'ignored'),
          }),
          { maxLength: 120 },
        ),
        fc.integer({ min: 0, max: 5 }),
        fc.constantFrom(1, 1.5, 2, 3),
        async (steps, minimumRequests, k) => {
          const clock = new FakeClock();
          const windowMs = 10_000;
          const bucketMs = windowMs / 10;
          let roll = 0;
          const t = adaptiveThrottle({ clock, windowMs, minimumRequests, k, random: () => roll });
          const log: { bucket: number; accepted: boolean }[] = [];
          for (const step of steps) {
            clock.advance(step.advanceMs);
            roll = step.roll;
            const bucket = Math.floor(clock.now() / bucketMs);
            const live = log.filter((e) => e.bucket > bucket - 11);
            const requests = live.length;
            const accepts = live.filter((e) => e.accepted).length;
            const p = requests < minimumRequests ? 0 : Math.max(0, (requests - k * accepts) / (requests + 1));
            assert.equal(t.probability(), p);
            const op =
              step.outcome === 'accept'
                ? accept
                : step.outcome === 'refuse'
                  ? refuse
                  : () => Promise.reject(new InvalidOptionError('x', 1, 'y'));
            const throttled = p > 0 && roll < p;
            const outcome = await t.execute(op).then(
              () => 'ok',
              (e: unknown) => (e instanceof ThrottledError ? 'throttled' : 'failed'),
            );
            assert.equal(outcome === 'throttled', throttled);
            if (throttled) log.push({ bucket, accepted: false });
            else if (step.outcome !== 'ignored') log.push({ bucket, accepted: step.outcome === 'accept' });
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('converges: requests reaching a capacity-limited backend settle at about k × what it accepts', async () => {
    for (const k of [1.5, 2, 3]) {
      const clock = new FakeClock();
      const t = adaptiveThrottle({ clock, k, random: seededRandom(7) });
      // the backend accepts 10 requests per second and refuses the rest; the client offers 100 per second
      let tokens = 10;
      let reached = 0;
      let accepted = 0;
      const backend = () => {
        reached++;
        if (tokens >= 1) {
          tokens--;
          accepted++;
          return Promise.resolve('ok');
        }
        return Promise.reject(new Error('503'));
      };
      for (let ms = 0; ms < 120_000; ms += 10) {
        if (ms % 1_000 === 0) tokens = 10;
        if (ms === 60_000) reached = accepted = 0; // measure the second minute, after the window filled
        await t.execute(backend).catch(() => {});
        clock.advance(10);
      }
      const ratio = reached / accepted;
      assert.ok(Math.abs(ratio - k) / k < 0.1, `k = ${k}: reached / accepted = ${ratio.toFixed(3)}`);
      assert.ok(accepted > 550, `the backend stays busy at its capacity: ${accepted} accepted in 60 s`);
    }
  });
});
