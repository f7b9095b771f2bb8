/**
 * The service's own metrics (the chapter's "custom business metrics"), registered in the kit's
 * registry so `/metrics` serves them beside `http_server_request_duration_seconds` and the
 * `bulwark_*` policy metrics. Every name is in {@link GCD_METRIC_NAMES} and docs/gcd-service.md.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Disposable } from '@bulwark/core';
import type { GcdComputer } from './compute.js';
import type { ValidationMode } from './routes.js';
import type { ValidatorClient } from './validator-client.js';

export const GCD_METRIC_NAMES = Object.freeze({
  computations: 'gcd_computations_total',
  computeDuration: 'gcd_compute_duration_seconds',
  poolThreads: 'gcd_pool_threads',
  inputDigits: 'gcd_input_digits',
  validations: 'gcd_validations_total',
  validatorFallbacks: 'gcd_validator_fallbacks_total',
});

/** How a request's numbers were judged: the three modes, or `rejected` by the validator. */
export type ValidationOutcome = ValidationMode | 'rejected';

export class GcdMetrics {
  /** `gcd_validations_total`, one child per mode (resolved once). */
  readonly validations: Readonly<Record<ValidationOutcome, { inc(): void }>>;
  readonly #subscriptions: Disposable[] = [];

  constructor(registry: Registry, computer: GcdComputer | undefined, validator: ValidatorClient | undefined) {
    const registers = [registry];
    const validations = new Counter({
      name: GCD_METRIC_NAMES.validations,
      help: 'Requests whose numbers passed local validation, by how they were then judged: local (no validator configured), remote (the validator accepted), rejected (the validator refused), local-fallback (the validator could not answer).',
      labelNames: ['mode'],
      registers,
    });
    this.validations = {
      local: validations.labels('local'),
      remote: validations.labels('remote'),
      rejected: validations.labels('rejected'),
      'local-fallback': validations.labels('local-fallback'),
    };

    if (computer !== undefined) {
      const computations = new Counter({
        name: GCD_METRIC_NAMES.computations,
        help: 'Finished gcd computations by where they ran (inline on the event loop, or pool) and outcome (ok, timeout, busy, aborted, error).',
        labelNames: ['path', 'outcome'],
        registers,
      });
      const duration = new Histogram({
        name: GCD_METRIC_NAMES.computeDuration,
        help: 'Time to compute a gcd, in seconds, by path (pool: queue wait and worker hand-off included).',
        labelNames: ['path'],
        buckets: [0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
        registers,
      });
      const digits = new Histogram({
        name: GCD_METRIC_NAMES.inputDigits,
        help: 'Digits of the longer input of each computation.',
        buckets: [20, 50, 100, 200, 500, 1000, 5000, 20000],
        registers,
      });
      new Gauge({
        name: GCD_METRIC_NAMES.poolThreads,
        help: 'Worker threads alive in the gcd pool.',
        registers,
        collect() {
          this.set(computer.threads);
        },
      });
      // Children resolved once: `labels()` hashes its arguments on every call (this runs per request).
      const outcomes = ['ok', 'timeout', 'busy', 'aborted', 'error'] as const;
      const counters = new Map<string, { inc(): void }>();
      for (const path of ['inline', 'pool'] as const) {
        for (const outcome of outcomes)
          counters.set(`${path}:${outcome}`, computations.labels(path, outcome));
      }
      const durations = { inline: duration.labels('inline'), pool: duration.labels('pool') };
      this.#subscriptions.push(
        computer.onCompute((e) => {
          counters.get(`${e.path}:${e.outcome}`)!.inc();
          if (e.outcome === 'ok') durations[e.path].observe(e.durationMs / 1000);
          digits.observe(e.digits);
        }),
      );
    }

    if (validator !== undefined) {
      const fallbacks = new Counter({
        name: GCD_METRIC_NAMES.validatorFallbacks,
        help: 'Requests validated locally because the validator could not answer, by reason (CircuitOpenError, TimeoutError, ValidatorUnavailableError, a network error code).',
        labelNames: ['reason'],
        registers,
      });
      this.#subscriptions.push(validator.onFallback((e) => fallbacks.labels(e.reason).inc()));
    }
  }

  dispose(): void {
    for (const s of this.#subscriptions) s.dispose();
  }
}
