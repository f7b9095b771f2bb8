/**
 * `--metrics-file PATH`: what one run did, as a Prometheus text-exposition file for node-exporter's
 * textfile collector (docs/ops/runbook.md#manyrequestsbatchfailing). The names are those
 * ops/prometheus/rules.yml reads. The file is replaced atomically at the end of every run that got past
 * its command line (a temp file in the same directory, then rename), so the collector never reads a torn
 * one. Every series is always written (a code with no URL is 0), so none goes missing between runs.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { gauge, writeFileAtomic, writeFileAtomicSync } from '@bulwark/cli-support';
import { FETCH_ERROR_CODES } from '@bulwark/http';
import type { SummaryData } from './summary.js';

/** The environment variable that sets `--metrics-file` (the option wins). */
export const METRICS_FILE_ENV = 'MANY_REQUESTS_METRICS_FILE';

/** The `outcome` label of `bulwark_many_requests_last_run_urls`: `ok`, then every error code. */
export const OUTCOMES: readonly string[] = Object.freeze(['ok', ...FETCH_ERROR_CODES]);

export interface RunEnd {
  readonly exitCode: number;
  /** When the run ended (ms since the Unix epoch). */
  readonly endedAtMs: number;
  /** From the start of the process to the end of the run. */
  readonly durationMs: number;
  /** The run's summary (absent when it ended before the first URL: all counts 0). */
  readonly summary: SummaryData | undefined;
  /** Body bytes received over all URLs. */
  readonly bytes: number;
}

const CONSECUTIVE = 'bulwark_many_requests_last_run_consecutive_failures';

/**
 * The runs in a row that failed, counting this one: the previous file's count plus one when this run
 * failed (exit code not 0), else 0. A missing or unreadable previous file counts as 0.
 */
export function consecutiveFailures(path: string, exitCode: number): number {
  if (exitCode === 0) return 0;
  let previous = 0;
  try {
    const m = new RegExp(`^${CONSECUTIVE} (\\d+)$`, 'm').exec(readFileSync(path, 'utf8'));
    if (m !== null && Number.isSafeInteger(Number(m[1]))) previous = Number(m[1]);
  } catch {
    // the first run, or a file we cannot read: start counting here
  }
  return previous + 1;
}

/** The Prometheus text exposition of a run; `failures` is {@link consecutiveFailures}. */
export function renderMetrics(end: RunEnd, failures: number): string {
  const s = end.summary;
  const count = (outcome: string): number =>
    s === undefined ? 0 : outcome === 'ok' ? s.ok : (s.failures[outcome] ?? 0);
  const trips = s === undefined ? 0 : Object.values(s.breakerTrips).reduce((a, b) => a + b, 0);
  const lines = [
    ...gauge(
      'bulwark_many_requests_last_run_urls',
      'URLs of the most recent run of many-requests, by outcome (ok, or the error code of a failed URL).',
      OUTCOMES.map((o) => [`{outcome="${o}"}`, count(o)]),
    ),
    ...gauge(
      'bulwark_many_requests_last_run_retries',
      'Retries of the most recent run of many-requests: sent, and refused by the retry budget.',
      [
        ['{result="sent"}', s?.retries ?? 0],
        ['{result="denied"}', s?.retriesDenied ?? 0],
      ],
    ),
    ...gauge(
      'bulwark_many_requests_last_run_breaker_trips',
      'Times a host circuit breaker opened during the most recent run of many-requests.',
      [['', trips]],
    ),
    ...gauge(
      'bulwark_many_requests_last_run_bytes',
      'Response body bytes received during the most recent run of many-requests.',
      [['', end.bytes]],
    ),
    ...gauge(
      'bulwark_many_requests_last_run_duration_seconds',
      'How long the most recent run of many-requests took, from the start of the process.',
      [['', (end.durationMs / 1000).toFixed(3)]],
    ),
    ...gauge(
      'bulwark_many_requests_last_run_exit_code',
      'The exit code of the most recent run of many-requests (0: every URL ok; see docs/many-requests.md#exit-codes).',
      [['', end.exitCode]],
    ),
    ...gauge(
      CONSECUTIVE,
      'Runs of many-requests in a row, the most recent included, that ended with a non-zero exit code (0 after a run that exited 0).',
      [['', failures]],
    ),
    ...gauge(
      'bulwark_many_requests_last_run_timestamp_seconds',
      'When the most recent run of many-requests ended, in seconds since the Unix epoch.',
      [['', (end.endedAtMs / 1000).toFixed(3)]],
    ),
  ];
  return `${lines.join('\n')}\n`;
}

/** Replaces `path` with the metrics of the run, atomically (temp file + fsync + rename + directory fsync). */
export function writeMetricsFile(path: string, end: RunEnd): Promise<void> {
  const text = renderMetrics(end, consecutiveFailures(path, end.exitCode));
  return writeFileAtomic(path, Buffer.from(text), 'many-requests');
}

/**
 * The same, synchronously, for a hard exit (a second Ctrl-C): still temp file + rename, never torn.
 * Best effort: a failure leaves the previous file in place.
 */
export function writeMetricsFileSync(path: string, end: RunEnd): void {
  const text = renderMetrics(end, consecutiveFailures(resolve(path), end.exitCode));
  writeFileAtomicSync(path, text, 'many-requests');
}
