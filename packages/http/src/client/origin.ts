/**
 * The client's per-origin policies, made once per origin and shared by every call to it: hedge (opt-in),
 * the adaptive throttle and the circuit breaker, all classifying with the HTTP classification.
 */
import { adaptiveThrottle, circuitBreaker, hedge, type Policy } from '@bulwark/core';
import { HOST_FAILURE_CLASSIFY } from '../classify.js';
import { hedgeOptions, throttleOptions } from '../policy-options.js';
import type { ResolvedOptions } from './options.js';
import { SinkFailure } from './transport.js';

/** The HTTP classification (classify.ts); a sink's own failure (full disk, closed pipe) is the caller's. */
export const BREAKER_CLASSIFY = HOST_FAILURE_CLASSIFY.error(SinkFailure, 'ignore');

export class OriginPolicies {
  /** Per origin: [hedge], [adaptive throttle], [breaker]. */
  readonly #byOrigin = new Map<string, Policy[]>();
  readonly #options: ResolvedOptions;

  constructor(options: ResolvedOptions) {
    this.#options = options;
  }

  /**
   * The per-origin policies of an attempt, outside in: hedge (opt-in: each hedged request goes through
   * the rest), the adaptive throttle (on by default: a request it turns away never reaches the breaker,
   * so it is not the origin's failure, and retry does not try again — the next tier is tried) and the
   * circuit breaker.
   */
  for(url: string): Policy[] {
    const origin = new URL(url).origin;
    let policies = this.#byOrigin.get(origin);
    if (policies !== undefined) return policies;
    const o = this.#options;
    policies = [];
    if (o.hedge !== false) policies.push(hedge(hedgeOptions(o.hedge, origin, o.clock, BREAKER_CLASSIFY)));
    if (o.adaptiveThrottle !== false)
      policies.push(adaptiveThrottle(throttleOptions(o.adaptiveThrottle, origin, o.clock, BREAKER_CLASSIFY)));
    const config = o.circuitBreaker;
    if (config !== false) {
      policies.push(
        circuitBreaker({
          ...config,
          name: origin,
          clock: o.clock,
          // classify.ts: 5xx, 408/425/429, timeouts and network errors count; an answer (404) is the
          // server working; a local failure (the caller's sink) is nobody's
          classify: BREAKER_CLASSIFY,
        }),
      );
    }
    this.#byOrigin.set(origin, policies);
    return policies;
  }
}
