// The public surface of @bulwark/service, written out by hand: nothing is exported by accident.
// index.test.ts pins this list so an API change is always a visible diff.

export { createService, bulwarkService } from './service.js';
export type { BulwarkKit, HealthReport } from './service.js';

export { serverOptions } from './server-options.js';
export { SERVICE_DEFAULTS, resolveServiceOptions } from './options.js';
export type { ServiceOptions, ResolvedServiceOptions } from './options.js';

export { installShutdown, SHUTDOWN_DEFAULTS } from './shutdown.js';
export type { ShutdownOptions, ShutdownHandle } from './shutdown.js';

export { Health, HEALTH_DEFAULTS } from './health.js';
export type {
  HealthCheck,
  HealthCheckOptions,
  HealthOptions,
  CheckResult,
  CheckStatus,
  ReadinessReport,
} from './health.js';

export { ServiceMetrics, METRICS_DEFAULTS, METRIC_NAMES } from './metrics.js';
export type { MetricsOptions } from './metrics.js';
export { DEFAULT_DURATION_BUCKETS_SECONDS, FastHistogram, HistogramCell } from './duration-histogram.js';
export type { FastHistogramOptions } from './duration-histogram.js';
export type { InstrumentOptions, InstrumentablePolicy } from './instrument.js';

export { createLogger, REDACT_PATHS, isValidRequestId } from './logging.js';
export {
  DEFAULT_API_SECURITY_HEADERS,
  DEFAULT_CONTENT_SECURITY_POLICY,
  DEFAULT_SECURITY_HEADERS,
  SECURITY_HEADERS_DEFAULTS,
} from './security-headers.js';
export type { SecurityHeadersOptions, SecurityHeadersProfile } from './security-headers.js';

export { setupTracing } from './tracing/setup.js';
export type { Tracing, TracingOptions } from './tracing/setup.js';
export { tracingFeature } from './tracing/setup.js';
export {
  injectTraceHeaders,
  traceAttempt,
  tracingEnabled,
  startSpan,
  endSpan,
  traceStep,
} from './tracing/spans.js';
export type { TraceAttemptOptions } from './tracing/spans.js';
export { MissingDependencyError, REDIS_FEATURE, requireOptionalPackages } from './optional.js';
export type { OptionalFeature } from './optional.js';

export { HttpRateLimiter, RATE_LIMIT_DEFAULTS, hashKey } from './rate-limit.js';
export type { RateLimitOptions, RateLimitStatus, StoreErrorMode } from './rate-limit.js';
export { RedisRateLimitStore, REDIS_STORE_DEFAULTS, TAKE_SCRIPT } from './redis-store.js';
export type { RedisRateLimitStoreOptions, StoreHealthEvent } from './redis-store.js';
export { FleetBreaker, FLEET_BREAKER_DEFAULTS } from './fleet-breaker.js';
export type {
  FleetBreakerOptions,
  FleetBreakerTarget,
  FleetErrorEvent,
  FleetPublishEvent,
  FleetTrip,
  FleetTripEvent,
} from './fleet-breaker.js';

export { Shedder, SHEDDING_DEFAULTS } from './shedder.js';
export type { SheddingOptions, SheddingStatus, ShedReason, AlgorithmName } from './shedder.js';
export { ConcurrencyLimiter, CONCURRENCY_LIMITER_DEFAULTS } from './concurrency-limiter.js';
export type { ConcurrencyLimiterOptions, LimitChangeEvent } from './concurrency-limiter.js';
export { gradient2, aimd, fixed, GRADIENT2_DEFAULTS, AIMD_DEFAULTS } from './limit-algorithms.js';
export type { LimitAlgorithm, Gradient2Options, AimdOptions } from './limit-algorithms.js';
export { PressureGate, PRESSURE_DEFAULTS } from './event-loop.js';
export type { PressureGateOptions, EventLoopSample } from './event-loop.js';

export { UNMATCHED_ROUTE } from './hooks.js';
export type { BulwarkRouteConfig } from './hooks.js';
