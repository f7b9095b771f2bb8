/**
 * One run of http-get, given a parsed config and the process's streams: build the client, walk the
 * ladder with the body streaming into its output as it arrives (a temp file for `-o`, a spool for stdout),
 * commit it once it is complete, report on stderr / as JSON, return the exit code. No globals: a test can
 * call it with its own streams and signal.
 */
import {
  DiskCacheStore,
  RETRYABLE_STATUSES,
  createHttpClient,
  isSourceTier,
  type BodyInfo,
  type BodySink,
  type HttpDownload,
} from '@bulwark/http';
import type { TierEvent } from '@bulwark/core';
import { hidePasswords } from '@bulwark/cli-support';
import { EXIT, REFRESH_BOUND_MS, type CliConfig } from './config.js';
import {
  classifyFailure,
  describeTier,
  ioFailure,
  shortenUrls,
  type Failure,
  type TierLine,
} from './outcome.js';
import type { RunRecord } from './metrics.js';
import { AtomicFile, HashingSink, Spool, headerBlock, writeAll } from './output.js';
import type { DownloadProgress as Progress } from './progress.js';

export interface Io {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean; hasColors?: () => boolean };
  /** Aborted on SIGINT / SIGTERM with an {@link Interrupted} reason. */
  readonly signal: AbortSignal;
  /** Filled in with what `--metrics-file` reports (cache snapshot failures, the tier that served). */
  readonly record?: RunRecord;
}

/** The `--json` layout version: 2 since the field names are camelCase, like many-requests' (1 was snake_case). */
export const JSON_SCHEMA_VERSION = 2;

interface Reporter {
  note(text: string): void;
  warn(text: string): void;
  /** A warning that `-q` does not silence (a security downgrade). */
  loud(text: string): void;
  error(text: string): void;
  verbose(text: string): void;
}

function reporter(config: CliConfig, io: Io): Reporter {
  const color = config.color !== false && io.stderr.isTTY === true && (io.stderr.hasColors?.() ?? false);
  const paint = (code: number, s: string): string => (color ? `\x1b[${code}m${s}\x1b[39m` : s);
  const line = (s: string): void => {
    io.stderr.write(`${shortenUrls(s)}\n`);
  };
  return {
    note: (s) => (config.quiet ? undefined : line(`http-get: ${s}`)),
    warn: (s) => (config.quiet ? undefined : line(`http-get: ${paint(33, 'warning:')} ${s}`)),
    loud: (s) => line(`http-get: ${paint(31, 'WARNING:')} ${s}`),
    error: (s) => line(`http-get: ${paint(31, 'error:')} ${s}`),
    verbose: (s) => (config.verbose ? line(`http-get: ${paint(2, s)}`) : undefined),
  };
}

