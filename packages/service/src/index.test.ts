// Pins the public surface: adding or removing an export must show up as a change to this list.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as service from './index.js';

const EXPECTED = [
  'AIMD_DEFAULTS',
  'CONCURRENCY_LIMITER_DEFAULTS',
  'ConcurrencyLimiter',
  'DEFAULT_API_SECURITY_HEADERS',
  'DEFAULT_CONTENT_SECURITY_POLICY',
  'DEFAULT_DURATION_BUCKETS_SECONDS',
  'DEFAULT_SECURITY_HEADERS',
  'FLEET_BREAKER_DEFAULTS',
  'FastHistogram',
  'FleetBreaker',
  'GRADIENT2_DEFAULTS',
  'HEALTH_DEFAULTS',
  'Health',
  'HistogramCell',
  'HttpRateLimiter',
  'METRICS_DEFAULTS',
  'METRIC_NAMES',
  'MissingDependencyError',
  'PRESSURE_DEFAULTS',
  'PressureGate',
  'RATE_LIMIT_DEFAULTS',
  'REDACT_PATHS',
  'REDIS_FEATURE',
  'REDIS_STORE_DEFAULTS',
  'RedisRateLimitStore',
  'SECURITY_HEADERS_DEFAULTS',
  'SERVICE_DEFAULTS',
  'SHEDDING_DEFAULTS',
  'SHUTDOWN_DEFAULTS',
  'ServiceMetrics',
  'Shedder',
  'TAKE_SCRIPT',
  'UNMATCHED_ROUTE',
  'aimd',
  'bulwarkService',
  'createLogger',
  'createService',
  'endSpan',
  'fixed',
  'gradient2',
  'hashKey',
  'injectTraceHeaders',
  'installShutdown',
  'isValidRequestId',
  'requireOptionalPackages',
  'resolveServiceOptions',
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
