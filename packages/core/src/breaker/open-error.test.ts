import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import {
  BulwarkError,
  CircuitOpenError,
  isBulwarkError,
  withoutStack,
  type CircuitRejectReason,
} from '../errors.js';
import { openError } from './open-error.js';

const cases: [number, CircuitRejectReason, string][] = [
  [1234, 'open', 'db'],
  [0, 'half-open-full', 'db'],
  [5000, 'isolated', 'db'],
  [7, 'open', ''],
  [0, 'half-open-full', ''],
  [1, 'isolated', ''],
];

describe('openError (the rejection hot path)', () => {
  for (const [retryAfterMs, reason, name] of cases) {
    it(`matches new CircuitOpenError(${retryAfterMs}, '${reason}', '${name}')`, () => {
      const fast = openError(retryAfterMs, reason, name);
      const real = withoutStack(() => new CircuitOpenError(retryAfterMs, reason, name));
      assert.ok(fast instanceof CircuitOpenError);
      assert.ok(fast instanceof BulwarkError);
      assert.ok(fast instanceof Error);
      assert.ok(isBulwarkError(fast, 'BULWARK_ERR_CIRCUIT_OPEN'));
      assert.equal(fast.constructor, CircuitOpenError);
      for (const key of ['name', 'code', 'message', 'retryAfterMs', 'reason', 'breakerName'] as const) {
        assert.equal(fast[key], real[key], key);
      }
      assert.equal(fast.stack, real.stack, 'the header line a stackless error has');
      assert.equal(String(fast), String(real));
      assert.equal(inspect(fast), inspect(real));
      assert.deepEqual(
        Object.keys(fast)
          .filter((k) => k !== 'message' && k !== 'stack')
          .sort(),
        Object.keys(real).sort(),
      );
    });
  }
});
