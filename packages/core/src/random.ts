/**
 * A seedable source of uniform random numbers, for the policies that roll dice (`adaptiveThrottle`, the
 * chaos policies, the backoff jitter): the same seed gives the same sequence, so a test, a benchmark or a
 * game day can be replayed exactly. Mulberry32 (Tommy Ettinger's 32-bit generator): one integer of state,
 * a few multiplications per number, and good enough statistics for sampling decisions; not for secrets.
 */
import type { RandomSource } from './backoff/backoff.js';
import { InvalidOptionError } from './errors.js';

/** Uniform random numbers in [0, 1) from `seed` (an integer; its low 32 bits are used). */
export function seededRandom(seed: number): RandomSource {
  if (typeof seed !== 'number' || !Number.isInteger(seed)) {
    throw new InvalidOptionError('seededRandom.seed', seed, 'an integer');
  }
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
