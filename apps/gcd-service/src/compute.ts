/**
 * Where the CPU work runs: inline on the event loop when it is cheap, in a piscina worker pool when
 * it is not, and never longer than `computeTimeoutMs`.
 *
 * Why a threshold: a BigInt gcd of two small numbers costs far less than handing any task to a worker
 * thread, and near 100 digits the worst case (Fibonacci pairs) reaches that offload cost, so above
 * `inlineMaxDigits` the work moves off the event loop (docs/benchmarks.md measures both: "Figures behind
 * design choices" and "gcd-service: JavaScript CPU per request").
 *
 * Why a pool and not a timer around inline work: JavaScript cannot interrupt a running loop, so the
 * only way to stop runaway CPU work is to terminate the thread doing it. The @bulwark/core `timeout`
 * policy aborts its signal at the deadline, and piscina answers an abort of a running task by
 * terminating that worker thread (and starting a fresh one).
 *
 * The queue is a @bulwark/core `bulkhead` (as many slots as threads, `poolMaxQueue` waiting), inside
 * the timeout so the wait counts against the deadline. piscina's own `maxQueue` cannot be the bound:
 * a task that carries an AbortSignal and finds no free worker goes to a side queue that `maxQueue`
 * does not count (piscina 5.3), so with signals the pool would queue without limit.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import {
  BulkheadRejectedError,
  DeadlineExceededError,
  bulkhead,
  pipeline,
  TimeoutError,
  timeout,
  type BulkheadPolicy,
  type Policy,
  type Subscribe,
} from '@bulwark/core';
import { EventEmitter } from '@bulwark/core/internal';
import { endSpan, startSpan } from '@bulwark/service';
import { gcd } from './gcd.js';
import { GcdError } from './errors.js';
import type { GcdInput } from './validation.js';
import type { GcdTask } from './worker.js';

export interface ComputeOptions {
  /** Inputs with at most this many digits are computed inline. */
  inlineMaxDigits: number;
  /** Deadline for pool work, queue wait included. */
  computeTimeoutMs: number;
  /** Worker threads in the pool. */
  poolMaxThreads: number;
  /** Tasks that may wait for a worker; beyond that the request is refused with 503 (a hard bound). */
  poolMaxQueue: number;
  /**
   * A task is refused with 503 when its expected wait for a worker — the tasks ahead of it × the mean
   * computation time measured so far ÷ threads — exceeds this (0 = no bound but `poolMaxQueue`). The
   * queue is sized by time, not by count: a burst of cheap computations may wait, a queue of expensive
   * ones is short. @default 0
   */
  poolMaxWaitMs?: number;
  /** The worker module (tests may pass another). @default dist/src/worker.js */
  workerFile?: URL;
  /**
   * A game day's fault injection around each pool task (CHAOS_COMPUTE_FAULT_RATE, src/chaos.ts): what it
   * throws should be {@link GcdComputer.workerFailedError}.
   */
  chaos?: Policy;
}

export type ComputePath = 'inline' | 'pool';
export type ComputeOutcome = 'ok' | 'timeout' | 'busy' | 'aborted' | 'error';

/** One computation finished (any outcome). */
export interface ComputeEvent {
  readonly path: ComputePath;
  readonly outcome: ComputeOutcome;
  readonly durationMs: number;
  readonly digits: number;
}

export interface ComputeResult {
  readonly gcd: string;
  readonly path: ComputePath;
}

/** piscina's messages when no worker is free and the queue is full (it has no error codes). */
const POOL_FULL = new Set(['Task queue is at limit', 'No task queue available and all Workers are busy']);

