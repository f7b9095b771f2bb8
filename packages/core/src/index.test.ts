// Pins the public surface: adding or removing an export must show up as a change to this list.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as core from './index.js';

const EXPECTED = [
  'AllSourcesFailedError',
  'BasePolicy',
  'BulkheadPolicy',
  'BulkheadRejectedError',
  'BulwarkError',
  'CIRCUIT_BREAKER_DEFAULTS',
  'CircuitBreakerPolicy',
  'CircuitOpenError',
  'ConstantBackoff',
  'Context',
  'Degrader',
  'EXPONENTIAL_BACKOFF_DEFAULTS',
  'EventEmitter',
  'ExponentialBackoff',
  'FakeClock',
  'FallbackPolicy',
  'InvalidOptionError',
  'MemoryRateLimitStore',
  'RETRY_DEFAULTS',
  'RateLimitedError',
  'RateLimiterPolicy',
  'RetryBudget',
  'RetryPolicy',
  'SNAPSHOT_STORE_DEFAULTS',
  'SingleFlight',
  'SnapshotCorruptError',
  'SnapshotNotFoundError',
  'SnapshotWriteError',
  'TierSkip',
  'TimeoutError',
  'TimeoutPolicy',
  'bulkhead',
  'checks',
  'circuitBreaker',
  'constantBackoff',
  'createSnapshotStore',
  'defaultIsFailure',
  'defaultShouldRetry',
  'degrade',
  'exponentialBackoff',
  'fallback',
  'flushMicrotasks',
  'invoke',
  'isBulwarkError',
  'memoryRateLimitStore',
  'nodeSnapshotFs',
  'onAbort',
  'pipeline',
  'rateLimiter',
  'retry',
  'retryBudget',
  'setListenerErrorHandler',
  'singleFlight',
  'snapshotFileName',
  'systemClock',
  'timeout',
];

it('exports exactly the documented runtime names', () => {
  assert.deepEqual(Object.keys(core).sort(), [...EXPECTED].sort());
});

it('every exported default object is frozen', () => {
  for (const name of [
    'CIRCUIT_BREAKER_DEFAULTS',
    'RETRY_DEFAULTS',
    'EXPONENTIAL_BACKOFF_DEFAULTS',
    'SNAPSHOT_STORE_DEFAULTS',
  ]) {
    assert.ok(Object.isFrozen((core as Record<string, unknown>)[name]), `${name} is frozen`);
  }
});

it('@bulwark/core has no runtime dependencies', async () => {
  const { readFileSync } = await import('node:fs');
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as Record<
    string,
    unknown
  >;
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.peerDependencies, undefined);
  assert.equal(pkg.optionalDependencies, undefined);
});