function seconds(ms: number | undefined): string {
  return ms === undefined ? '?' : `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

function tierJson(t: TierLine): Record<string, unknown> {
  const code = (t.error as { code?: unknown } | undefined)?.code;
  return {
    tier: t.tier,
    status: t.status,
    reason: t.reason,
    elapsedMs: Math.round(t.elapsedMs * 10) / 10,
    skipCode: t.status === 'skipped' ? (t.code ?? null) : null,
    errorCode: typeof code === 'string' ? code : null,
  };
}

/** What the run wrote its body through (one per attempt; the served one is kept). */
interface Output {
  readonly hash: HashingSink;
  readonly file: AtomicFile | undefined;
  readonly spool: Spool | undefined;
}

export async function run(config: CliConfig, io: Io): Promise<number> {
  const out = reporter(config, io);
  const started = performance.now();
  if (config.insecure) {
    out.loud(
      'TLS certificates are NOT verified (-k/--insecure): anyone on the path can read and change this transfer',
    );
  }
  if (config.traceProblem !== undefined) out.warn(config.traceProblem);
  if (config.traceId !== undefined) out.verbose(`trace ${config.traceId} (continued from TRACEPARENT)`);
  const store = config.cacheDir === undefined ? undefined : new DiskCacheStore({ dir: config.cacheDir });
  const client = createHttpClient({ ...config.client, cache: store ?? false });
  let attempts = 0;
  client.onAttempt(() => attempts++);
  // the ladder as it happened: --json and the error lines list every tier tried, also when the primary's
  // answer ended the ladder (a 404 rejects with the error alone)
  const ladder: TierLine[] = [];
  client.onTier((e: TierEvent) => {
    if (e.name === 'http-client' && e.status !== 'start')
      ladder.push({
        tier: e.tier,
        status: e.status,
        code: e.code,
        reason: e.reason,
        elapsedMs: e.elapsedMs,
        error: e.error,
      });
  });
  if (config.verbose) {
    client.onTier((e) => {
      const what = e.name === 'http-revalidate' ? `[${e.tier}, background refresh]` : `[${e.tier}]`;
      if (e.status === 'start') out.verbose(`${what} trying`);
      else
        out.verbose(`${what} ${e.status}${e.reason ? `: ${e.reason}` : ''} (${Math.round(e.elapsedMs)} ms)`);
    });
    client.onAttempt((e) =>
      out.verbose(
        `[${e.tier}] attempt ${e.attempt} ${config.head ? 'HEAD' : 'GET'} ${e.url} -> ${e.status ?? e.error?.message ?? '?'} (${Math.round(e.elapsedMs)} ms)`,
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

  // every body goes where it will end up as it arrives: a temp file beside -o, or a spool for stdout
  // (written out only once complete); --json alone only counts and hashes it
  const outputs = new Map<BodySink, Output>();
  const sink = (info: BodyInfo): BodySink => {
    const prefix = config.include ? headerBlock(info.status, info.headers) : undefined;
    const file = config.output !== undefined ? new AtomicFile(config.output, prefix) : undefined;
    const spool = file === undefined && !config.json ? new Spool(prefix) : undefined;
    // hashed only for --json's sha256: hashing a large body costs more than writing it
    const hash = new HashingSink(file ?? spool, config.json);
    outputs.set(hash, { hash, file, spool });
    return hash;
  };

  let response: HttpDownload | undefined;
  let failure: Failure | undefined;
  try {
    response = await client.download(config.url, {
      fallbackUrls: config.fallbacks,
      signal: io.signal,
      onProgress: progress?.update,
      method: config.head ? 'HEAD' : 'GET',
      acceptStatus: config.fail === 'fail' ? undefined : (s) => s >= 400 && !RETRYABLE_STATUSES.has(s),
      sink,
    });
  } catch (error) {
    failure = classifyFailure(
      io.signal.aborted ? io.signal.reason : error,
      config.url,
      ladder,
      config.output,
    );
  } finally {
    progress?.stop();
  }
  const output = response === undefined ? undefined : outputs.get(response.sink);

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
  // --fail-with-body: the answer is written, and the run still fails
  const errorStatus = response !== undefined && response.status >= 400;
  if (failure === undefined && errorStatus && config.fail === 'fail-with-body') code = EXIT.HTTP;

  // the body: only when served (and not refused); committed whole, never torn
  let written: string | null = null;
  if (response !== undefined && failure === undefined) {
    try {
      if (config.head) {
        const block = headerBlock(response.status, response.headers);
        if (config.output !== undefined) {
          const file = new AtomicFile(config.output);
          try {
            await file.write(block);
            written = await file.commit();
          } catch (error) {
            await file.abort();
            throw error;
          }
        } else if (!config.json && (await writeAll(io.stdout, block)) === 'epipe') {
          await finish(client, io, true);
          return EXIT.BROKEN_PIPE;
        }
      } else if (output?.file !== undefined) {
        await output.file.commit();
        written = config.output ?? null;
      } else if (
        output?.spool !== undefined &&
        (await output.spool.copyTo((data) => writeAll(io.stdout, data))) === 'epipe'
      ) {
        // the reader went away (e.g. `| head`): quietly, with the code a shell gives a process SIGPIPE kills
        await finish(client, io, true);
        return EXIT.BROKEN_PIPE;
      }
      if (config.head && config.output !== undefined) written = config.output;
    } catch (error) {
      failure = io.signal.aborted
        ? classifyFailure(io.signal.reason, config.url, ladder, config.output)
        : ioFailure(error, config.output, response.tiers);
      code = failure.code;
    }
  }
  if (failure !== undefined) await output?.hash.abort(failure);

  if (response !== undefined && failure === undefined) {
    reportServed(response, out);
    if (errorStatus)
      out.warn(
        `the server answered ${response.status}; its body was written (${config.fail === 'no-fail' ? '--no-fail' : '--fail-with-body'})`,
      );
    if (io.record !== undefined && code === EXIT.OK) io.record.servedTier = response.tier;
  }
  if (failure !== undefined && !(failure.code === EXIT.INTERRUPTED || failure.code === EXIT.TERMINATED)) {
    out.error(failure.message);
    for (const d of failure.details) io.stderr.write(`  ${shortenUrls(d)}\n`);
  } else if (failure !== undefined) {
    out.note(failure.message);
  }

  if (config.json) {
    const served = failure === undefined ? response : undefined;
    const doc = {
      schemaVersion: JSON_SCHEMA_VERSION,
      ok: failure === undefined && code === EXIT.OK,
      exitCode: code,
      url: config.url,
      servedUrl: response?.url ?? null,
      status: response?.status ?? failure?.status ?? null,
      tier: served?.tier ?? null,
      source: served?.source ?? null,
      stale: response?.tier === 'stale-cache',
      revalidated: response?.revalidated ?? false,
      shared: response?.shared ?? false,
      attempts: response?.attempts ?? attempts,
      redirects: response?.redirects ?? null,
      cacheAgeMs: response?.cacheAgeMs ?? null,
      stalenessMs: response?.stalenessMs ?? null,
      bytes: served === undefined ? null : (output?.hash.bytes ?? 0),
      sha256: served === undefined || config.head ? null : (output?.hash.sha256 ?? EMPTY_SHA256),
      contentType: (response?.headers['content-type'] as string | undefined) ?? null,
      output: failure === undefined ? written : null,
      // from the start of the run (after start-up): what --timeout-ms governs
      elapsedMs: Math.round((performance.now() - started) * 10) / 10,
      tiers: (failure?.tiers ?? response?.tiers ?? ladder).map(tierJson),
      error: failure === undefined ? null : { code: failure.errorCode, message: failure.message },
    };
    try {
      // every URL in it (the one asked for, a mirror's in a tier's reason) without its password
      const text = hidePasswords(JSON.stringify(doc));
      if ((await writeAll(io.stdout, `${text}\n`)) === 'epipe') code = EXIT.BROKEN_PIPE;
    } catch (error) {
      // the document itself could not be written (a full disk): say so where it can be seen
      out.error(ioFailure(error, undefined, []).message);
      code = EXIT.IO;
    }
  }

  await finish(client, io, false);
  return code;
}

/** SHA-256 of nothing (a HEAD, an empty body). */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/**
 * Lets a stale-while-revalidate refresh finish, at most {@link REFRESH_BOUND_MS} after the body
 * is out (then it is abandoned: the entry stays as it was, a later run refreshes it); on Ctrl-C, or once
 * stdout is gone, not at all.
 */
async function finish(client: ReturnType<typeof createHttpClient>, io: Io, now: boolean): Promise<void> {
  const signal = now || io.signal.aborted ? AbortSignal.abort() : AbortSignal.timeout(REFRESH_BOUND_MS);
  // on Ctrl-C only start closing: the caller exits, sockets may linger in the agent
  if (io.signal.aborted) void client.close({ signal }).catch(() => {});
  else await client.close({ signal }).catch(() => {});
}

function reportServed(r: HttpDownload, out: Reporter): void {
  // what kept each source from serving: its failure, or why it was skipped (a spent total timeout)
  const failedSources = r.tiers
    .filter((t) => isSourceTier(t.tier) && t.status !== 'served')
    .map((t) => `${t.tier} ${t.status === 'skipped' ? 'skipped: ' : ''}${t.reason}`);
  switch (r.tier) {
    case 'primary':
      if (r.revalidated) out.verbose(`revalidated the cached copy (304 Not Modified)`);
      return;
    case 'fresh-cache':
      out.note(
        `served from the cache (age ${seconds(r.cacheAgeMs)}${r.stalenessMs > 0 ? `, ${seconds(r.stalenessMs)} stale, refreshing in the background for at most ${seconds(REFRESH_BOUND_MS)}` : ''})`,
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
