// The public surface of @bulwark/service, written out by hand: nothing is exported by accident.
// index.test.ts pins this list so an API change is always a visible diff.
//
// What an app needs, nothing the kit uses internally (issue 13). Of the `*_DEFAULTS`, only those of the
// option objects an app builds or derives values from are exported: SERVICE_DEFAULTS (createService),
// HEALTH_DEFAULTS (probe timings are sized from checkTimeoutMs), RATE_LIMIT_DEFAULTS, SHEDDING_DEFAULTS
// and SHUTDOWN_DEFAULTS (an app's own config maps its settings onto these and takes their defaults, as
// gcd-service does). The others are internal; their values are in docs/service.md's option tables.

export { createService, bulwarkService } from './service.js';
export type { BulwarkKit, HealthReport } from './service.js';

export { serverOptions } from './server-options.js';
export { ClientClosedError } from './deadline.js';
export { SERVICE_DEFAULTS } from './options.js';
export type { ServiceOptions } from './options.js';

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

export { ServiceMetrics, METRIC_NAMES } from './metrics.js';
export type { MetricsOptions } from './metrics.js';
export { DEFAULT_DURATION_BUCKETS_SECONDS, FastHistogram } from './duration-histogram.js';
export type { FastHistogramOptions } from './duration-histogram.js';
export type { InstrumentOptions, InstrumentablePolicy } from './instrument.js';

export { createLogger, REDACT_PATHS, isValidRequestId } from './logging.js';
export {
  DEFAULT_API_SECURITY_HEADERS,
  DEFAULT_CONTENT_SECURITY_POLICY,
  DEFAULT_SECURITY_HEADERS,
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

export { HttpRateLimiter, RATE_LIMIT_DEFAULTS } from './rate-limit/limiter.js';
export type { RateLimitOptions, RateLimitStatus, StoreErrorMode } from './rate-limit/limiter.js';
export { RedisRateLimitStore } from './rate-limit/redis-store.js';
export type { RedisRateLimitStoreOptions, StoreHealthEvent } from './rate-limit/redis-store.js';
export { FleetBreaker } from './fleet-breaker.js';
export type {
  FleetBreakerOptions,
  FleetBreakerTarget,
  FleetErrorEvent,
  FleetMalformedEvent,
  FleetPublishEvent,
  FleetTrip,
  FleetTripEvent,
} from './fleet-breaker.js';

// Load shedding: the options an app passes (`shedding`) and the algorithms it may pass as
// `shedding.algorithm`. The parts the kit builds from them (Shedder, ConcurrencyLimiter, PressureGate) are
// internal: an app reaches the running ones through `app.bulwark.shedder`.
export { SHEDDING_DEFAULTS } from './shedding/shedder.js';
export type { SheddingOptions, SheddingStatus, ShedReason, AlgorithmName } from './shedding/shedder.js';
export { gradient2, aimd, fixed } from './shedding/limit-algorithms.js';
export type { LimitAlgorithm, Gradient2Options, AimdOptions } from './shedding/limit-algorithms.js';

export { UNMATCHED_ROUTE } from './hooks.js';
export type { BulwarkRouteConfig } from './hooks.js';
