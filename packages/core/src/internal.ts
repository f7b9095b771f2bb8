// `@bulwark/core/internal`: what Bulwark's own packages (@bulwark/http, @bulwark/service) share with core
// so that they validate, emit and compose the way core does. Not part of the public API: no semver
// promise, anything here may change in any release. Applications should not import it.

/** Option validators (each throws InvalidOptionError naming the option and what is allowed). */
export * as checks from './options.js';
export { MAX_TIMER_MS, systemClock } from './clock.js';
export { EventEmitter, reportListenerError } from './events.js';
export { onAbort } from './abort.js';
export { BasePolicy, invoke } from './policy.js';
