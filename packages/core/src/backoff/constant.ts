/**
 * constantBackoff: the same delay before every retry (optionally with full jitter).
 * Useful for tests, for `delayMs: 0` (retry at once, still yielding to the event loop), and for
 * polling loops where growth is not wanted.
 */
import * as check from '../options.js';
import type { Backoff, BackoffSequence, RandomSource } from './backoff.js';

export interface ConstantBackoffOptions {
  /** Delay before each retry, in ms. @default 0 */
  delayMs?: number;
  /**
   * `full`: each delay is uniform in [0, delayMs) (AWS "full jitter"); `none`: exactly `delayMs`.
   * @default 'none'
   */
  jitter?: 'full' | 'none';
  /** Uniform random numbers in [0, 1). @default Math.random */
  random?: RandomSource;
}

const DEFAULTS = Object.freeze({ delayMs: 0, jitter: 'none' as 'full' | 'none', random: Math.random });
const KEYS = ['delayMs', 'jitter', 'random'] as const;

export class ConstantBackoff implements Backoff, BackoffSequence {
  readonly delayMs: number;
  readonly jitter: 'full' | 'none';
  readonly random: RandomSource;

  constructor(options?: ConstantBackoffOptions) {
    const o = check.optionsObject('constantBackoff', options);
    check.knownKeys('constantBackoff', o, KEYS);
    this.delayMs = check.timerMs('constantBackoff.delayMs', o.delayMs ?? DEFAULTS.delayMs, { min: 0 });
    this.jitter = check.oneOf('constantBackoff.jitter', o.jitter ?? DEFAULTS.jitter, ['full', 'none']);
    this.random = check.fn<RandomSource>('constantBackoff.random', o.random ?? DEFAULTS.random);
  }

  /** Stateless, so every call shares this one object: no allocation per call. */
  start(): BackoffSequence {
    return this;
  }

  next(): number {
    return this.jitter === 'full' ? this.random() * this.delayMs : this.delayMs;
  }
}

/** Creates a {@link ConstantBackoff}. */
export function constantBackoff(options?: ConstantBackoffOptions): ConstantBackoff {
  return new ConstantBackoff(options);
}
