/**
 * The service's Prometheus metrics, in their own prom-client `Registry` (never the global one, so two
 * services in one process, or a test, never collide). Every metric name the kit exports is created here,
 * once, so the list in docs/service.md and the ops rules can be checked against {@link METRIC_NAMES}.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { InvalidOptionError } from '@bulwark/core';
import { checks } from '@bulwark/core/internal';
import { DEFAULT_DURATION_BUCKETS_SECONDS, DurationHistogram } from './duration-histogram.js';

export interface MetricsOptions {
  /** Route serving the exposition text; `''` registers no route (read `registry` yourself). @default '/metrics' */
  path?: string;
  /** Collect prom-client's default `process_*` and `nodejs_*` metrics (event-loop lag, heap, GC). @default true */
  defaultMetrics?: boolean;
  /** Upper bounds of `http_server_request_duration_seconds`, in seconds. @default OpenTelemetry's advised buckets */
  durationBucketsSeconds?: readonly number[];
  /** A registry to use instead of a new one. @default new Registry() */
  registry?: Registry;
}

export const METRICS_DEFAULTS = Object.freeze({
  path: '/metrics',
  defaultMetrics: true,
  durationBucketsSeconds: DEFAULT_DURATION_BUCKETS_SECONDS,
});

const METRICS_KEYS = [...Object.keys(METRICS_DEFAULTS), 'registry'];

/** Every metric name the kit registers (besides prom-client's default `process_*` / `nodejs_*` ones). */
export const METRIC_NAMES = Object.freeze({
  requestDuration: 'http_server_request_duration_seconds',
  errors: 'http_server_errors_total',
  aborted: 'http_server_aborted_requests_total',
  serviceInfo: 'bulwark_service_info',
  ready: 'bulwark_ready',
  inflight: 'bulwark_inflight_requests',
  concurrencyLimit: 'bulwark_concurrency_limit',
  shed: 'bulwark_shed_total',
  shedRatio: 'bulwark_shed_ratio',
  eventLoopDelay: 'bulwark_event_loop_delay_seconds',
  eventLoopUtilization: 'bulwark_event_loop_utilization',
  rateLimitRejections: 'bulwark_ratelimit_rejections_total',
  rateLimitStoreDegraded: 'bulwark_ratelimit_store_degraded',
  rateLimitStoreErrors: 'bulwark_ratelimit_store_errors_total',
  circuitState: 'bulwark_circuit_state',
  circuitTransitions: 'bulwark_circuit_transitions_total',
  calls: 'bulwark_calls_total',
  retries: 'bulwark_retries_total',
  slowCalls: 'bulwark_slow_calls_total',
  rejections: 'bulwark_rejections_total',
  hedges: 'bulwark_hedges_total',
  hedgeWins: 'bulwark_hedge_wins_total',
  chaosInjections: 'bulwark_chaos_injections_total',
  rateLimitWaits: 'bulwark_ratelimit_waits_total',
  rateLimitWaitSeconds: 'bulwark_ratelimit_wait_seconds_total',
  bulkheadActive: 'bulwark_bulkhead_active',
  bulkheadQueued: 'bulwark_bulkhead_queued',
});

/** prom-client default gauges dropped from the exposition (their names end in `_total`). */
export const GAUGES_NAMED_AS_COUNTERS: readonly string[] = Object.freeze([
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
]);

/** What the kit reads at scrape time to fill its gauges (set by the service once its parts exist). */
export interface GaugeSources {
  ready(): boolean;
  inflight(): number;
  concurrencyLimit(): number;
  shedRatio(): number;
  eventLoop(): { delayMs: number; utilization: number };
  rateLimitDegraded(): Array<[name: string, degraded: boolean]>;
  circuits(): Array<{ name: string; state: string; states: readonly string[] }>;
  bulkheads(): Array<{ name: string; active: number; queued: number }>;
}

const NO_SOURCES: GaugeSources = {
  ready: () => true,
  inflight: () => 0,
  concurrencyLimit: () => 0,
  shedRatio: () => 0,
  eventLoop: () => ({ delayMs: 0, utilization: 0 }),
  rateLimitDegraded: () => [],
  circuits: () => [],
  bulkheads: () => [],
};