/** Builds an error without capturing a stack trace (a refusal under overload needs none; docs/benchmarks.md). */
function withoutStack<T>(make: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Worker threads a pool gets by default: one core is left to the event loop. */
export function defaultPoolThreads(): number {
  return Math.max(1, availableParallelism() - 1);
}

export class GcdComputer {
  readonly pool: Piscina<GcdTask, string>;
  readonly #options: ComputeOptions;
  /** timeout (whole computation, queue wait included) → bulkhead (threads + bounded queue). */
  readonly policy: Policy;
  readonly bulkhead: BulkheadPolicy;
  readonly #onCompute = new EventEmitter<ComputeEvent>();
  #inFlight = 0;
  /** Mean time a worker spends on a computation (exponential moving average, ms; 0 = none measured yet). */
  #meanRunMs = 0;
  readonly #maxWaitMs: number;
  /** Subscribe to finished computations (metrics, logs). */
  readonly onCompute: Subscribe<ComputeEvent> = this.#onCompute.subscribe;

  /** The two refusals, made once (no stack trace: they are answers, not bugs) and shared by every request. */
  readonly busyError: GcdError;
  readonly timeoutError: GcdError;
  /** A computation whose worker failed (what CHAOS_COMPUTE_FAULT_RATE injects). */
  readonly workerFailedError: GcdError;

  constructor(options: ComputeOptions) {
    this.#options = options;
    this.#maxWaitMs = options.poolMaxWaitMs ?? 0;
    this.busyError = withoutStack(
      () =>
        new GcdError(
          'GCD_ERR_BUSY',
          `All ${options.poolMaxThreads} worker threads are busy and the computations waiting would ` +
            `keep this one waiting too long; retry in a moment.`,
          { 'retry-after': '1' },
        ),
    );
    this.timeoutError = withoutStack(
      () =>
        new GcdError(
          'GCD_ERR_COMPUTE_TIMEOUT',
          `Computation exceeded the time limit of ${options.computeTimeoutMs} ms and was stopped; ` +
            `try smaller numbers.`,
          { 'retry-after': '1' },
        ),
    );
    this.workerFailedError = withoutStack(
      () =>
        new GcdError(
          'GCD_ERR_WORKER_FAILED',
          'The worker thread computing these numbers failed; retry in a moment.',
          { 'retry-after': '1' },
        ),
    );
    this.bulkhead = bulkhead({
      name: 'gcd-pool',
      maxConcurrent: options.poolMaxThreads,
      maxQueue: options.poolMaxQueue,
    });
    const deadline = timeout({ timeoutMs: options.computeTimeoutMs, name: 'gcd-compute' });
    this.policy =
      options.chaos === undefined
        ? pipeline(deadline, this.bulkhead)
        : pipeline(deadline, this.bulkhead, options.chaos);
    this.pool = new Piscina<GcdTask, string>({
      filename: (options.workerFile ?? new URL('./worker.js', import.meta.url)).href,
      minThreads: 1,
      maxThreads: options.poolMaxThreads,
      maxQueue: options.poolMaxQueue,
      // Workers are started once and kept: the pool is small and thread start-up costs ~30 ms.
      idleTimeout: 60_000,
      name: 'default',
    });
  }

  /**
   * True while every worker is busy and the queue is full: a pool computation would be refused. The
   * routes check it before they parse a request big enough to need the pool, so such a request costs
   * no parsing and no validation while the pool cannot take it.
   */
  get saturated(): boolean {
    const threads = this.#options.poolMaxThreads;
    if (this.bulkhead.running < threads) return false;
    const queued = this.bulkhead.queued;
    if (queued >= this.#options.poolMaxQueue) return true;
    return this.#maxWaitMs > 0 && ((queued + 1) * this.#meanRunMs) / threads > this.#maxWaitMs;
  }

  /** The mean time a worker spent on a computation so far (ms; 0 before the first). */
  get meanRunMs(): number {
    return this.#meanRunMs;
  }

  /**
   * The refusal of a request too large for inline work while the pool is {@link saturated}, before it
   * was parsed: counted like any busy refusal (`gcd_computations_total{outcome="busy"}`; its size is not
   * known, so it is not in `gcd_input_digits`).
   */
  refuseSaturated(): GcdError {
    this.#emit('pool', 'busy', performance.now(), 0);
    return this.busyError;
  }

  /** Inputs up to this many digits are computed on the event loop. */
  get inlineMaxDigits(): number {
    return this.#options.inlineMaxDigits;
  }

  /** True when an input of this many digits is computed on the event loop. */
  isInline(digits: number): boolean {
    return digits <= this.#options.inlineMaxDigits;
  }

  /** Worker threads alive now. */
  get threads(): number {
    return this.pool.threads.length;
  }

  /** Computations handed to the pool and not settled yet (running or queued). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Computations waiting for a worker. */
  get queueSize(): number {
    return this.bulkhead.queued;
  }

  /**
   * The gcd of a validated input. Rejects with a {@link GcdError} `GCD_ERR_COMPUTE_TIMEOUT` or
   * `GCD_ERR_BUSY` (both 503), or with `signal.reason` when the caller gives up.
   */
  async compute(input: GcdInput, signal?: AbortSignal): Promise<ComputeResult> {
    if (input.digits <= this.#options.inlineMaxDigits)
      return { gcd: this.computeInline(input), path: 'inline' };
    const started = performance.now();
    // Refused at once when the wait for a worker would be too long (a request parsed before the pool
    // filled up; the routes refuse the others before parsing, see `saturated`).
    if (this.saturated) {
      this.#emit('pool', 'busy', started, input.digits);
      throw this.busyError;
    }
    const task: GcdTask = { n: input.n, m: input.m };
    this.#inFlight++;
    // Traced (when tracing is on): the wait for a worker, then the computation in it.
    let wait = startSpan('gcd.pool.wait', { 'gcd.pool.queued': this.bulkhead.queued });
    let work: ReturnType<typeof startSpan>;
    try {
      const value = await this.policy.execute(
        (ctx) => {
          endSpan(wait);
          wait = undefined;
          work = startSpan('gcd.compute', { 'gcd.compute.path': 'pool', 'gcd.digits': input.digits });
          const running = performance.now();
          return this.pool.run(task, { signal: ctx.signal }).then((value) => {
            this.#measured(performance.now() - running);
            return value;
          });
        },
        { signal },
      );
      endSpan(work);
      this.#emit('pool', 'ok', started, input.digits);
      return { gcd: value, path: 'pool' };
    } catch (error) {
      endSpan(wait, error);
      endSpan(work, error);
      if (error === this.workerFailedError) {
        this.#emit('pool', 'error', started, input.digits);
        throw error;
      }
      if (error instanceof TimeoutError) {
        this.#emit('pool', 'timeout', started, input.digits);
        throw this.timeoutError;
      }
      if (
        error instanceof BulkheadRejectedError ||
        (error instanceof Error && POOL_FULL.has(error.message))
      ) {
        this.#emit('pool', 'busy', started, input.digits);
        throw this.busyError;
      }
      // the caller went away, or its own budget (bulwark-timeout-ms) ran out: it stopped waiting
      const stopped = signal?.aborted === true || DeadlineExceededError.is(error);
      this.#emit('pool', stopped ? 'aborted' : 'error', started, input.digits);
      throw error;
    } finally {
      this.#inFlight--;
    }
  }

  /**
   * The gcd of a validated input small enough to compute on the event loop ({@link isInline}), at once:
   * no promise, no signal (the work is bounded by the digit cap and cannot be interrupted anyway).
   */
  computeInline(input: GcdInput): string {
    const started = this.#onCompute.active ? performance.now() : 0;
    const span = startSpan('gcd.compute', { 'gcd.compute.path': 'inline', 'gcd.digits': input.digits });
    const value = gcd(BigInt(input.n), BigInt(input.m)).toString();
    endSpan(span);
    this.#emit('inline', 'ok', started, input.digits);
    return value;
  }

  /** Waits for running tasks, then stops the workers. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  /** Folds one computation's time into the mean (weight 1/16: a few dozen computations set it). */
  #measured(ms: number): void {
    this.#meanRunMs = this.#meanRunMs === 0 ? ms : this.#meanRunMs + (ms - this.#meanRunMs) / 16;
  }

  #emit(path: ComputePath, outcome: ComputeOutcome, started: number, digits: number): void {
    if (this.#onCompute.active) {
      this.#onCompute.emit({ path, outcome, durationMs: performance.now() - started, digits });
    }
  }
}
