/**
 * `http_server_request_duration_seconds`, built for the hot path. prom-client's `Histogram.observe`
 * validates and hashes a labels object on every call; here each (route, method, status) combination is a
 * {@link DurationCell} found once and kept by the route, so an observation is a bucket search and three
 * additions — no allocation, no string building. The metric registers in a prom-client `Registry` like
 * any other (it implements the `get()` that `registry.metrics()` reads), so exposition, escaping and
 * content types stay prom-client's.
 */
import type { Registry } from 'prom-client';

/** OpenTelemetry's advised buckets for `http.server.request.duration`, in seconds. */
export const DEFAULT_DURATION_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
]);

export class DurationCell {
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

  observe(seconds: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

export class DurationHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames = ['method', 'route', 'status_code'] as const;
  readonly buckets: readonly number[];
  #cells = new Map<string, DurationCell>();

  constructor(name: string, help: string, buckets: readonly number[], registry: Registry) {
    this.name = name;
    this.help = help;
    this.buckets = Object.freeze([...buckets].sort((a, b) => a - b));
    registry.registerMetric(this as never);
  }

  /** The cell for one label combination (created on first use; callers cache it). */
  cell(method: string, route: string, statusCode: number): DurationCell {
    const key = `${method}\u0000${route}\u0000${statusCode}`;
    let cell = this.#cells.get(key);
    if (cell === undefined) {
      cell = new DurationCell({ method, route, status_code: String(statusCode) }, this.buckets);
      this.#cells.set(key, cell);
    }
    return cell;
  }

  /** What prom-client's registry formats (same shape as its own histograms). */
  get(): { name: string; help: string; type: string; aggregator: string; values: MetricValue[] } {
    const values: MetricValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const cell of this.#cells.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += cell.counts[i]!;
        values.push({
          labels: { ...cell.labels, le: this.buckets[i]! },
          value: cumulative,
          metricName: bucketName,
        });
      }
      values.push({ labels: { ...cell.labels, le: '+Inf' }, value: cell.count, metricName: bucketName });
      values.push({ labels: { ...cell.labels }, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...cell.labels }, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Zeroes every cell (keeps the cells, which routes hold on to). */
  reset(): void {
    for (const cell of this.#cells.values()) {
      cell.counts.fill(0);
      cell.sum = 0;
      cell.count = 0;
    }
  }
}
