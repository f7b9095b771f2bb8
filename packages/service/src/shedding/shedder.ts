/**
 * shedding/ — the kit's load shedding. This file (the {@link Shedder}, its options and defaults, the body
 * of its 503) ties together the concurrency limit (`concurrency-limiter.ts`, moved by `limit-algorithms.ts`),
 * the event-loop pressure gate (`pressure-gate.ts`) and the refusals written before Fastify
 * (`fast-refusal.ts`); each request is admitted and released in `../hooks.ts`.
 *
 * Load shedding for the HTTP server: an adaptive concurrency limit (Gradient2 by default) plus
 * event-loop pressure. A request over the limit, or picked by the pressure gate, is answered 503 with
 * `Retry-After` at once — before its body is read, without a log line (only a counter).
 */
import { InvalidOptionError, type Clock } from '@bulwark/core';
import { checks } from '@bulwark/core/internal';
import { ConcurrencyLimiter, CONCURRENCY_LIMITER_DEFAULTS } from './concurrency-limiter.js';
import {
  PressureGate,
  PRESSURE_DEFAULTS,
  startEventLoopMonitor,
  type EventLoopMonitor,
} from './pressure-gate.js';
import { aimd, fixed, gradient2, type LimitAlgorithm } from './limit-algorithms.js';

export type AlgorithmName = 'gradient2' | 'aimd' | 'fixed';

export interface SheddingOptions {
  /** The concurrency-limit algorithm, by name or as an instance (`gradient2({...})`). @default 'gradient2' */
  algorithm?: AlgorithmName | LimitAlgorithm;
  /** Starting limit of a named algorithm (the fixed limit for `fixed`). @default 50 */
  initialLimit?: number;
  /** Lowest limit of a named adaptive algorithm. @default 8 */
  minLimit?: number;
  /** Highest limit of a named adaptive algorithm. @default 1000 */
  maxLimit?: number;
  /** The limit is recomputed once per window of at least this long… @default 500 */
  windowMs?: number;
  /** …holding at least this many requests. @default 10 */
  windowMinSamples?: number;
  /** Shed a growing share of requests while the event loop's mean delay exceeds this, in ms (0 = off). @default 100 */
  maxEventLoopDelayMs?: number;
  /** Shed a growing share of requests while event-loop utilisation exceeds this, 0…1 (0 = off). @default 0 */
  maxEventLoopUtilization?: number;
  /** How often the event loop is sampled, in ms. @default 200 */
  eventLoopSampleIntervalMs?: number;
  /** `Retry-After` of a shed response, in whole seconds ≥ 1. @default 1 */
  retryAfterSeconds?: number;
  /** @default systemClock */
  clock?: Clock;
}

export const SHEDDING_DEFAULTS = Object.freeze({
  algorithm: 'gradient2' as AlgorithmName,
  initialLimit: 50,
  minLimit: 8,
  maxLimit: 1000,
  windowMs: 500,
  windowMinSamples: CONCURRENCY_LIMITER_DEFAULTS.windowMinSamples,
  maxEventLoopDelayMs: PRESSURE_DEFAULTS.maxEventLoopDelayMs,
  maxEventLoopUtilization: PRESSURE_DEFAULTS.maxEventLoopUtilization,
  eventLoopSampleIntervalMs: 200,
  retryAfterSeconds: 1,
});

const KEYS = [...Object.keys(SHEDDING_DEFAULTS), 'clock'];

/** Why a request was shed (the `reason` label of `bulwark_shed_total`). */
export type ShedReason = 'concurrency' | 'event_loop';

export interface SheddingStatus {
  algorithm: string;
  limit: number;
  inflight: number;
  /** Share of requests the event-loop gate is shedding now. */
  shedRatio: number;
  eventLoop: { delayMs: number; utilization: number; pressured: boolean };
}

export class Shedder {
  readonly limiter: ConcurrencyLimiter;
  readonly gate: PressureGate;
  readonly retryAfterSeconds: number;
  readonly eventLoopSampleIntervalMs: number;
  #monitor: EventLoopMonitor | undefined;

