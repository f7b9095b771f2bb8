// The error family: real Errors with literal names and codes, recognised across duplicate installs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { types } from 'node:util';
import { circuitBreaker } from './circuit-breaker.js';
import { classify } from './classify.js';
import {
  AllSourcesFailedError,
  BulkheadRejectedError,
  BulwarkError,
  CircuitOpenError,
  InvalidOptionError,
  RateLimitedError,
  SnapshotCorruptError,
  SnapshotNotFoundError,
  SnapshotWriteError,
  TimeoutError,
} from './errors.js';
import { FakeClock } from './clock.js';
import type * as errors from './errors.js';

type ErrorsModule = typeof errors;

/** A second copy of the compiled errors module, as a duplicate install in node_modules would load it. */
async function secondCopy(): Promise<{ copy: ErrorsModule; dispose(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-errors-copy-'));
  const file = join(dir, 'errors.js');
  copyFileSync(new URL('./errors.js', import.meta.url), file);
  const copy = (await import(pathToFileURL(file).href)) as ErrorsModule;
  return { copy, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

const samples = (): BulwarkError[] => [
  new InvalidOptionError('x.y', 1, 'a string'),
  new CircuitOpenError(5, 'open', 'db'),
  new TimeoutError(10),
  new BulkheadRejectedError('queue-full', 1, 0),
  new RateLimitedError(20, 'k'),
  new AllSourcesFailedError([]),
  new SnapshotNotFoundError('/d', 'n'),
  new SnapshotCorruptError('/d', 'n', []),
  new SnapshotWriteError('/d/f', 'fsync', new Error('EIO')),
];

describe('errors', () => {
  it('are real Errors (engine brand included) with a stack, a literal name and their code', () => {
    for (const e of samples()) {
      assert.ok(e instanceof Error);
      assert.ok(types.isNativeError(e), `${e.name} is a native error`);
      const isError = (Error as { isError?: (v: unknown) => boolean }).isError;
      if (isError !== undefined) assert.ok(isError(e), `Error.isError(${e.name})`);
      assert.equal(Object.prototype.toString.call(e), '[object Error]');
      assert.equal(e.name, e.constructor.name);
      assert.match(e.code, /^BULWARK_ERR_[A-Z_]+$/);
      assert.equal(e.code, (e.constructor as unknown as { code: string }).code);
      assert.match(String(e.stack), new RegExp(`^${e.name}: `));
    }
  });

  it('an open breaker rejects with a real CircuitOpenError, built without a stack trace', async () => {
    const breaker = circuitBreaker({
      clock: new FakeClock(),
      strategy: { type: 'consecutive', threshold: 1 },
    });
    await assert.rejects(breaker.execute(() => Promise.reject(new Error('down'))));
    const e = await breaker.execute(() => 'x').catch((error: unknown) => error);
    assert.ok(e instanceof CircuitOpenError);
    assert.ok(types.isNativeError(e));
    assert.equal(e.stack, `CircuitOpenError: ${e.message}`, 'the header line only');
    // literal types, not string: a wrong comparison would not compile
    const name: 'CircuitOpenError' = e.name;
    const code: 'BULWARK_ERR_CIRCUIT_OPEN' = e.code;
    assert.equal(`${name} ${code}`, 'CircuitOpenError BULWARK_ERR_CIRCUIT_OPEN');
  });

  it('instanceof and .is() recognise the errors of another copy of the package, by class', async () => {
    const { copy, dispose } = await secondCopy();
    try {
      assert.notEqual(copy.CircuitOpenError, CircuitOpenError, 'a distinct copy');
      const foreign = new copy.CircuitOpenError(7, 'isolated', 'db');
      assert.ok(foreign instanceof CircuitOpenError);
      assert.ok(CircuitOpenError.is(foreign));
      assert.ok(foreign instanceof BulwarkError);
      assert.ok(BulwarkError.is(foreign));
      assert.ok(!(foreign instanceof TimeoutError));
      assert.ok(!TimeoutError.is(foreign));
      // and the other way round
      assert.ok(new TimeoutError(1) instanceof copy.TimeoutError);
      assert.ok(copy.BulwarkError.is(new RateLimitedError(1)));
      // the default classifier sees the other copy's open breaker as one
      assert.equal(classify({ ok: false, error: foreign }, undefined as never), 'ignore');
      assert.equal(
        classify({ ok: false, error: new copy.RateLimitedError(5) }, undefined as never),
        'rejected',
      );
    } finally {
      dispose();
    }
  });

  it('a family without a code of its own (a sibling package’s base class) is matched by name', async () => {
    const { copy, dispose } = await secondCopy();
    try {
      const family = (Base: typeof BulwarkError) => {
        abstract class HttpLikeError extends Base {}
        class StatusLikeError extends HttpLikeError {
          static readonly code = 'BULWARK_ERR_TEST_STATUS';
          override readonly name = 'StatusLikeError';
          readonly code = StatusLikeError.code;
        }
        return { HttpLikeError, StatusLikeError };
      };
      const here = family(BulwarkError);
      const there = family(copy.BulwarkError);
      const foreign = new there.StatusLikeError('503');
      assert.ok(foreign instanceof here.HttpLikeError);
      assert.ok(foreign instanceof here.StatusLikeError);
      assert.ok(!(new TimeoutError(1) instanceof here.HttpLikeError));
    } finally {
      dispose();
    }
  });

  it('an unbranded look-alike is not a Bulwark error', () => {
    const lookAlike = Object.assign(new Error('x'), { name: 'TimeoutError', code: 'BULWARK_ERR_TIMEOUT' });
    assert.ok(!(lookAlike instanceof TimeoutError));
    assert.ok(!BulwarkError.is(lookAlike));
    for (const value of [null, undefined, 'TimeoutError', 42, { code: 'BULWARK_ERR_TIMEOUT' }]) {
      assert.ok(!TimeoutError.is(value));
    }
  });
});
