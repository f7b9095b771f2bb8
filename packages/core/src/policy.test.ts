// Pipelines. A pipeline of built-in policies runs its stages inline (one `then` per call instead of one
// promise per stage); a pipeline with any other policy nests every stage. These tests pin the behaviour
// of the inline path, and compare it with the nested one on the same scenarios.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { getEventListeners } from 'node:events';
import fc from 'fast-check';
import { FakeClock, flushMicrotasks } from './clock.js';
import type { CallContext, Operation } from './context.js';
import { TimeoutError } from './errors.js';
import { bulkhead } from './bulkhead.js';
import { circuitBreaker } from './circuit-breaker.js';
import { invoke, pipeline, type Outcome, type Policy } from './policy.js';
import { retry } from './retry.js';
import { timeout } from './timeout.js';

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Settled state of a promise without awaiting it. */
function track<T>(p: Promise<T>) {
  const s: { done: boolean; value?: T; error?: unknown } = { done: false };
  p.then(
    (value) => Object.assign(s, { done: true, value }),
    (error: unknown) => Object.assign(s, { done: true, error }),
  );
  return s;
}

/** A policy that is not built in: it passes a plain object as the context (so the pipeline nests). */
function foreignPolicy(clock: FakeClock, log: string[] = []): Policy {
  return {
    clock,
    execute: (fn) => invoke(fn, foreignContext(clock)),
    run: <T>(fn: Operation<T>, ctx: CallContext) => {
      log.push(`foreign attempt=${ctx.attempt}`);
      return invoke(fn, {
        signal: ctx.signal,
        aborted: ctx.aborted,
        attempt: ctx.attempt,
        deadline: ctx.deadline,
        key: ctx.key,
        clock: ctx.clock,
        remainingMs: () => ctx.remainingMs(),
      });
    },
  };
}

function foreignContext(clock: FakeClock, signal = new AbortController().signal): CallContext {
  return {
    signal,
    get aborted() {
      return signal.aborted;
    },
    attempt: 2,
    deadline: Infinity,
    key: 'foreign-key',
    clock,
    remainingMs: () => Infinity,
  };
}

/** A built-in policy that only passes calls through: put first, it makes a pipeline nest every stage. */
const passThrough = (clock: FakeClock): Policy => ({
  clock,
  execute: (fn) => invoke(fn, foreignContext(clock)),
  run: (fn, ctx) => invoke(fn, ctx),
});

