/**
 * exponentialBackoff: delays that grow by `multiplier` per retry, capped at `maxDelayMs`, with jitter.
 *
 * Jitter (`jitter` option):
 * - `decorrelated` (default): Polly's "decorrelated jitter V2" (George Polevoy's formula, adopted by
 *   Polly v8 and cockatiel; App-vNext/Polly#530, Polly.Contrib.WaitAndRetry `DecorrelatedJitterBackoffV2`).
 *   With `t = n + random()` for retry `n` (0-based), `f(t) = multiplier^t · tanh(√(4t))`, the delay is
 *   `(f(tₙ) − f(tₙ₋₁)) · initialDelayMs / 1.4`. Retry *times* are spread smoothly and evenly (no spikes):
 *   with multiplier 2, the median time of retry k (since the first failure, waits only) is close to
 *   `initialDelayMs · 2^(k−1)` (the formula's medians: 0.89, 1.97, 4.0, 8.0, 16.1 × initialDelayMs for k = 1…5).
 *   We chose it over the AWS formula `min(cap, random(base, prev × 3))` (Brooker, "Exponential Backoff and
 *   Jitter", 2015) for the reasons Polly gives in recommending V2 over it: a smoother, more even spread of
 *   retry times (Polly#530 plots both), a controlled median first delay, and a broadly exponential trend
 *   tied to the attempt number rather than to the previous random draw. No state but one number.
 * - `full`: uniform in [0, min(maxDelayMs, initialDelayMs · multiplier^n)) (AWS "full jitter").
 * - `none`: exactly min(maxDelayMs, initialDelayMs · multiplier^n).
 */
import { InvalidOptionError } from '../errors.js';
import * as check from '../options.js';
import type { Backoff, BackoffSequence, RandomSource } from './backoff.js';

export type Jitter = 'decorrelated' | 'full' | 'none';

export interface ExponentialBackoffOptions {
  /**
   * Scale of the first delay, in ms: the median first delay (`decorrelated`), its upper bound (`full`)
   * or its exact value (`none`).
   * @default 100
   */
  initialDelayMs?: number;
  /** No delay is longer than this, in ms (at most 2^31 − 1, the longest timer Node honours). @default 30_000 */
  maxDelayMs?: number;
  /** Growth per retry (> 1 with `decorrelated` jitter, ≥ 1 otherwise). @default 2 */
  multiplier?: number;
  /** How delays are randomised. @default 'decorrelated' */
  jitter?: Jitter;
  /** Uniform random numbers in [0, 1); inject one for deterministic tests. @default Math.random */
  random?: RandomSource;
}

/** The defaults of {@link ExponentialBackoffOptions}. */
export const EXPONENTIAL_BACKOFF_DEFAULTS = Object.freeze({
  initialDelayMs: 100,
  maxDelayMs: 30_000,
  multiplier: 2,
  jitter: 'decorrelated' as Jitter,
  random: Math.random as RandomSource,
});

/** The option names {@link ExponentialBackoff} accepts. */
export const EXPONENTIAL_BACKOFF_KEYS = Object.freeze([
  'initialDelayMs',
  'maxDelayMs',
  'multiplier',
  'jitter',
  'random',
] as const);

/** Polly's smoothing factor for the first delay. */
const P_FACTOR = 4;
/** Polly's scaling so that median delays fall near initialDelayMs × 1, 2, 4, … */
const RP_SCALING_FACTOR = 1 / 1.4;

export class ExponentialBackoff implements Backoff {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
  readonly jitter: Jitter;
  readonly random: RandomSource;

  /**
   * @param options see {@link ExponentialBackoffOptions}
   * @param policy the name used in {@link InvalidOptionError} (e.g. `retry` when a policy takes these
   *   options inline); unknown keys are not checked when a policy passes its own options through.
   */
  constructor(options?: ExponentialBackoffOptions, policy = 'exponentialBackoff') {
    const o = check.optionsObject(policy, options);
    if (policy === 'exponentialBackoff') check.knownKeys(policy, o, EXPONENTIAL_BACKOFF_KEYS);
    const d = EXPONENTIAL_BACKOFF_DEFAULTS;
    this.jitter = check.oneOf(`${policy}.jitter`, o.jitter ?? d.jitter, ['decorrelated', 'full', 'none']);
    this.maxDelayMs = check.timerMs(`${policy}.maxDelayMs`, o.maxDelayMs ?? d.maxDelayMs, { min: 0 });
    this.initialDelayMs = check.nonNegativeMs(
      `${policy}.initialDelayMs`,
      o.initialDelayMs ?? d.initialDelayMs,
    );
    if (this.initialDelayMs > this.maxDelayMs) {
      const expected = `at most maxDelayMs (${this.maxDelayMs})`;
      throw new InvalidOptionError(`${policy}.initialDelayMs`, this.initialDelayMs, expected);
    }
    this.multiplier = check.number(
      `${policy}.multiplier`,
      o.multiplier ?? d.multiplier,
      this.jitter === 'decorrelated' ? { above: 1 } : { min: 1 },
    );
    this.random = check.fn<RandomSource>(`${policy}.random`, o.random ?? d.random);
  }

  start(): BackoffSequence {
    return new ExponentialSequence(this);
  }

  /** The un-jittered delay before retry `n` (0-based), capped. */
  delayFor(n: number): number {
    return Math.min(this.maxDelayMs, this.initialDelayMs * this.multiplier ** n);
  }
}

class ExponentialSequence implements BackoffSequence {
  readonly #b: ExponentialBackoff;
  /** Retries so far. */
  #n = 0;
  /** decorrelated: f(tₙ₋₁). */
  #prev = 0;

  constructor(backoff: ExponentialBackoff) {
    this.#b = backoff;
  }

  next(): number {
    const b = this.#b;
    const n = this.#n++;
    if (b.jitter === 'none') return b.delayFor(n);
    if (b.jitter === 'full') return b.random() * b.delayFor(n);
    const t = n + b.random();
    const next = b.multiplier ** t * Math.tanh(Math.sqrt(P_FACTOR * t));
    // Past ~2^1024 the formula overflows; Infinity − Infinity would be NaN (cockatiel#86): cap instead.
    if (!Number.isFinite(next)) {
      this.#prev = next;
      return b.maxDelayMs;
    }
    const delay = (next - this.#prev) * RP_SCALING_FACTOR * b.initialDelayMs;
    this.#prev = next;
    return Math.min(b.maxDelayMs, Math.max(0, delay));
  }
}

/** Creates an {@link ExponentialBackoff} (decorrelated jitter V2 by default). */
export function exponentialBackoff(options?: ExponentialBackoffOptions): ExponentialBackoff {
  return new ExponentialBackoff(options);
}
