// The public surface of @bulwark/core, written out by hand: nothing is exported by accident.
// index.test.ts pins this list (and those of ./testing and ./internal), so an API change is a visible diff.
// Test helpers live in `@bulwark/core/testing`; what sibling packages share but users should not rely on
// lives in `@bulwark/core/internal` (no semver promise). docs/core-api.md describes the three.

// Policies, their options, events and defaults.
export { circuitBreaker, CIRCUIT_BREAKER_DEFAULTS } from './circuit-breaker.js';
export type {
  CircuitBreakerPolicy,
  CircuitBreakerOptions,
  CircuitBreakerMode,
  CircuitBreakerStrategy,
  ConsecutiveStrategy,
  CountStrategy,
  TimeStrategy,
  OpenDurationBackoff,
  CircuitBreakerSnapshot,
  CircuitBreakerMetrics,
  CircuitState,
  CircuitTransitionReason,
  CircuitIgnoreReason,
  CircuitStateChangeEvent,
  CircuitSuccessEvent,
  CircuitFailureEvent,
  CircuitSlowCallEvent,
  CircuitRejectEvent,
  CircuitIgnoredEvent,
  WindowMetrics,
  WindowSnapshot,
  TripReason,
  CircuitTrip,
  CircuitControl,
  CircuitOpenOptions,
} from './circuit-breaker.js';

export { retry, RETRY_DEFAULTS } from './retry.js';
export type {
  RetryPolicy,
  RetryOptions,
  RetryEvent,
  GiveUpEvent,
  GiveUpReason,
  RetrySuccessEvent,
} from './retry.js';
export { retryBudget, RETRY_BUDGET_DEFAULTS } from './retry-budget.js';
export type { RetryBudget, RetryBudgetOptions, RetryBudgetSnapshot } from './retry-budget.js';
export { exponentialBackoff, EXPONENTIAL_BACKOFF_DEFAULTS } from './backoff/exponential.js';
export { constantBackoff } from './backoff/constant.js';
export type { Backoff, BackoffSequence, RandomSource } from './backoff/backoff.js';
export type { ExponentialBackoff, ExponentialBackoffOptions, Jitter } from './backoff/exponential.js';
export type { ConstantBackoff, ConstantBackoffOptions } from './backoff/constant.js';

export { classify } from './classify.js';
export type { Classifier, ClassifyFn, ErrorType, Verdict } from './classify.js';

export { timeout, TIMEOUT_DEFAULTS } from './timeout.js';
export type { TimeoutPolicy, TimeoutOptions, TimeoutStrategy, TimeoutEvent } from './timeout.js';

export { bulkhead, BULKHEAD_DEFAULTS } from './bulkhead.js';
export type { BulkheadPolicy, BulkheadOptions, BulkheadRejectEvent } from './bulkhead.js';

export { rateLimiter, RATE_LIMITER_DEFAULTS } from './rate-limiter.js';
export type {
  RateLimiterPolicy,
  RateLimiterOptions,
  RateLimitRejectEvent,
  RateLimitStoreErrorEvent,
  RateLimitStoreErrorMode,
} from './rate-limiter.js';
export { memoryRateLimitStore } from './rate-limit/memory-store.js';
export type { MemoryRateLimitStore, MemoryRateLimitStoreOptions } from './rate-limit/memory-store.js';
export type { RateLimitStore, RateLimitRule, TakeResult } from './rate-limit/store.js';

export { hedge, HEDGE_DEFAULTS } from './hedge.js';
export type { HedgePolicy, HedgeOptions, HedgeEvent, HedgeSkipReason } from './hedge.js';

export { adaptiveThrottle, ADAPTIVE_THROTTLE_DEFAULTS } from './adaptive-throttle.js';
export type {
  AdaptiveThrottlePolicy,
  AdaptiveThrottleOptions,
  ThrottleRejectEvent,
  ThrottleStats,
} from './adaptive-throttle.js';

export { chaos, CHAOS_DEFAULTS } from './chaos.js';
export type {
  ChaosPolicy,
  ChaosKind,
  ChaosOptions,
  ChaosFaultOptions,
  ChaosLatencyOptions,
  ChaosOutcomeOptions,
  ChaosInjectEvent,
} from './chaos.js';
export { seededRandom } from './random.js';

export { fallback } from './fallback.js';
export type { FallbackPolicy, FallbackOptions, FallbackEvent } from './fallback.js';

export { degrade } from './degrade.js';
export type {
  Degrader,
  Tier,
  TierContext,
  TierReport,
  TierSkip,
  TierStatus,
  TierEvent,
  DegradeOptions,
  DegradeResult,
  DegradeExecuteOptions,
} from './degrade.js';

export { singleFlight } from './single-flight.js';
export type { SingleFlight, FlightResult, FlightEvent } from './single-flight.js';

export { createSnapshotStore, SNAPSHOT_STORE_DEFAULTS } from './snapshot/snapshot-store.js';
export type {
  SnapshotStore,
  SnapshotStoreOptions,
  SavedSnapshot,
  LoadedSnapshot,
  SnapshotInventory,
  SnapshotFileInfo,
  SnapshotCorruptionEvent,
  SnapshotCallOptions,
  SnapshotLoadOptions,
} from './snapshot/snapshot-store.js';
export type { CorruptSnapshot, CorruptReason, SnapshotEncoding } from './snapshot/format.js';
export type { SnapshotFs, SnapshotFileHandle } from './snapshot/fs.js';

// Deadlines: per call, ambient, and across services.
export { runWithDeadline, runWithoutDeadline, currentDeadline, currentSignal } from './deadline.js';
export type { DeadlineScopeOptions } from './deadline.js';
export {
  DEADLINE_HEADER,
  DEADLINE_HEADER_DEFAULTS,
  formatDeadlineHeader,
  parseDeadlineHeader,
} from './deadline-header.js';
export type {
  DeadlineHeaderResult,
  FormatDeadlineHeaderOptions,
  ParseDeadlineHeaderOptions,
} from './deadline-header.js';

// Composition and what every operation sees.
export { pipeline } from './policy.js';
export type { Policy, Outcome } from './policy.js';
export type { CallContext, ExecuteOptions, Operation } from './context.js';

// Errors.
export {
  BulwarkError,
  InvalidOptionError,
  CircuitOpenError,
  TimeoutError,
  DeadlineExceededError,
  BulkheadRejectedError,
  RateLimitedError,
  SnapshotNotFoundError,
  SnapshotCorruptError,
  SnapshotWriteError,
  AllSourcesFailedError,
  HedgeCancelledError,
  ThrottledError,
  ChaosFaultError,
} from './errors.js';
export type { CircuitRejectReason, SnapshotWriteStep } from './errors.js';

// Events and time.
export { setListenerErrorHandler } from './events.js';
export type { Disposable, Listener, Subscribe } from './events.js';
export type { Clock, ClockTimer } from './clock.js';
