// Pins the public surface of each entry point: adding or removing an export must show up as a change to
// one of these lists (and in docs/service.md).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as service from './index.js';
import * as testing from './testing.js';

const EXPECTED = [
  'ClientClosedError',
  'DEFAULT_API_SECURITY_HEADERS',
  'DEFAULT_CONTENT_SECURITY_POLICY',
  'DEFAULT_DURATION_BUCKETS_SECONDS',
  'DEFAULT_SECURITY_HEADERS',
  'FastHistogram',
  'FleetBreaker',
  'HEALTH_DEFAULTS',
  'Health',
  'HttpRateLimiter',
  'METRIC_NAMES',
  'MissingDependencyError',
  'RATE_LIMIT_DEFAULTS',
  'REDACT_PATHS',
  'REDIS_FEATURE',
  'RedisRateLimitStore',
  'SERVICE_DEFAULTS',
  'SHEDDING_DEFAULTS',
  'SHUTDOWN_DEFAULTS',
  'ServiceMetrics',
  'UNMATCHED_ROUTE',
  'aimd',
  'bulwarkService',
  'createLogger',
  'createService',
  'endSpan',
  'fixed',
  'gradient2',
  'injectTraceHeaders',
  'installShutdown',
  'isValidRequestId',
  'requireOptionalPackages',
  'serverOptions',
  'setupTracing',
  'startSpan',
  'traceAttempt',
  'traceStep',
  'tracingEnabled',
  'tracingFeature',
];

/** `@bulwark/service/testing`: the helpers for tests of a service (docs/service.md, "Testing helpers"). */
const TESTING = [
  'REDIS_URL',
  'SpanCollector',
  'closeRedisForTests',
  'freePort',
  'hidePackages',
  'redisForTests',
  'redisReady',
  'requireRedis',
];

it('exports exactly the documented surface', () => {
  assert.deepEqual(Object.keys(service).sort(), EXPECTED);
});

it('@bulwark/service/testing exports exactly the test helpers, none of them also in the main entry', () => {
  assert.deepEqual(Object.keys(testing).sort(), TESTING);
  assert.deepEqual(
    TESTING.filter((name) => EXPECTED.includes(name)),
    [],
  );
});

it('package.json maps each entry to its compiled file, and nothing else', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    exports: Record<string, unknown>;
  };
  assert.deepEqual(pkg.exports, {
    '.': { types: './dist/index.d.ts', default: './dist/index.js' },
    './testing': { types: './dist/testing.d.ts', default: './dist/testing.js' },
    './package.json': './package.json',
  });
});

it('every *_DEFAULTS export is frozen', () => {
  for (const [name, value] of Object.entries(service)) {
    if (name.endsWith('DEFAULTS')) assert.ok(Object.isFrozen(value), `${name} is frozen`);
  }
});