  constructor(options: SheddingOptions = {}) {
    const o = checks.optionsObject('shedding', options);
    checks.knownKeys('shedding', o, KEYS);
    const d = SHEDDING_DEFAULTS;
    this.limiter = new ConcurrencyLimiter({
      algorithm: algorithmOf(o),
      windowMs: checks.positiveMs('shedding.windowMs', o.windowMs ?? d.windowMs),
      windowMinSamples: checks.positiveInteger(
        'shedding.windowMinSamples',
        o.windowMinSamples ?? d.windowMinSamples,
      ),
      ...(o.clock === undefined ? {} : { clock: o.clock }),
    });
    this.gate = new PressureGate({
      maxEventLoopDelayMs: checks.nonNegativeMs(
        'shedding.maxEventLoopDelayMs',
        o.maxEventLoopDelayMs ?? d.maxEventLoopDelayMs,
      ),
      maxEventLoopUtilization: checks.ratio(
        'shedding.maxEventLoopUtilization',
        o.maxEventLoopUtilization ?? d.maxEventLoopUtilization,
      ),
    });
    this.eventLoopSampleIntervalMs = checks.positiveMs(
      'shedding.eventLoopSampleIntervalMs',
      o.eventLoopSampleIntervalMs ?? d.eventLoopSampleIntervalMs,
    );
    this.retryAfterSeconds = checks.positiveInteger(
      'shedding.retryAfterSeconds',
      o.retryAfterSeconds ?? d.retryAfterSeconds,
    );
  }

  /** Starts sampling the event loop (an unref'd timer). Idempotent. */
  start(): void {
    if (this.#monitor !== undefined) return;
    this.#monitor = startEventLoopMonitor(this.eventLoopSampleIntervalMs, (sample) =>
      this.gate.update(sample),
    );
  }

  stop(): void {
    this.#monitor?.stop();
    this.#monitor = undefined;
  }

  /**
   * Admits a request (returns undefined; release it later) or says why it is shed. The gate is asked
   * first: a request shed for pressure never takes a slot.
   */
  admit(): ShedReason | undefined {
    if (this.gate.shouldShed()) return 'event_loop';
    return this.limiter.tryAcquire() ? undefined : 'concurrency';
  }

  /** Releases an admitted request with its duration; `didDrop` for a timeout or overload failure. */
  release(rttMs: number, didDrop: boolean): void {
    this.limiter.release(rttMs, didDrop);
  }

  /** Releases an admitted request whose client went away (no meaningful duration). */
  abandon(): void {
    this.limiter.abandon();
  }

  status(): SheddingStatus {
    const sample = this.gate.lastSample;
    return {
      algorithm: this.limiter.algorithm.name,
      limit: this.limiter.limit,
      inflight: this.limiter.inflight,
      shedRatio: this.gate.shedRatio,
      eventLoop: { delayMs: sample.delayMs, utilization: sample.utilization, pressured: this.gate.pressured },
    };
  }
}

function algorithmOf(o: SheddingOptions): LimitAlgorithm {
  const d = SHEDDING_DEFAULTS;
  const a = o.algorithm ?? d.algorithm;
  if (typeof a === 'object' && a !== null) {
    if (typeof a.update !== 'function' || typeof a.limit !== 'number') {
      throw new InvalidOptionError(
        'shedding.algorithm',
        a,
        'a LimitAlgorithm or "gradient2", "aimd", "fixed"',
      );
    }
    return a;
  }
  const name = checks.oneOf('shedding.algorithm', a, ['gradient2', 'aimd', 'fixed']);
  const initialLimit = checks.positiveInteger('shedding.initialLimit', o.initialLimit ?? d.initialLimit);
  if (name === 'fixed') return fixed(initialLimit);
  const minLimit = checks.positiveInteger(
    'shedding.minLimit',
    o.minLimit ?? Math.min(d.minLimit, initialLimit),
  );
  const maxLimit = checks.positiveInteger(
    'shedding.maxLimit',
    o.maxLimit ?? Math.max(d.maxLimit, initialLimit),
  );
  if (minLimit > initialLimit) {
    throw new InvalidOptionError(
      'shedding.minLimit',
      minLimit,
      `an integer <= initialLimit (${initialLimit})`,
    );
  }
  if (maxLimit < initialLimit) {
    throw new InvalidOptionError(
      'shedding.maxLimit',
      maxLimit,
      `an integer >= initialLimit (${initialLimit})`,
    );
  }
  const limits = { initialLimit, minLimit, maxLimit };
  return name === 'aimd' ? aimd(limits) : gradient2(limits);
}

/** Body of a shed response (stable: `code` BULWARK_ERR_OVERLOADED). */
export function overloadedBody(retryAfterSeconds: number): string {
  return JSON.stringify({
    statusCode: 503,
    error: 'Service Unavailable',
    code: 'BULWARK_ERR_OVERLOADED',
    message: `The server is overloaded; retry after ${retryAfterSeconds} s.`,
  });
}
