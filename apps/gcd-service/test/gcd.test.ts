import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { gcd } from '../src/gcd.js';
import computeGcd from '../src/worker.js';
import { fibonacciPair } from './helpers.js';

/** Reference: binary (Stein) gcd, a different algorithm from the one under test. */
function stein(a: bigint, b: bigint): bigint {
  if (a === 0n) return b;
  if (b === 0n) return a;
  let shift = 0n;
  while (((a | b) & 1n) === 0n) {
    a >>= 1n;
    b >>= 1n;
    shift++;
  }
  while ((a & 1n) === 0n) a >>= 1n;
  do {
    while ((b & 1n) === 0n) b >>= 1n;
    if (a > b) [a, b] = [b, a];
    b -= a;
  } while (b !== 0n);
  return a << shift;
}

const U64_MAX = 2n ** 64n - 1n;

test('known values', () => {
  assert.equal(gcd(12n, 18n), 6n);
  assert.equal(gcd(18n, 12n), 6n);
  assert.equal(gcd(17n, 5n), 1n);
  assert.equal(gcd(7n, 0n), 7n);
  assert.equal(gcd(U64_MAX, U64_MAX), U64_MAX);
  assert.equal(gcd(U64_MAX, 2n ** 32n - 1n), 2n ** 32n - 1n);
  assert.equal(gcd(U64_MAX, U64_MAX - 1n), 1n);
  assert.equal(gcd(2n ** 63n, 2n ** 64n - 2n ** 10n), 2n ** 10n);
  const [f1, f2] = fibonacciPair(500);
  assert.equal(gcd(f1, f2), 1n);
});

test('negative input is a programming error', () => {
  assert.throws(() => gcd(-1n, 2n), RangeError);
});

test('agrees with the binary gcd on every u64 pair (property)', () => {
  fc.assert(
    fc.property(fc.bigInt(1n, U64_MAX), fc.bigInt(1n, U64_MAX), (a, b) => {
      const g = gcd(a, b);
      assert.equal(g, stein(a, b));
      assert.equal(a % g, 0n);
      assert.equal(b % g, 0n);
    }),
    { numRuns: 2000 },
  );
});

test('scales with a common factor, for numbers far beyond u64 (property)', () => {
  fc.assert(
    fc.property(
      fc.bigInt(1n, 10n ** 200n),
      fc.bigInt(1n, 10n ** 200n),
      fc.bigInt(1n, 10n ** 100n),
      (a, b, k) => {
        assert.equal(gcd(a * k, b * k), k * gcd(a, b));
      },
    ),
    { numRuns: 300 },
  );
});

test('the worker task computes on decimal strings', () => {
  assert.equal(computeGcd({ n: U64_MAX.toString(), m: '4294967295' }), '4294967295');
});
