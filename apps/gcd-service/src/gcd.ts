/**
 * The arithmetic, on BigInt so every value is exact (u64 and far beyond, up to the digit cap).
 *
 * Euclid's algorithm: on BigInt the `%` is done by V8 in C++, which beats a binary (Stein) gcd
 * written in JS with shifts and subtractions. The worst case (consecutive Fibonacci numbers) grows
 * about with the square of the digits: bench/design-figures.mjs measures it (docs/benchmarks.md).
 */

/** Greatest common divisor of two non-negative integers (`gcd(a, 0) = a`). */
export function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n || b < 0n) throw new RangeError('gcd takes non-negative integers');
  while (b !== 0n) {
    const r = a % b;
    a = b;
    b = r;
  }
  return a;
}
