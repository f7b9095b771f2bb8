// The public surface of @bulwark/core, written out by hand: nothing is exported by accident.
// index.test.ts pins this list so an API change is always a visible diff.

export { systemClock, FakeClock, flushMicrotasks } from './clock.js';
export type { Clock, ClockTimer } from './clock.js';

export { EventEmitter, setListenerErrorHandler } from './events.js';
export { onAbort } from './abort.js';
export type { Disposable, Listener, Subscribe } from './events.js';

export {
  BulwarkError,
  InvalidOptionError,
  CircuitOpenError,
  TimeoutError,
  BulkheadRejectedError,
  RateLimitedError,
  SnapshotNotFoundError,
  SnapshotCorruptError,
  SnapshotWriteError,
  AllSourcesFailedError,
  isBulwarkError,
} from './errors.js';
export type { CircuitRejectReason, SnapshotWriteStep } from './errors.js';

export { Context } from './context.js';
export type { CallContext, ExecuteOptions, Operation } from './context.js';

export { BasePolicy, pipeline, invoke } from './policy.js';
export type { Policy, Outcome } from './policy.js';

export { timeout, TimeoutPolicy } from './timeout.js';
export type { TimeoutOptions, TimeoutStrategy, TimeoutEvent } from './timeout.js';

export { bulkhead, BulkheadPolicy } from './bulkhead.js';
export type { BulkheadOptions, BulkheadRejectEvent } from './bulkhead.js';

export { rateLimiter, RateLimiterPolicy } from './rate-limiter.js';
export type {
  RateLimiterOptions,
  RateLimitRejectEvent,
  RateLimitStoreErrorEvent,
  RateLimitStoreErrorMode,
} from './rate-limiter.js';
export { memoryRateLimitStore, MemoryRateLimitStore } from './rate-limit/memory-store.js';
export type { MemoryRateLimitStoreOptions } from './rate-limit/memory-store.js';
export type { RateLimitStore, RateLimitRule, TakeResult } from './rate-limit/store.js';

export { fallback, FallbackPolicy } from './fallback.js';
export type { FallbackOptions, FallbackEvent } from './fallback.js';

export {
  circuitBreaker,
  CircuitBreakerPolicy,
  CIRCUIT_BREAKER_DEFAULTS,
  defaultIsFailure,
} from './circuit-breaker.js';
export type {
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
} from './circuit-breaker.js';

export { retry, RetryPolicy, RETRY_DEFAULTS, defaultShouldRetry } from './retry.js';
export type { RetryOptions, RetryEvent, GiveUpEvent, GiveUpReason, RetrySuccessEvent } from './retry.js';
export { retryBudget, RetryBudget } from './retry-budget.js';
export type { RetryBudgetOptions, RetryBudgetSnapshot } from './retry-budget.js';
export {
  exponentialBackoff,
  ExponentialBackoff,
  EXPONENTIAL_BACKOFF_DEFAULTS,
} from './backoff/exponential.js';
export { constantBackoff, ConstantBackoff } from './backoff/constant.js';
export type { Backoff, BackoffSequence, RandomSource } from './backoff/backoff.js';
export type { ExponentialBackoffOptions, Jitter } from './backoff/exponential.js';
export type { ConstantBackoffOptions } from './backoff/constant.js';

export { degrade, Degrader, TierSkip } from './degrade.js';
export type {
  Tier,
  TierContext,
  TierReport,
  TierStatus,
  TierEvent,
  DegradeOptions,
  DegradeResult,
  DegradeExecuteOptions,
} from './degrade.js';

export { singleFlight, SingleFlight } from './single-flight.js';
export type { FlightResult, FlightEvent } from './single-flight.js';

export { createSnapshotStore, snapshotFileName, SNAPSHOT_STORE_DEFAULTS } from './snapshot/snapshot-store.js';
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
export { nodeSnapshotFs } from './snapshot/fs.js';
export type { SnapshotFs, SnapshotFileHandle } from './snapshot/fs.js';

// Option validators, for packages built on core that want the same errors.
export * as checks from './options.js';