export class ServiceMetrics {
  readonly registry: Registry;
  readonly path: string;
  readonly requestDuration: DurationHistogram;
  readonly errors: Counter<'method' | 'route' | 'code'>;
  readonly aborted: Counter<'method' | 'route'>;
  readonly shed: Counter<'reason'>;
  readonly rateLimitRejections: Counter<'name'>;
  readonly rateLimitStoreErrors: Counter<'name'>;
  readonly circuitTransitions: Counter<'name' | 'from' | 'to'>;
  readonly calls: Counter<'policy' | 'name' | 'outcome'>;
  readonly retries: Counter<'name'>;
  readonly slowCalls: Counter<'policy' | 'name'>;
  readonly hedges: Counter<'name'>;
  readonly hedgeWins: Counter<'name'>;
  readonly chaosInjections: Counter<'name' | 'kind'>;
  readonly rateLimitWaits: Counter<'name'>;
  readonly rateLimitWaitSeconds: Counter<'name'>;
  readonly rejections: Counter<'policy' | 'name' | 'reason'>;
  /** Where gauges read their values; the service replaces it once its parts exist. */
  sources: GaugeSources = NO_SOURCES;

  constructor(options: MetricsOptions | undefined, info: { service: string; version: string }) {
    const o = checks.optionsObject('metrics', options);
    checks.knownKeys('metrics', o, METRICS_KEYS);
    this.path = checks.string('metrics.path', o.path ?? METRICS_DEFAULTS.path);
    if (this.path !== '' && !this.path.startsWith('/')) {
      throw new InvalidOptionError('metrics.path', this.path, "a path starting with '/', or '' for no route");
    }
    const defaultMetrics = checks.boolean(
      'metrics.defaultMetrics',
      o.defaultMetrics ?? METRICS_DEFAULTS.defaultMetrics,
    );
    const buckets = o.durationBucketsSeconds ?? METRICS_DEFAULTS.durationBucketsSeconds;
    if (!Array.isArray(buckets) || buckets.length === 0) {
      throw new InvalidOptionError('metrics.durationBucketsSeconds', buckets, 'a non-empty array of seconds');
    }
    buckets.forEach((b, i) => checks.number(`metrics.durationBucketsSeconds[${i}]`, b, { above: 0 }));
    if (o.registry !== undefined && !(o.registry instanceof Registry)) {
      throw new InvalidOptionError('metrics.registry', o.registry, 'a prom-client Registry');
    }
    this.registry = o.registry ?? new Registry();
    const registers = [this.registry];
    if (defaultMetrics) {
      collectDefaultMetrics({ register: this.registry });
      // prom-client names three gauges *_total, which Prometheus reserves for counters (`promtool check
      // metrics` fails on them); their per-type twins (`nodejs_active_handles{type}`, …) stay.
      for (const name of GAUGES_NAMED_AS_COUNTERS) this.registry.removeSingleMetric(name);
    }

    this.requestDuration = new DurationHistogram(
      METRIC_NAMES.requestDuration,
      'Duration of HTTP requests handled by this server, in seconds, by route template, method and status code.',
      buckets,
      this.registry,
    );
    this.errors = new Counter({
      name: METRIC_NAMES.errors,
      help: 'Requests whose handling raised an error, by route template, method and error code.',
      labelNames: ['method', 'route', 'code'],
      registers,
    });
    this.aborted = new Counter({
      name: METRIC_NAMES.aborted,
      help: 'Requests that ended before their response was sent: the client disconnected, or a server timeout closed the connection (not in the duration histogram).',
      labelNames: ['method', 'route'],
      registers,
    });
    new Gauge({
      name: METRIC_NAMES.serviceInfo,
      help: 'Always 1; labels name the service and its version.',
      labelNames: ['service', 'version'],
      registers,
    }).set({ service: info.service, version: info.version }, 1);

    const sources = (): GaugeSources => this.sources;
    new Gauge({
      name: METRIC_NAMES.ready,
      help: '1 while the service is ready (readiness not failed, not shutting down), else 0.',
      registers,
      collect() {
        this.set(sources().ready() ? 1 : 0);
      },
    });
    new Gauge({
      name: METRIC_NAMES.inflight,
      help: 'HTTP requests admitted and not yet answered (health and metrics routes excluded).',
      registers,
      collect() {
        this.set(sources().inflight());
      },
    });
    new Gauge({
      name: METRIC_NAMES.concurrencyLimit,
      help: 'The adaptive concurrency limit now in force (0 when shedding is off).',
      registers,
      collect() {
        this.set(sources().concurrencyLimit());
      },
    });
    this.shed = new Counter({
      name: METRIC_NAMES.shed,
      help: 'Requests shed with 503, by reason (concurrency: over the limit; event_loop: loop pressure).',
      labelNames: ['reason'],
      registers,
    });
    new Gauge({
      name: METRIC_NAMES.shedRatio,
      help: 'Fraction of requests the event-loop pressure gate is shedding now, 0…1.',
      registers,
      collect() {
        this.set(sources().shedRatio());
      },
    });
    new Gauge({
      name: METRIC_NAMES.eventLoopDelay,
      help: 'Event-loop delay, mean over the last sampling interval of the shedder, in seconds.',
      registers,
      collect() {
        this.set(sources().eventLoop().delayMs / 1000);
      },
    });
    new Gauge({
      name: METRIC_NAMES.eventLoopUtilization,
      help: 'Event-loop utilisation over the last sampling interval, 0…1.',
      registers,
      collect() {
        this.set(sources().eventLoop().utilization);
      },
    });
    this.rateLimitRejections = new Counter({
      name: METRIC_NAMES.rateLimitRejections,
      help: 'Requests answered 429 by the rate limiter.',
      labelNames: ['name'],
      registers,
    });
    this.rateLimitStoreErrors = new Counter({
      name: METRIC_NAMES.rateLimitStoreErrors,
      help: 'Rate-limit store operations that failed (Redis unreachable, timed out, …); onStoreError decided those requests.',
      labelNames: ['name'],
      registers,
    });
    new Gauge({
      name: METRIC_NAMES.rateLimitStoreDegraded,
      help: '1 while the rate limiter cannot use its shared store and applies onStoreError, else 0.',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        for (const [name, degraded] of sources().rateLimitDegraded()) this.set({ name }, degraded ? 1 : 0);
      },
    });
    new Gauge({
      name: METRIC_NAMES.circuitState,
      help: 'Circuit breaker state: 1 for the current state, 0 for the others.',
      labelNames: ['name', 'state'],
      registers,
      collect() {
        this.reset();
        for (const c of sources().circuits()) {
          for (const state of c.states) this.set({ name: c.name, state }, state === c.state ? 1 : 0);
        }
      },
    });
    this.circuitTransitions = new Counter({
      name: METRIC_NAMES.circuitTransitions,
      help: 'Circuit breaker state changes.',
      labelNames: ['name', 'from', 'to'],
      registers,
    });
    this.calls = new Counter({
      name: METRIC_NAMES.calls,
      help: 'Calls through a resilience policy, by outcome (success, failure, rejected, timeout, give_up, fallback, ignored).',
      labelNames: ['policy', 'name', 'outcome'],
      registers,
    });
    this.retries = new Counter({
      name: METRIC_NAMES.retries,
      help: 'Retries scheduled (attempts after the first).',
      labelNames: ['name'],
      registers,
    });
    this.slowCalls = new Counter({
      name: METRIC_NAMES.slowCalls,
      help: 'Calls a circuit breaker judged slow (at or over its slowCallDurationMs).',
      labelNames: ['policy', 'name'],
      registers,
    });
    this.hedges = new Counter({
      name: METRIC_NAMES.hedges,
      help: 'Hedged attempts started (each one an extra request to the dependency).',
      labelNames: ['name'],
      registers,
    });
    this.hedgeWins = new Counter({
      name: METRIC_NAMES.hedgeWins,
      help: 'Hedged calls answered first by a hedge rather than the first attempt.',
      labelNames: ['name'],
      registers,
    });
    this.chaosInjections = new Counter({
      name: METRIC_NAMES.chaosInjections,
      help: 'Faults, latency and outcomes injected by a chaos policy, by kind.',
      labelNames: ['name', 'kind'],
      registers,
    });
    this.rateLimitWaits = new Counter({
      name: METRIC_NAMES.rateLimitWaits,
      help: 'Calls a waiting rate limiter (maxWaitMs) held until their token came.',
      labelNames: ['name'],
      registers,
    });
    this.rateLimitWaitSeconds = new Counter({
      name: METRIC_NAMES.rateLimitWaitSeconds,
      help: 'Time calls waited in a rate limiter for their token, in seconds.',
      labelNames: ['name'],
      registers,
    });
    this.rejections = new Counter({
      name: METRIC_NAMES.rejections,
      help: 'Calls a policy refused without running them, by reason.',
      labelNames: ['policy', 'name', 'reason'],
      registers,
    });
    new Gauge({
      name: METRIC_NAMES.bulkheadActive,
      help: 'Operations running inside a bulkhead.',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        for (const b of sources().bulkheads()) this.set({ name: b.name }, b.active);
      },
    });
    new Gauge({
      name: METRIC_NAMES.bulkheadQueued,
      help: 'Calls waiting for a bulkhead slot.',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        for (const b of sources().bulkheads()) this.set({ name: b.name }, b.queued);
      },
    });
  }

  /** The exposition text and its content type. */
  async expose(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/**
 * A label value safe to keep: short identifier-like strings pass, anything else becomes `other`
 * (an error code or a reason must never turn a user's input into a new time series).
 */
export function safeLabel(value: unknown, fallback = 'other'): string {
  return typeof value === 'string' && SAFE_LABEL.test(value) ? value : fallback;
}

const SAFE_LABEL = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;
