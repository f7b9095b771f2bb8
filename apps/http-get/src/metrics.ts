/**
 * `--metrics-file PATH`: what one run did, as a Prometheus text-exposition file for node-exporter's
 * textfile collector (docs/ops/runbook.md#httpgetsnapshotfailures). The names and labels are those
 * ops/prometheus/rules.yml reads. The file is replaced atomically at the end of every run (a temp file in
 * the same directory, then rename), so the collector never reads a torn one.
 */
import { gauge, writeFileAtomic, writeFileAtomicSync } from '@bulwark/cli-support';
import type { DiskCacheEvent, HttpCacheErrorEvent, HttpTier } from '@bulwark/http';

/** The environment variable that sets `--metrics-file` (the option wins). */
export const METRICS_FILE_ENV = 'HTTP_GET_METRICS_FILE';

/** The `operation` label of `bulwark_snapshot_failures_last_run`, in the runbook's order. */
export const SNAPSHOT_OPERATIONS = ['save', 'load', 'quarantine'] as const;
export type SnapshotOperation = (typeof SNAPSHOT_OPERATIONS)[number];

/** The `tier` label of `bulwark_http_get_last_run_tier`: every tier that can serve. */
export const SERVED_TIERS: readonly HttpTier[] = ['fresh-cache', 'primary', 'fallback', 'stale-cache'];

/** What a run did that the metrics file reports; `run()` fills it in, `main` writes it. */
export class RunRecord {
  /** Cache snapshot failures during this run, by operation. */
  readonly snapshotFailures: Record<SnapshotOperation, number> = { save: 0, load: 0, quarantine: 0 };
  /** The tier whose response was served (reported only when the run exits 0). */
  servedTier: HttpTier | undefined;

  /**
   * A `DiskCacheStore` problem: a damaged file (quarantined) is `quarantine`; an entry that could not be
   * read at all (no intact generation, an I/O error, a payload that does not decode) is `load`. Writes of
   * the usage hint and evictions are not snapshots: not counted.
   */
  readonly cacheProblem = (e: DiskCacheEvent): void => {
    if (e.op !== 'read') return;
    this.snapshotFailures[e.file === undefined ? 'load' : 'quarantine']++;
  };

  /** The client's cache error: a store that could not save an entry (`write`) or threw on a read. */
  readonly cacheError = (e: HttpCacheErrorEvent): void => {
    if (e.op === 'write') this.snapshotFailures.save++;
    else if (e.op === 'read') this.snapshotFailures.load++;
  };
}

export interface RunEnd {
  readonly exitCode: number;
  /** When the run ended (ms since the Unix epoch). */
  readonly endedAtMs: number;
  /** From the start of the process to the end of the run. */
  readonly durationMs: number;
}

/** The Prometheus text exposition of a run (every series always present, so none goes missing). */
export function renderMetrics(record: RunRecord, end: RunEnd): string {
  const served = end.exitCode === 0 ? record.servedTier : undefined;
  const lines = [
    ...gauge(
      'bulwark_snapshot_failures_last_run',
      'Snapshot failures during the most recent run, by operation.',
      SNAPSHOT_OPERATIONS.map((op) => [
        `{program="http-get",operation="${op}"}`,
        record.snapshotFailures[op],
      ]),
    ),
    ...gauge(
      'bulwark_http_get_last_run_timestamp_seconds',
      'When the most recent run of http-get ended, in seconds since the Unix epoch.',
      [['', (end.endedAtMs / 1000).toFixed(3)]],
    ),
    ...gauge(
      'bulwark_http_get_last_run_exit_code',
      'The exit code of the most recent run of http-get (0: served; see docs/http-get.md#exit-codes).',
      [['', end.exitCode]],
    ),
    ...gauge(
      'bulwark_http_get_last_run_tier',
      'The tier that served the most recent run of http-get: 1 for it, 0 for the others (all 0 unless it exited 0).',
      SERVED_TIERS.map((tier) => [`{tier="${tier}"}`, tier === served ? 1 : 0]),
    ),
    ...gauge(
      'bulwark_http_get_last_run_duration_seconds',
      'How long the most recent run of http-get took, from the start of the process.',
      [['', (end.durationMs / 1000).toFixed(3)]],
    ),
  ];
  return `${lines.join('\n')}\n`;
}

/** Replaces `path` with the metrics of the run, atomically (temp file + fsync + rename + directory fsync). */
export function writeMetricsFile(path: string, record: RunRecord, end: RunEnd): Promise<void> {
  return writeFileAtomic(path, Buffer.from(renderMetrics(record, end)), 'http-get');
}

/**
 * The same, synchronously, for a hard exit (a second Ctrl-C): still temp file + rename, never torn.
 * Best effort: a failure leaves the previous file in place.
 */
export function writeMetricsFileSync(path: string, record: RunRecord, end: RunEnd): void {
  writeFileAtomicSync(path, renderMetrics(record, end), 'http-get');
}
