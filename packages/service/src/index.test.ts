// Pins the public surface: adding or removing an export must show up as a change to this list.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as service from './index.js';

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

it('exports exactly the documented surface', () => {
  assert.deepEqual(Object.keys(service).sort(), EXPECTED);
});

it('every *_DEFAULTS export is frozen', () => {
  for (const [name, value] of Object.entries(service)) {
    if (name.endsWith('DEFAULTS')) assert.ok(Object.isFrozen(value), `${name} is frozen`);
  }
});