describe('pipeline', () => {
  it('runs stages outermost first, and the operation sees the innermost context', async () => {
    const clock = new FakeClock(1_000);
    const p = pipeline(
      retry({ clock }),
      circuitBreaker({ clock }),
      timeout({ timeoutMs: 50, strategy: 'cooperative', clock }),
      bulkhead({ maxConcurrent: 1, clock }),
    );
    let seen: CallContext | undefined;
    const value = await p.execute(
      (ctx) => {
        seen = ctx;
        return ctx.signal.aborted ? 'aborted' : 'ok';
      },
      { key: 'k' },
    );
    assert.equal(value, 'ok');
    assert.equal(seen!.key, 'k');
    assert.equal(seen!.attempt, 1);
    assert.equal(seen!.deadline, 1_050);
    assert.equal(seen!.remainingMs(), 50);
  });

  it('an empty pipeline and a pipeline of one policy run the operation', async () => {
    const clock = new FakeClock();
    assert.equal(await pipeline().execute(() => 1), 1);
    assert.equal(await pipeline(bulkhead({ maxConcurrent: 1, clock })).execute(() => 2), 2);
    assert.equal(await pipeline(timeout({ timeoutMs: 5, clock })).execute(async () => 3), 3);
    await assert.rejects(
      pipeline(circuitBreaker({ clock })).execute(() => {
        throw new Error('sync');
      }),
      /sync/,
    );
  });

  it('a policy that is not built in gets the context and passes its own on (the stages nest)', async () => {
    const clock = new FakeClock();
    const log: string[] = [];
    const p = pipeline(retry({ clock }), foreignPolicy(clock, log), bulkhead({ maxConcurrent: 1, clock }));
    const seen = await p.execute((ctx) => `${ctx.key} ${ctx.attempt}`, { key: 'k' });
    assert.equal(seen, 'k 1');
    assert.deepEqual(log, ['foreign attempt=1']);
  });

  it('run() accepts a foreign context: its key, attempt and signal reach the operation', async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    const p = pipeline(circuitBreaker({ clock }), bulkhead({ maxConcurrent: 1, clock }));
    let signal: AbortSignal | undefined;
    const call = p.run(
      (ctx) => {
        signal = ctx.signal;
        return `${ctx.key} ${ctx.attempt}`;
      },
      foreignContext(clock, controller.signal),
    );
    assert.equal(await call, 'foreign-key 2');
    assert.equal(signal, controller.signal);
  });

  it('the operation can run the same pipeline again inside its own context', async () => {
    const clock = new FakeClock();
    const p = pipeline(
      retry({ clock }),
      timeout({ timeoutMs: 100, clock }),
      bulkhead({ maxConcurrent: 2, clock }),
    );
    const value = await p.execute(async (outer) => {
      const inner = await p.run((ctx) => `inner deadline ${ctx.deadline}`, outer);
      return `${inner}; outer deadline ${outer.deadline}`;
    });
    assert.equal(value, 'inner deadline 100; outer deadline 100');
    assert.equal(clock.pendingTimers, 1);
    await clock.advanceAsync(100);
    assert.equal(clock.pendingTimers, 0);
  });

  it('retry outside an aggressive timeout: the late attempt is retried, the breaker counts its timeout, and it keeps its bulkhead slot until it settles', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock });
    const failures: unknown[] = [];
    breaker.onFailure((e) => failures.push(e.ok ? e.value : e.error));
    const slots = bulkhead({ maxConcurrent: 2, clock });
    const p = pipeline(
      retry({ maxAttempts: 2, jitter: 'none', initialDelayMs: 10, clock }),
      breaker,
      timeout({ timeoutMs: 50, clock }),
      slots,
    );
    const late = deferred<string>();
    const attempts: number[] = [];
    const call = track(
      p.execute((ctx) => {
        attempts.push(ctx.attempt);
        return ctx.attempt === 1 ? late.promise : 'second';
      }),
    );
    await clock.advanceAsync(49);
    assert.equal(call.done, false);
    await clock.advanceAsync(1);
    assert.equal(failures.length, 1);
    assert.ok(failures[0] instanceof TimeoutError);
    assert.equal(slots.running, 1, 'the abandoned attempt still holds its slot');
    await clock.advanceAsync(10);
    assert.deepEqual(call, { done: true, value: 'second' });
    assert.deepEqual(attempts, [1, 2]);
    assert.equal(slots.running, 1);
    late.resolve('too late');
    await flushMicrotasks();
    assert.equal(slots.running, 0);
    assert.equal(failures.length, 1, 'the late result is not recorded again');
    await clock.advanceAsync(1_000);
    assert.equal(clock.pendingTimers, 0);
  });

  it('two aggressive timeouts: the earlier deadline ends the call, and a stage between them sees the inner one', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock });
    const seen: string[] = [];
    breaker.onFailure((e) => seen.push(`failure ${(e as { error?: TimeoutError }).error?.timeoutMs}`));
    breaker.onIgnored((e) => seen.push(`ignored ${e.reason}`));
    const innerFirst = pipeline(
      timeout({ timeoutMs: 100, clock }),
      breaker,
      timeout({ timeoutMs: 50, clock }),
    );
    const a = innerFirst.execute(() => new Promise<never>(() => {}));
    const rejectedA = assert.rejects(a, (e: unknown) => e instanceof TimeoutError && e.timeoutMs === 50);
    await clock.advanceAsync(50);
    await rejectedA;
    assert.deepEqual(seen, ['failure 50']);

    seen.length = 0;
    const outerFirst = pipeline(
      timeout({ timeoutMs: 50, clock }),
      breaker,
      timeout({ timeoutMs: 100, clock }),
    );
    let settled = 0;
    const b = outerFirst.execute(() => new Promise<never>(() => {})).finally(() => settled++);
    const rejectedB = assert.rejects(b, (e: unknown) => e instanceof TimeoutError && e.timeoutMs === 50);
    await clock.advanceAsync(50);
    await rejectedB;
    await clock.advanceAsync(100);
    assert.equal(settled, 1);
    assert.deepEqual(seen, ['ignored aborted'], 'the caller was gone: the inner timeout is not a failure');
    await clock.advanceAsync(1_000);
    assert.equal(clock.pendingTimers, 0);
  });

  it("after an aggressive timeout ends an attempt, the outer stages run in the caller's async context", async () => {
    const clock = new FakeClock();
    const als = new AsyncLocalStorage<string>();
    const r = retry({ maxAttempts: 2, jitter: 'none', initialDelayMs: 10, clock });
    const retriedIn: (string | undefined)[] = [];
    r.onRetry(() => retriedIn.push(als.getStore()));
    const p = pipeline(r, timeout({ timeoutMs: 50, clock }), bulkhead({ maxConcurrent: 2, clock }));
    // another call arms the timeout's shared timer first, in another context
    await als.run('someone else', () => p.execute(() => 'first'));
    const attempts: (string | undefined)[] = [];
    const call = als.run('caller', () =>
      p.execute((ctx) => {
        attempts.push(als.getStore());
        return ctx.attempt === 1 ? new Promise<never>(() => {}) : 'second';
      }),
    );
    await clock.advanceAsync(60);
    assert.equal(await call, 'second');
    assert.deepEqual(retriedIn, ['caller']);
    assert.deepEqual(attempts, ['caller', 'caller']);
  });

  it("a caller's abort ends a call under an aggressive timeout at once, aborts the operation and leaves no listener", async () => {
    const clock = new FakeClock();
    const r = retry({ clock });
    const reasons: string[] = [];
    r.onGiveUp((e) => reasons.push(e.reason));
    const p = pipeline(r, timeout({ timeoutMs: 1_000, clock }), bulkhead({ maxConcurrent: 1, clock }));
    const controller = new AbortController();
    const reason = new Error('caller gave up');
    let opSignal: AbortSignal | undefined;
    const call = p.execute(
      (ctx) => {
        opSignal = ctx.signal;
        return new Promise<never>(() => {});
      },
      { signal: controller.signal },
    );
    await flushMicrotasks();
    controller.abort(reason);
    await assert.rejects(call, (e: unknown) => e === reason);
    assert.equal(opSignal!.aborted, true);
    assert.deepEqual(reasons, ['aborted']);
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    await clock.advanceAsync(1_000);
    assert.equal(clock.pendingTimers, 0);
  });

  it('a throwing classifier fails the call with its error, and the outer stages see that error', async () => {
    const clock = new FakeClock();
    const bug = new Error('predicate bug');
    const r = retry({ maxAttempts: 1, clock });
    const lastErrors: unknown[] = [];
    r.onGiveUp((e) => lastErrors.push(e.ok ? e.value : e.error));
    const p = pipeline(
      r,
      circuitBreaker({
        clock,
        classify: () => {
          throw bug;
        },
      }),
    );
    await assert.rejects(
      p.execute(() => 'value'),
      (e: unknown) => e === bug,
    );
    assert.deepEqual(lastErrors, [bug]);
  });

  it('a stage that throws on entry fails the call, and the stages already entered are left', async () => {
    const clock = new FakeClock();
    const slots = bulkhead({ maxConcurrent: 1, clock });
    const broken = new Error('budget broke');
    const p = pipeline(
      slots,
      retry({
        clock,
        budget: {
          deposit: () => {
            throw broken;
          },
          tryWithdraw: () => true,
        } as unknown as NonNullable<Parameters<typeof retry>[0]>['budget'],
      }),
    );
    let ran = false;
    await assert.rejects(
      p.execute(() => (ran = true)),
      (e: unknown) => e === broken,
    );
    assert.equal(ran, false);
    assert.equal(slots.running, 0);
  });

  it('a full bulkhead inside a pipeline queues the call; the outer stages see its outcome when it runs', async () => {
    const clock = new FakeClock();
    const slots = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock });
    const breaker = circuitBreaker({ clock });
    const successes: number[] = [];
    breaker.onSuccess(() => successes.push(clock.now()));
    const p = pipeline(retry({ clock }), breaker, slots);
    const first = deferred<string>();
    const a = track(p.execute(() => first.promise));
    const b = track(p.execute(() => 'b'));
    await flushMicrotasks();
    assert.equal(slots.queued, 1);
    assert.equal(b.done, false);
    first.resolve('a');
    await flushMicrotasks();
    assert.deepEqual(a, { done: true, value: 'a' });
    assert.deepEqual(b, { done: true, value: 'b' });
    assert.equal(successes.length, 2);
    assert.equal(slots.running, 0);
  });

  it('the README pipeline makes no AbortSignal when the operation ignores it: not for a queued bulkhead waiter, not for a retry wait', async () => {
    const clock = new FakeClock();
    const Original = globalThis.AbortController;
    let made = 0;
    globalThis.AbortController = class extends Original {
      constructor() {
        super();
        made++;
      }
    };
    try {
      const slots = bulkhead({ maxConcurrent: 1, maxQueue: 10, clock });
      const p = pipeline(
        timeout({ timeoutMs: 2_000, clock }),
        retry({ clock, jitter: 'none', initialDelayMs: 10 }),
        circuitBreaker({ clock }),
        slots,
        timeout({ timeoutMs: 500, clock }),
      );
      const first = deferred<string>();
      let failures = 1;
      const a = track(p.execute(() => first.promise));
      const b = track(
        p.execute(() => {
          if (failures-- > 0) throw new Error('flaky');
          return 'b';
        }),
      );
      await flushMicrotasks();
      assert.equal(slots.queued, 1, 'b waits for the slot');
      first.resolve('a');
      await clock.advanceAsync(10); // b's first attempt fails; its retry waits 10 ms, then succeeds
      assert.deepEqual(a, { done: true, value: 'a' });
      assert.deepEqual(b, { done: true, value: 'b' });
      assert.equal(made, 0);
      // the waits still end on the outer deadline: a queued waiter leaves the queue when it fires
      const held = bulkhead({ maxConcurrent: 1, maxQueue: 10, clock });
      const q = pipeline(
        timeout({ timeoutMs: 2_000, clock }),
        retry({ clock }),
        circuitBreaker({ clock }),
        held,
      );
      const hung = track(q.execute(() => new Promise<never>(() => {})));
      const queued = track(q.execute(() => 'never runs'));
      await flushMicrotasks();
      assert.equal(held.queued, 1);
      await clock.advanceAsync(2_000);
      for (const call of [hung, queued]) {
        assert.ok(call.done && call.error instanceof TimeoutError && call.error.timeoutMs === 2_000);
      }
      assert.equal(held.queued, 0);
      assert.equal(held.running, 1, 'the abandoned operation keeps its slot until it settles');
      assert.equal(made, 0);
    } finally {
      globalThis.AbortController = Original;
    }
  });

  it('an operation that throws synchronously is a failure for the breaker, and frees its bulkhead slot', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, strategy: { type: 'consecutive', threshold: 2 } });
    const slots = bulkhead({ maxConcurrent: 1, clock });
    const p = pipeline(breaker, timeout({ timeoutMs: 10, strategy: 'cooperative', clock }), slots);
    const boom = () => {
      throw new Error('boom');
    };
    await assert.rejects(p.execute(boom), /boom/);
    assert.equal(slots.running, 0);
    assert.equal(breaker.state, 'closed');
    await assert.rejects(p.execute(boom), /boom/);
    assert.equal(breaker.state, 'open');
  });

  it('inline and nested runs of the same stages agree (random pipelines, operations and aborts)', async () => {
    type Stage =
      'retry' | 'retryOnValue' | 'breaker' | 'slowBreaker' | 'cooperative' | 'aggressive' | 'bulkhead';
    type Step = { delayMs: number; fails: boolean; honoursSignal: boolean };
    type Call = { startAtMs: number; abortAtMs: number | undefined; steps: Step[] };
    const build = (clock: FakeClock, stages: Stage[], log: string[]): Policy[] =>
      stages.map((s, i) => {
        switch (s) {
          case 'retry':
          case 'retryOnValue': {
            const r = retry({
              maxAttempts: 3,
              jitter: 'none',
              initialDelayMs: 5,
              clock,
              ...(s === 'retryOnValue'
                ? {
                    classify: (o: Outcome) =>
                      !o.ok || String(o.value).endsWith('attempt 1')
                        ? ('failure' as const)
                        : ('success' as const),
                  }
                : {}),
            });
            r.onRetry((e) => log.push(`${i} retry ${e.attempt} at ${clock.now()}`));
            r.onGiveUp((e) => log.push(`${i} give-up ${e.reason} at ${clock.now()}`));
            r.onSuccess((e) => log.push(`${i} success ${e.attempts} at ${clock.now()}`));
            return r;
          }
          case 'breaker':
          case 'slowBreaker': {
            const b = circuitBreaker({
              clock,
              strategy: { type: 'consecutive', threshold: 3 },
              openDurationMs: 50,
              ...(s === 'slowBreaker' ? { slowCallDurationMs: 40 } : {}),
            });
            b.onStateChange((e) => log.push(`${i} ${e.from}->${e.to} at ${clock.now()}`));
            b.onIgnored((e) => log.push(`${i} ignored ${e.reason} at ${clock.now()}`));
            b.onReject((e) => log.push(`${i} reject ${e.reason} at ${clock.now()}`));
            return b;
          }
          case 'cooperative':
          case 'aggressive': {
            const t = timeout({ timeoutMs: 30 + 10 * i, strategy: s, clock });
            t.onTimeout(() => log.push(`${i} timeout at ${clock.now()}`));
            return t;
          }
          case 'bulkhead': {
            const k = bulkhead({ maxConcurrent: 2, maxQueue: 1, queueTimeoutMs: 60, clock });
            k.onReject((e) => log.push(`${i} reject ${e.reason} at ${clock.now()}`));
            return k;
          }
        }
      });
    const scenario = async (stages: Stage[], calls: Call[], nested: boolean) => {
      const clock = new FakeClock();
      const log: string[] = [];
      const policies = build(clock, stages, log);
      const p = nested ? pipeline(passThrough(clock), ...policies) : pipeline(...policies);
      const outcomes = calls.map((call, c) => {
        const outcome: { done: boolean; value?: string; error?: unknown; at?: number } = { done: false };
        const controller = new AbortController();
        if (call.abortAtMs !== undefined) {
          clock.setTimeout(() => controller.abort(new Error(`call ${c} aborted`)), call.abortAtMs);
        }
        let n = 0;
        const operation = (ctx: CallContext) =>
          new Promise<string>((resolve, reject) => {
            const step = call.steps[Math.min(n++, call.steps.length - 1)]!;
            const timer = clock.setTimeout(() => {
              if (step.fails) reject(new Error(`call ${c} failed`));
              else resolve(`call ${c} ok at attempt ${ctx.attempt}`);
            }, step.delayMs);
            if (!step.honoursSignal) return;
            const signal = ctx.signal;
            const stop = () => {
              clock.clearTimeout(timer);
              reject(signal.reason);
            };
            if (signal.aborted) stop();
            else signal.addEventListener('abort', stop, { once: true });
          });
        clock.setTimeout(() => {
          p.execute(operation, { signal: controller.signal, key: `c${c}` }).then(
            (value) => Object.assign(outcome, { done: true, value, at: clock.now() }),
            (error: unknown) => Object.assign(outcome, { done: true, error, at: clock.now() }),
          );
        }, call.startAtMs);
        return outcome;
      });
      await clock.advanceAsync(20_000);
      const settled = outcomes.map((o) =>
        o.done
          ? o.error !== undefined
            ? `error ${(o.error as Error).name}: ${(o.error as Error).message} at ${o.at}`
            : `${o.value} at ${o.at}`
          : 'pending',
      );
      return { settled, log: log.sort(), timers: clock.pendingTimers };
    };
    const step = fc.record({
      delayMs: fc.constantFrom(1, 20, 45, 200),
      fails: fc.boolean(),
      honoursSignal: fc.boolean(),
    });
    const call = fc.record({
      startAtMs: fc.constantFrom(0, 0, 10, 25),
      abortAtMs: fc.option(fc.constantFrom(5, 35, 100), { nil: undefined }),
      steps: fc.array(step, { minLength: 1, maxLength: 3 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.constantFrom<Stage>(
            'retry',
            'retryOnValue',
            'breaker',
            'slowBreaker',
            'cooperative',
            'aggressive',
            'bulkhead',
          ),
          { minLength: 1, maxLength: 5 },
        ),
        fc.array(call, { minLength: 1, maxLength: 5 }),
        async (stages, calls) => {
          const inline = await scenario(stages, calls, false);
          const nested = await scenario(stages, calls, true);
          assert.deepEqual(inline, nested);
          assert.equal(inline.timers, 0);
        },
      ),
      { numRuns: 200, seed: 20_251_127 },
    );
  });
});
