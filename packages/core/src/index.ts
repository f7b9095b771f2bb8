// The public surface of @bulwark/core, written out by hand: nothing is exported by accident.
// index.test.ts pins this list so an API change is always a visible diff.

export { systemClock, FakeClock, flushMicrotasks } from './clock.js';
export type { Clock, ClockTimer } from './clock.js';

export { EventEmitter, setListenerErrorHandler } from './events.js';
export type { Disposable, Listener, Subscribe } from './events.js';

export {
  BulwarkError,
  InvalidOptionError,
  CircuitOpenError,
  TimeoutError,
  BulkheadRejectedError,
  RateLimitedError,
  AllSourcesFailedError,
  isBulwarkError,
} from './errors.js';
export type { CircuitRejectReason } from './errors.js';

export { Context } from './context.js';
export type { CallContext, ExecuteOptions, Operation } from './context.js';

export { BasePolicy, pipeline, invoke } from './policy.js';
export type { Policy, Outcome } from './policy.js';

export { timeout, TimeoutPolicy } from './timeout.js';
export type { TimeoutOptions, TimeoutStrategy, TimeoutEvent } from './timeout.js';

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

// Option validators, for packages built on core that want the same errors.
export * as checks from './options.js';
