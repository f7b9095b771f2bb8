/**
 * The service's own metrics (the chapter's "custom business metrics"), registered in the kit's
 * registry so `/metrics` serves them beside `http_server_request_duration_seconds` and the
 * `bulwark_*` policy metrics. Every name is in {@link GCD_METRIC_NAMES} and docs/gcd-service.md.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { FastHistogram } from '@bulwark/service';
import type { Disposable } from '@bulwark/core';
import type { ComputeOutcome, ComputePath, GcdComputer } from './compute.js';
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

/**
 * One labelled series of a counter, counted in a plain number on the request path and handed to
 * prom-client when scraped (a prom-client child `inc()` hashes its labels on every call).
 */
class Count {
  value = 0;
  inc(): void {
    this.value++;
  }
}

/** A prom-client counter whose series are {@link Count}s, read at scrape time. */
function scrapedCounter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  series: ReadonlyArray<readonly [Record<L, string>, Count]>,
): Counter<L> {
  return new Counter<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, count] of series) if (count.value > 0) this.inc(labels, count.value);
    },
  });
}

const OUTCOMES = ['ok', 'timeout', 'busy', 'aborted', 'error'] as const satisfies readonly ComputeOutcome[];
const PATHS = ['inline', 'pool'] as const satisfies readonly ComputePath[];
const VALIDATION_OUTCOMES = ['local', 'remote', 'rejected', 'local-fallback'] as const;

export class GcdMetrics {
  /** `gcd_validations_total`, one series per mode. */
  readonly validations: Readonly<Record<ValidationOutcome, { inc(): void }>>;
  readonly #subscriptions: Disposable[] = [];

  constructor(registry: Registry, computer: GcdComputer | undefined, validator: ValidatorClient | undefined) {
    const registers = [registry];
    const validations = {} as Record<ValidationOutcome, Count>;
    for (const mode of VALIDATION_OUTCOMES) validations[mode] = new Count();
    scrapedCounter(
      registry,
      GCD_METRIC_NAMES.validations,
      'Requests whose numbers passed local validation, by how they were then judged: local (no validator configured), remote (the validator accepted), rejected (the validator refused), local-fallback (the validator could not answer).',
      ['mode'],
      VALIDATION_OUTCOMES.map((mode) => [{ mode }, validations[mode]] as const),
    );
    this.validations = validations;

    if (computer !== undefined) {
      const computed = {} as Record<ComputePath, Record<ComputeOutcome, Count>>;
      const series: Array<readonly [{ path: string; outcome: string }, Count]> = [];
      for (const path of PATHS) {
        computed[path] = {} as Record<ComputeOutcome, Count>;
        for (const outcome of OUTCOMES) {
          const count = new Count();
          computed[path][outcome] = count;
          series.push([{ path, outcome }, count]);
        }
      }
      scrapedCounter(
        registry,
        GCD_METRIC_NAMES.computations,
        'Finished gcd computations by where they ran (inline on the event loop, or pool) and outcome (ok, timeout, busy, aborted, error).',
        ['path', 'outcome'],
        series,
      );
      const duration = new FastHistogram({
        name: GCD_METRIC_NAMES.computeDuration,
        help: 'Time to compute a gcd, in seconds, by path (pool: queue wait and worker hand-off included).',
        labelNames: ['path'],
        buckets: [0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
        registers,
      });
      const digits = new FastHistogram({
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
      // Cells resolved once: this runs for every request.
      const durations = { inline: duration.cell('inline'), pool: duration.cell('pool') };
      this.#subscriptions.push(
        computer.onCompute((e) => {
          computed[e.path][e.outcome].inc();
          if (e.outcome === 'ok') durations[e.path].observe(e.durationMs / 1000);
          if (e.digits > 0) digits.observe(e.digits); // 0: refused before it was parsed
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
