/**
 * The run summary: counts by outcome, latency percentiles, throughput, breaker trips, retries. Memory is
 * constant whatever the number of URLs: latencies go into a log-bucketed histogram (2 % resolution).
 */
import type { FetchAllStats, FetchResult } from '@bulwark/http';

/** Log-bucketed latency histogram: buckets grow by 2 %, from 0.01 ms to ~10⁷ ms. */
export class LatencyHistogram {
  static readonly #MIN_MS = 0.01;
  static readonly #GROWTH = Math.log(1.02);
  readonly #counts = new Uint32Array(1100);
  #total = 0;

  get count(): number {
    return this.#total;
  }

  record(ms: number): void {
    const i =
      ms <= LatencyHistogram.#MIN_MS
        ? 0
        : Math.min(
            this.#counts.length - 1,
            1 + Math.floor(Math.log(ms / LatencyHistogram.#MIN_MS) / LatencyHistogram.#GROWTH),
          );
    this.#counts[i]!++;
    this.#total++;
  }

  /** The latency at quantile `q` (0–1): the upper edge of the bucket holding it (within +2 %). */
  quantile(q: number): number | undefined {
    if (this.#total === 0) return undefined;
    const rank = Math.max(1, Math.ceil(q * this.#total));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return LatencyHistogram.#MIN_MS * Math.exp(i * LatencyHistogram.#GROWTH);
    }
    return undefined;
  }
}

/** The summary as data (the `summary` of `--json`). */
export interface SummaryData {
  readonly urls: number;
  readonly ok: number;
  readonly failed: number;
  /** Failed URLs by `errorCode`. */
  readonly failures: Readonly<Record<string, number>>;
  /** Host → times its circuit breaker opened. */
  readonly breakerTrips: Readonly<Record<string, number>>;
  readonly retries: number;
  readonly retriesDenied: number;
  /** Response body bytes received, over all URLs. */
  readonly bytes: number;
  readonly wallMs: number;
  /** Results per second of wall time. */
  readonly perSecond: number;
  /** Latency percentiles of the URLs that sent at least one request (undefined when none did). */
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
  readonly interrupted: boolean;
}

const round = (n: number, digits = 2): number => Math.round(n * 10 ** digits) / 10 ** digits;

export class Summary {
  readonly #latency = new LatencyHistogram();
  readonly #failures = new Map<string, number>();
  readonly #startedAt: number;
  #urls = 0;
  #ok = 0;
  #bytes = 0;

  constructor(startedAt = performance.now()) {
    this.#startedAt = startedAt;
  }

  get urls(): number {
    return this.#urls;
  }

  get failed(): number {
    return this.#urls - this.#ok;
  }

  add(result: FetchResult): void {
    this.#urls++;
    this.#bytes += result.bytes;
    if (result.ok) this.#ok++;
    else {
      const code = result.errorCode ?? 'UNKNOWN';
      this.#failures.set(code, (this.#failures.get(code) ?? 0) + 1);
    }
    if (result.attempts > 0) this.#latency.record(result.durationMs);
  }

  data(stats: FetchAllStats | undefined, interrupted: boolean, now = performance.now()): SummaryData {
    const wallMs = now - this.#startedAt;
    const p50 = this.#latency.quantile(0.5);
    const p99 = this.#latency.quantile(0.99);
    return {
      urls: this.#urls,
      ok: this.#ok,
      failed: this.#urls - this.#ok,
      failures: Object.fromEntries([...this.#failures].sort((a, b) => b[1] - a[1])),
      breakerTrips: Object.fromEntries(stats?.breakerTrips ?? []),
      retries: stats?.retries ?? 0,
      retriesDenied: stats?.retriesDenied ?? 0,
      bytes: this.#bytes,
      wallMs: round(wallMs),
      perSecond: round(wallMs > 0 ? (this.#urls * 1000) / wallMs : 0, 1),
      p50Ms: p50 === undefined ? undefined : round(p50, 3),
      p99Ms: p99 === undefined ? undefined : round(p99, 3),
      interrupted,
    };
  }
}

const ms = (v: number | undefined): string =>
  v === undefined ? 'n/a' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 2 : 1)} ms`;

/** The human summary for stderr. */
export function formatSummary(s: SummaryData): string {
  const lines: string[] = [];
  lines.push(
    `many-requests: ${s.interrupted ? 'INTERRUPTED after ' : ''}${s.urls} URL${s.urls === 1 ? '' : 's'} in ${ms(s.wallMs)} (${s.perSecond}/s): ${s.ok} ok, ${s.failed} failed`,
  );
  const failures = Object.entries(s.failures);
  if (failures.length > 0)
    lines.push(`  failed by code: ${failures.map(([c, n]) => `${c} ${n}`).join(', ')}`);
  lines.push(`  latency (URLs with a request sent): p50 ${ms(s.p50Ms)}, p99 ${ms(s.p99Ms)}`);
  const trips = Object.entries(s.breakerTrips).sort((a, b) => b[1] - a[1]);
  if (trips.length > 0) {
    const shown = trips.slice(0, 10).map(([h, n]) => `${h} ×${n}`);
    if (trips.length > 10) shown.push(`… ${trips.length - 10} more hosts`);
    lines.push(`  circuit breaker opened: ${shown.join(', ')}`);
  }
  if (s.retries > 0 || s.retriesDenied > 0) {
    lines.push(`  retries: ${s.retries} sent, ${s.retriesDenied} refused by the retry budget`);
  }
  return lines.join('\n') + '\n';
}
