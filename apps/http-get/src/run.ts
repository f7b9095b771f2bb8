/**
 * One run of http-get, given a parsed config and the process's streams: build the client, walk the
 * ladder, write the body (stdout or an atomic file), report on stderr / as JSON, return the exit code.
 * No globals: a test can call it with its own streams and signal.
 */
import { createHash } from 'node:crypto';
import { createHttpClient, DiskCacheStore, type HttpResponse } from '@bulwark/http';
import type { TierReport } from '@bulwark/core';
import { EXIT, VERSION, type CliConfig } from './config.js';
import { classifyFailure, describeTier, type Failure } from './outcome.js';
import type { RunRecord } from './metrics.js';
import { writeAll, writeFileAtomic } from './output.js';
import type { DownloadProgress as Progress } from './progress.js';

export interface Io {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean; hasColors?: () => boolean };
  /** Aborted on SIGINT / SIGTERM with an {@link Interrupted} reason. */
  readonly signal: AbortSignal;
  /** Filled in with what `--metrics-file` reports (cache snapshot failures, the tier that served). */
  readonly record?: RunRecord;
}

export const JSON_SCHEMA_VERSION = 1;

interface Reporter {
  note(text: string): void;
  warn(text: string): void;
  error(text: string): void;
  verbose(text: string): void;
}

function reporter(config: CliConfig, io: Io): Reporter {
  const color = config.color !== false && io.stderr.isTTY === true && (io.stderr.hasColors?.() ?? false);
  const paint = (code: number, s: string): string => (color ? `\x1b[${code}m${s}\x1b[39m` : s);
  const line = (s: string): void => {
    io.stderr.write(`${s}\n`);
  };
  return {
    note: (s) => (config.quiet ? undefined : line(`http-get: ${s}`)),
    warn: (s) => (config.quiet ? undefined : line(`http-get: ${paint(33, 'warning:')} ${s}`)),
    error: (s) => line(`http-get: ${paint(31, 'error:')} ${s}`),
    verbose: (s) => (config.verbose ? line(`http-get: ${paint(2, s)}`) : undefined),
  };
}

