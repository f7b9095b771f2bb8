// Pins the public surface of each entry point: adding or removing an export must show up as a change to
// one of these lists (and in docs/core-api.md).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as core from './index.js';
import * as testing from './testing.js';
import * as internal from './internal.js';

const MAIN = [
  // policies and their defaults
  'circuitBreaker',
  'CIRCUIT_BREAKER_DEFAULTS',
  'retry',
  'RETRY_DEFAULTS',
  'retryBudget',
  'RETRY_BUDGET_DEFAULTS',
  'exponentialBackoff',
  'EXPONENTIAL_BACKOFF_DEFAULTS',
  'constantBackoff',
  'classify',
  'timeout',
  'TIMEOUT_DEFAULTS',
  'bulkhead',
  'BULKHEAD_DEFAULTS',
  'rateLimiter',
  'RATE_LIMITER_DEFAULTS',
  'memoryRateLimitStore',
  'hedge',
  'HEDGE_DEFAULTS',
  'adaptiveThrottle',
  'ADAPTIVE_THROTTLE_DEFAULTS',
  'chaos',
  'CHAOS_DEFAULTS',
  'seededRandom',
  'fallback',
  'degrade',
  'singleFlight',
  'createSnapshotStore',
  'SNAPSHOT_STORE_DEFAULTS',
  'pipeline',
  // deadlines
  'runWithDeadline',
  'runWithoutDeadline',
  'currentDeadline',
  'currentSignal',
  'DEADLINE_HEADER',
  'DEADLINE_HEADER_DEFAULTS',
  'formatDeadlineHeader',
  'parseDeadlineHeader',
  // errors
  'BulwarkError',
  'InvalidOptionError',
  'CircuitOpenError',
  'TimeoutError',
  'DeadlineExceededError',
  'BulkheadRejectedError',
  'RateLimitedError',
  'SnapshotNotFoundError',
  'SnapshotCorruptError',
  'SnapshotWriteError',
  'AllSourcesFailedError',
  'HedgeCancelledError',
  'ThrottledError',
  'ChaosFaultError',
  // events
  'setListenerErrorHandler',
];

const TESTING = ['FakeClock', 'flushMicrotasks', 'nodeSnapshotFs'];

const INTERNAL = [
  'checks',
  'MAX_TIMER_MS',
  'systemClock',
  'EventEmitter',
  'reportListenerError',
  'onAbort',
  'BasePolicy',
  'invoke',
];

it('the main entry exports exactly the policies, their defaults, errors, pipeline and the listener-error hook', () => {
  assert.deepEqual(Object.keys(core).sort(), [...MAIN].sort());
});

it('@bulwark/core/testing exports exactly the test helpers', () => {
  assert.deepEqual(Object.keys(testing).sort(), [...TESTING].sort());
});

it('@bulwark/core/internal exports exactly what sibling packages share', () => {
  assert.deepEqual(Object.keys(internal).sort(), [...INTERNAL].sort());
});

it('no name is exported by two entries', () => {
  const seen = [...MAIN, ...TESTING, ...INTERNAL];
  assert.equal(new Set(seen).size, seen.length);
});

it('package.json maps each entry to its compiled file, and nothing else', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    exports: Record<string, unknown>;
  };
  assert.deepEqual(pkg.exports, {
    '.': { types: './dist/index.d.ts', default: './dist/index.js' },
    './testing': { types: './dist/testing.d.ts', default: './dist/testing.js' },
    './internal': { types: './dist/internal.d.ts', default: './dist/internal.js' },
    './package.json': './package.json',
  });
});

it('every exported default object is frozen', () => {
  for (const name of MAIN.filter((n) => n.endsWith('_DEFAULTS'))) {
    assert.ok(Object.isFrozen((core as Record<string, unknown>)[name]), `${name} is frozen`);
  }
});

it('@bulwark/core has no runtime dependencies', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as Record<
    string,
    unknown
  >;
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.peerDependencies, undefined);
  assert.equal(pkg.optionalDependencies, undefined);
});

it('the entries resolve by package name, and nothing else in the package does', async () => {
  const name = '@bulwark/core';
  const [main, tests, shared] = await Promise.all([
    import(name) as Promise<typeof core>,
    import(`${name}/testing`) as Promise<typeof testing>,
    import(`${name}/internal`) as Promise<typeof internal>,
  ]);
  assert.equal(main.retry, core.retry);
  assert.equal(tests.FakeClock, testing.FakeClock);
  assert.equal(shared.checks.number, internal.checks.number);
  await assert.rejects(import(`${name}/dist/errors.js`), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });
});
