/**
 * Histograms built for the hot path. prom-client's `Histogram.observe` validates and hashes a labels
 * object and allocates a closure on every call (docs/benchmarks.md, "Figures behind design choices",
 * compares the two); here each label combination is a
 * {@link HistogramCell} found once and kept by its caller, so an observation is a bucket search and three
 * additions — no allocation, no string building. The metric registers in a prom-client `Registry` like
 * any other (it implements the `get()` that `registry.metrics()` reads), so exposition, escaping and
 * content types stay prom-client's.
 *
 * `http_server_request_duration_seconds` is one ({@link DurationHistogram}); {@link FastHistogram} is
 * the same for any names, labels and buckets (exported, for an application's own per-request metrics).
 */
import { InvalidOptionError } from '@bulwark/core';
import type { Registry } from 'prom-client';

/** OpenTelemetry's advised buckets for `http.server.request.duration`, in seconds. */
export const DEFAULT_DURATION_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
]);

/** The observations of one label combination. */
export class HistogramCell {
  readonly labels: Readonly<Record<string, string>>;
  /** Non-cumulative counts per bucket; the last slot is (+Inf). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: readonly number[];

  constructor(labels: Record<string, string>, bounds: readonly number[]) {
    this.labels = Object.freeze(labels);
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

export interface FastHistogramOptions {
  /** Metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`). */
  name: string;
  help: string;
  /** Label names, in the order {@link FastHistogram.cell} takes their values. @default [] */
  labelNames?: readonly string[];
  /** Upper bounds, in the unit observed (sorted for you; +Inf is implicit). */
  buckets: readonly number[];
  /** Registries to register in (prom-client's `registers`). @default [] */
  registers?: readonly Registry[];
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * A Prometheus histogram for per-request paths: resolve a cell per label combination once
 * (`const ok = h.cell('inline')`), then `ok.observe(x)` costs a bucket search and three additions.
 * Exposed exactly as a prom-client histogram; a labelled series appears once it has an observation.
 */
export class FastHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: readonly string[];
  readonly buckets: readonly number[];
  readonly #cells = new Map<string, HistogramCell>();
  /** The one cell of a histogram without labels. */
  readonly #single: HistogramCell | undefined;

  constructor(options: FastHistogramOptions) {
    const { name, help, labelNames = [], buckets, registers = [] } = options;
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new InvalidOptionError('histogram.name', name, 'a Prometheus metric name');
    }
    for (const label of labelNames) {
      if (typeof label !== 'string' || !LABEL.test(label) || label === 'le') {
        throw new InvalidOptionError(
          'histogram.labelNames',
          labelNames,
          'Prometheus label names other than le',
        );
      }
    }
    if (!Array.isArray(buckets) || buckets.length === 0 || !buckets.every((b) => Number.isFinite(b))) {
      throw new InvalidOptionError('histogram.buckets', buckets, 'a non-empty array of finite numbers');
    }
    this.name = name;
    this.help = help;
    this.labelNames = Object.freeze([...labelNames]);
    this.buckets = Object.freeze([...buckets].sort((a, b) => a - b));
    if (this.labelNames.length === 0) this.#single = this.cell();
    for (const registry of registers) registry.registerMetric(this as never);
  }

  /** The cell for these label values, in `labelNames` order (created on first use; keep it). */
  cell(...values: ReadonlyArray<string | number>): HistogramCell {
    const key = values.join('\u0000');
    let cell = this.#cells.get(key);
    if (cell === undefined) {
      if (values.length !== this.labelNames.length) {
        throw new InvalidOptionError(
          `${this.name} label values`,
          values,
          `${this.labelNames.length} values (${this.labelNames.join(', ')})`,
        );
      }
      const labels: Record<string, string> = {};
      for (let i = 0; i < values.length; i++) labels[this.labelNames[i]!] = String(values[i]);
      cell = new HistogramCell(labels, this.buckets);
      this.#cells.set(key, cell);
    }
    return cell;
  }

  /** Observes a histogram without labels. */
  observe(value: number): void {
    (this.#single ?? this.cell()).observe(value);
  }

  /** What prom-client's registry formats (same shape as its own histograms). */
  get(): { name: string; help: string; type: string; aggregator: string; values: MetricValue[] } {
    const values: MetricValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const cell of this.#cells.values()) {
      if (cell.count === 0 && cell !== this.#single) continue;
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += cell.counts[i]!;
        values.push({
          labels: { le: this.buckets[i]!, ...cell.labels },
          value: cumulative,
          metricName: bucketName,
        });
      }
      values.push({ labels: { le: '+Inf', ...cell.labels }, value: cell.count, metricName: bucketName });
      values.push({ labels: { ...cell.labels }, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...cell.labels }, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Zeroes every cell (keeps the cells, which callers hold on to). */
  reset(): void {
    for (const cell of this.#cells.values()) {
      cell.counts.fill(0);
      cell.sum = 0;
      cell.count = 0;
    }
  }
}

/** `http_server_request_duration_seconds`: labels `method`, `route`, `status_code`. */
export class DurationHistogram extends FastHistogram {
  constructor(name: string, help: string, buckets: readonly number[], registry: Registry) {
    super({ name, help, labelNames: ['method', 'route', 'status_code'], buckets, registers: [registry] });
  }
}