function seconds(ms: number | undefined): string {
  return ms === undefined ? '?' : `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

function tierJson(t: TierReport): Record<string, unknown> {
  const code = (t.error as { code?: unknown } | undefined)?.code;
  return {
    tier: t.tier,
    status: t.status,
    reason: t.reason,
    elapsed_ms: Math.round(t.elapsedMs * 10) / 10,
    error_code: typeof code === 'string' ? code : null,
  };
}

export async function run(config: CliConfig, io: Io): Promise<number> {
  const out = reporter(config, io);
  const started = performance.now();
  const store = config.cacheDir === undefined ? undefined : new DiskCacheStore({ dir: config.cacheDir });
  const client = createHttpClient({
    totalTimeoutMs: config.timeoutMs,
    attemptTimeoutMs: Number.isFinite(config.attemptTimeoutMs) ? config.attemptTimeoutMs : undefined,
    connectTimeoutMs: config.connectTimeoutMs,
    maxAttempts: config.retries + 1,
    maxBodyBytes: config.maxBodyBytes,
    maxRedirects: config.maxRedirects,
    cache: store ?? false,
    maxStaleMs: config.maxStaleMs,
    headers: { 'user-agent': `http-get/${VERSION} (bulwark)` },
  });
  let attempts = 0;
  client.onAttempt(() => attempts++);
  if (config.verbose) {
    client.onTier((e) => {
      if (e.status === 'start') out.verbose(`[${e.tier}] trying`);
      else
        out.verbose(
          `[${e.tier}] ${e.status}${e.reason ? `: ${e.reason}` : ''} (${Math.round(e.elapsedMs)} ms)`,
        );
    });
    client.onAttempt((e) =>
      out.verbose(
        `[${e.tier}] attempt ${e.attempt} GET ${e.url} -> ${e.status ?? e.error?.message ?? '?'} (${Math.round(e.elapsedMs)} ms)`,
      ),
    );
  }
  client.onCacheError((e) =>
    out.warn(`cache ${e.op} failed for ${e.key}: ${(e.error as Error)?.message ?? e.error}`),
  );
  store?.onProblem((p) => out.verbose(`[cache] ${p.op} ${p.kind}: ${p.detail}`));
  if (io.record !== undefined) {
    store?.onProblem(io.record.cacheProblem);
    client.onCacheError(io.record.cacheError);
  }
  // cli-progress is loaded only when a bar can be shown
  let progress: Progress | undefined;
  // not with -v either: its lines would tear through the bar
  if (config.progress && !config.json && !config.quiet && !config.verbose && io.stderr.isTTY === true) {
    const { DownloadProgress } = await import('./progress.js');
    progress = new DownloadProgress(io.stderr);
  }

  let response: HttpResponse | undefined;
  let failure: Failure | undefined;
  try {
    response = await client.get(config.url, {
      fallbackUrls: config.fallbacks,
      signal: io.signal,
      onProgress: progress?.update,
    });
  } catch (error) {
    failure = classifyFailure(io.signal.aborted ? io.signal.reason : error, config.url);
  } finally {
    progress?.stop();
  }

  let code: number = failure?.code ?? EXIT.OK;
  if (response !== undefined && response.tier === 'stale-cache' && config.failOnStale) {
    failure = {
      code: EXIT.STALE_REFUSED,
      errorCode: 'STALE_REFUSED',
      message: `only a stale copy was available (${seconds(response.stalenessMs)} past freshness) and --fail-on-stale was given`,
      details: response.tiers.map(describeTier),
      status: response.status,
      tiers: response.tiers,
    };
    code = failure.code;
  }

  // the body: only when served (and not refused); written whole, never torn
  if (response !== undefined && failure === undefined) {
    try {
      if (config.output !== undefined) await writeFileAtomic(config.output, response.body, io.signal);
      else if (!config.json && (await writeAll(io.stdout, response.body)) === 'epipe') {
        // the reader went away (e.g. `| head`): quietly, with the code a shell gives a process SIGPIPE kills
        await client.close().catch(() => {});
        return EXIT.BROKEN_PIPE;
      }
    } catch (error) {
      if (io.signal.aborted) {
        failure = classifyFailure(io.signal.reason, config.url);
      } else {
        failure = {
          code: EXIT.IO,
          errorCode: (error as NodeJS.ErrnoException).code ?? 'EIO',
          message: `cannot write ${config.output ?? 'stdout'}: ${(error as Error).message}`,
          details: [],
          status: undefined,
          tiers: response.tiers,
        };
      }
      code = failure.code;
    }
  }

  if (response !== undefined && failure === undefined) {
    reportServed(response, out);
    if (io.record !== undefined) io.record.servedTier = response.tier;
  }
  if (failure !== undefined && !(failure.code === EXIT.INTERRUPTED || failure.code === EXIT.TERMINATED)) {
    out.error(failure.message);
    for (const d of failure.details) io.stderr.write(`  ${d}\n`);
  } else if (failure !== undefined) {
    out.note(failure.message);
  }

  if (config.json) {
    const doc = {
      schema_version: JSON_SCHEMA_VERSION,
      ok: failure === undefined,
      exit_code: code,
      url: config.url,
      served_url: response?.url ?? null,
      status: response?.status ?? failure?.status ?? null,
      tier: failure === undefined ? (response?.tier ?? null) : null,
      source: failure === undefined ? (response?.source ?? null) : null,
      stale: response?.tier === 'stale-cache',
      revalidated: response?.revalidated ?? false,
      shared: response?.shared ?? false,
      attempts: response?.attempts ?? attempts,
      redirects: response?.redirects ?? null,
      cache_age_ms: response?.cacheAgeMs ?? null,
      staleness_ms: response?.stalenessMs ?? null,
      bytes: response?.body.length ?? null,
      sha256: response ? createHash('sha256').update(response.body).digest('hex') : null,
      content_type: (response?.headers['content-type'] as string | undefined) ?? null,
      output: failure === undefined ? (config.output ?? null) : null,
      // from the start of the run (after start-up): what --timeout-ms governs
      elapsed_ms: Math.round((performance.now() - started) * 10) / 10,
      tiers: (failure?.tiers ?? response?.tiers ?? []).map(tierJson),
      error: failure === undefined ? null : { code: failure.errorCode, message: failure.message },
    };
    const written = await writeAll(io.stdout, `${JSON.stringify(doc)}\n`).catch(() => 'error' as const);
    if (written === 'epipe') code = EXIT.BROKEN_PIPE;
    else if (written === 'error' && code === EXIT.OK) code = EXIT.IO;
  }

  // wait for a background revalidation to update the cache (bounded by the total timeout); on Ctrl-C only
  // start closing (the caller exits, or goes on without waiting for the sockets)
  if (!io.signal.aborted) await client.close().catch(() => {});
  else void client.close().catch(() => {});
  return code;
}

function reportServed(r: HttpResponse, out: Reporter): void {
  const failedSources = r.tiers.filter((t) => t.status === 'failed').map((t) => `${t.tier} ${t.reason}`);
  switch (r.tier) {
    case 'primary':
      if (r.revalidated) out.verbose(`revalidated the cached copy (304 Not Modified)`);
      return;
    case 'fresh-cache':
      out.note(
        `served from the cache (age ${seconds(r.cacheAgeMs)}${r.stalenessMs > 0 ? `, ${seconds(r.stalenessMs)} stale, refreshing in the background` : ''})`,
      );
      return;
    case 'fallback':
      out.warn(`served from ${r.source} (${r.url}), not the primary: ${failedSources.join('; ')}`);
      return;
    case 'stale-cache':
      out.warn(
        `served a STALE copy from the cache (age ${seconds(r.cacheAgeMs)}, ${seconds(r.stalenessMs)} past freshness): every source failed: ${failedSources.join('; ')}`,
      );
      return;
  }
}
