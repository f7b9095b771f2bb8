/**
 * The client's network tier: one source (the primary or a mirror) within its share of the total deadline
 * → retry (honours Retry-After) → the origin's policies (origin.ts) → one attempt: a deadline until its
 * response headers, then the body streamed into the caller's sink and the cache's writer. A 304 to a
 * conditional request serves the stored copy (cache-tiers.ts).
 */
import {
  DEADLINE_HEADER,
  HedgeCancelledError,
  ThrottledError,
  TimeoutError,
  classify,
  pipeline,
  retry,
  timeout,
  type Policy,
  type TierContext,
} from '@bulwark/core';
import { onAbort, type EventEmitter } from '@bulwark/core/internal';
import { hasValidator, revalidationHeaders } from '../cache/semantics.js';
import type { CacheEntryWriter } from '../cache/store.js';
import { parseRetryAfter } from '../classify.js';
import { withoutCredentials } from '../credentials.js';
import { attemptDeadlineHeader } from '../deadline-header.js';
import { HttpNetworkError, HttpStatusError } from '../errors.js';
import type { CacheTiers } from './cache-tiers.js';
import { openSink, quietly, type ClientCore, type Fetched, type Flight, type Served } from './flight.js';
import { HTTP_CLIENT_DEFAULTS, type ResolvedOptions } from './options.js';
import type { OriginPolicies } from './origin.js';
import { TIER_SKIP_CODES as SKIP } from './tiers.js';
import {
  ACCEPT_ENCODING,
  SinkFailure,
  decodedHeaders,
  discard,
  drain,
  headerValue,
  openResponse,
  pumpBody,
  willDecode,
  type BodySink,
} from './transport.js';
import type { HttpAttemptEvent } from './types.js';

export class NetworkTier {
  readonly #core: ClientCore;
  readonly #cacheTiers: CacheTiers;
  readonly #origins: OriginPolicies;
  readonly #onAttempt: EventEmitter<HttpAttemptEvent>;

  constructor(
    core: ClientCore,
    cacheTiers: CacheTiers,
    origins: OriginPolicies,
    onAttempt: EventEmitter<HttpAttemptEvent>,
  ) {
    this.#core = core;
    this.#cacheTiers = cacheTiers;
    this.#origins = origins;
    this.#onAttempt = onAttempt;
  }

  /** The tier of the source `url`, the `index`th of the call's sources (0: the primary). */
  async run(
    ctx: TierContext<Flight>,
    url: string,
    index: number,
  ): Promise<Served | ReturnType<typeof ctx.skip>> {
    const f = ctx.input;
    const o = this.#core.options;
    const remaining = f.deadlineAt - o.clock.now();
    if (!(remaining > 0)) {
      return ctx.skip(SKIP.DEADLINE_SPENT, `total timeout of ${o.totalTimeoutMs} ms already spent`);
    }
    // the budget left is shared fairly: this source may use at most remaining / (sources still to try),
    // so a black-holed primary cannot starve the mirrors (the last source gets all that is left)
    const sourcesLeft = f.fallbackUrls.length - index + 1;
    const lastSource = sourcesLeft === 1;
    const budget = Math.max(1, Math.round(remaining / sourcesLeft));
    const conditional =
      f.entry !== undefined &&
      f.policy !== undefined &&
      f.mode !== 'no-store' &&
      f.method === 'GET' &&
      hasValidator(f.policy) &&
      new URL(f.entry.url).origin === new URL(url).origin;
    const guard = pipeline(
      ...(Number.isFinite(budget)
        ? [timeout({ timeoutMs: budget, clock: o.clock, name: 'http-total-timeout' })]
        : []),
      this.#retryFor(lastSource),
      ...this.#origins.for(url),
    );
    // credentials given for the call (Authorization, Cookie, Proxy-Authorization) go only to the primary's
    // origin, as on a redirect: a mirror on another origin (scheme, host or port) gets none of them
    const own = requestHeaders(this.#core.options);
    const given = new URL(url).origin === new URL(f.url).origin ? own : withoutCredentials(own);
    const headers = conditional ? { ...given, ...revalidationHeaders(f.policy!, f.req) } : given;
    const fetched = await guard.run(
      (actx) =>
        this.#send(
          url,
          headers,
          conditional,
          ctx.tier,
          actx.attempt,
          lastSource,
          actx.signal,
          f,
          actx.remainingMs(),
          ctx.deadline,
        ),
      ctx,
    );
    if (fetched.kind === 'not-modified' && f.entry !== undefined && f.policy !== undefined) {
      const served = await this.#cacheTiers.revalidated(ctx, f, fetched.head);
      if (served !== undefined) return served;
      // the 304 does not match what we hold (or that is damaged): fetch the full response
      const full = await guard.run(
        (actx) =>
          this.#send(
            url,
            requestHeaders(this.#core.options),
            false,
            ctx.tier,
            actx.attempt,
            lastSource,
            actx.signal,
            f,
            actx.remainingMs(),
            ctx.deadline,
          ),
        ctx,
      );
      return this.#cacheTiers.publish(f, full);
    }
    return this.#cacheTiers.publish(f, fetched);
  }

  /**
   * Retries for one source. A failure that may pass on another attempt is retried — except a timeout when
   * another source remains: a source that did not answer in time is left for the next one (a black-holed
   * primary costs one attempt deadline, not all its retries). An open breaker moves on at once.
   */
  #retryFor(lastSource: boolean): Policy {
    const o = this.#core.options;
    return retry({
      ...o.retry,
      clock: o.clock,
      name: 'http-retry',
      classify: lastSource ? RETRY_CLASSIFY : NOT_LAST_SOURCE_CLASSIFY,
    });
  }

  /**
   * How long attempt `n` may wait for its response headers (connect included). An explicit
   * `attemptTimeoutMs` applies to every attempt. By default it is derived from the total: the first
   * attempt gets `totalTimeoutMs / 15` (2 s of the default 30 s; at least 1 s, at most 10 s), each retry
   * twice the one before, and the last attempt of the last source has no deadline of its own (only the
   * total) — the short ones exist to leave time for another attempt or source.
   */
  #attemptDeadline(attempt: number, lastSource: boolean): number {
    const o = this.#core.options;
    if (o.attemptTimeoutMs !== undefined) return o.attemptTimeoutMs;
    if (lastSource && attempt >= o.retry.maxAttempts) return Infinity;
    return derivedAttemptTimeoutMs(o.totalTimeoutMs) * 2 ** (attempt - 1);
  }

  /**
   * One HTTP request. The response headers must arrive within the attempt deadline; then the body streams
   * into a caller sink and (when the response is storable) a cache writer. Statuses that are not served
   * become HttpStatusError; a 304 to a conditional request is returned as `not-modified`.
   *
   * `remainingMs` is the attempt's budget from the policies (`ctx.remainingMs()`: the source's share of
   * the total, the caller's or the ambient deadline); with the attempt's own deadline, the least of them
   * goes to the server as `bulwark-timeout-ms` (unless `deadlineHeader: false`). When nothing is left
   * beyond the allowance, the attempt is not sent: it fails at once with `DeadlineExceededError`.
   */
  async #send(
    url: string,
    headers: Readonly<Record<string, string>>,
    conditional: boolean,
    tier: string,
    attemptNo: number,
    lastSource: boolean,
    signal: AbortSignal,
    f: Flight,
    remainingMs: number,
    callerDeadline: number,
  ): Promise<Fetched> {
    const o = this.#core.options;
    const deadlineMs = this.#attemptDeadline(attemptNo, lastSource);
    // only the caller's deadline (ambient: runWithDeadline, a service's request budget) spent stops the
    // attempt here; the client's own limits (its total, this source's share, the attempt's) are bounds
    // the attempt is sent with, and enforce themselves (TimeoutError)
    const callerMs = callerDeadline - o.clock.now();
    const budget = attemptDeadlineHeader(callerMs, Math.min(remainingMs, deadlineMs), o.deadlineHeader);
    if (budget !== undefined) headers = { ...headers, [DEADLINE_HEADER]: budget };
    f.attempts++;
    const sentKey = `${tier}#${attemptNo}`;
    const hedgeNo = f.sentPerAttempt.get(sentKey) ?? 0;
    f.sentPerAttempt.set(sentKey, hedgeNo + 1);
    const clock = o.clock;
    const started = clock.now();
    // Every attempt is reported once, also one a timeout or an abort ended. Those abort the signal before
    // the policies reject, so the event is emitted then: before the call settles, not when the transfer
    // has finished unwinding (an aggressive timeout does not wait for it).
    let reported = !this.#onAttempt.active;
    const report = (status: number | undefined, error: unknown): void => {
      if (reported) return;
      reported = true;
      const e = error === undefined || error instanceof Error ? error : new Error(String(error));
      this.#attemptEvent(tier, url, attemptNo, hedgeNo, status, e, started);
    };
    // the attempt's own signal: the policies' one, plus the deadline until the headers arrive
    const controller = new AbortController();
    const unlink = onAbort(signal, () => controller.abort(signal.reason));
    let timer = Number.isFinite(deadlineMs)
      ? clock.setTimeout(() => controller.abort(new TimeoutError(deadlineMs)), deadlineMs)
      : undefined;
    const clearTimer = (): void => {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
    };
    const attemptSignal = controller.signal;
    const unlisten = reported
      ? undefined
      : onAbort(attemptSignal, () => report(undefined, attemptSignal.reason));
    let sink: BodySink | undefined;
    let writer: CacheEntryWriter | undefined;
    try {
      const head = await openResponse(url, {
        dispatcher: this.#core.dispatcher,
        method: f.method,
        headers,
        signal: attemptSignal,
        // undici's own timer follows the attempt deadline unless set: a fixed one would cut a longer deadline
        headersTimeoutMs: o.headersTimeoutMs ?? deadlineMs,
        bodyTimeoutMs: o.bodyTimeoutMs,
        maxRedirects: o.maxRedirects,
        followRedirects: o.followRedirects,
      });
      clearTimer();
      // a hedged attempt that lost while its headers were on the way: no sink, no cache entry
      if (attemptSignal.aborted) {
        discard(head.body);
        throw attemptSignal.reason;
      }
      const status = head.status;
      if (status === 304) {
        drain(head.body);
        if (conditional) {
          report(status, undefined);
          return { kind: 'not-modified', head };
        }
        throw new HttpNetworkError('protocol', head.url, undefined, {
          detail: 'an unsolicited 304 Not Modified (no conditional request was sent)',
        });
      }
      const served = (status >= 200 && status < 300) || f.accept(status);
      if (!served && (!(status >= 300 && status < 400) || o.followRedirects)) {
        drain(head.body);
        throw new HttpStatusError(
          status,
          head.url,
          parseRetryAfter(headerValue(head.headers, 'retry-after'), o.now()),
        );
      }
      const decode = willDecode(head.headers, o.decompress && f.method === 'GET');
      const servedHeaders = decode ? decodedHeaders(head.headers) : head.headers;
      const stored = this.#cacheTiers.storeFor(f, url, headers, head, servedHeaders);
      writer = stored.writer;
      const policy = stored.policy;
      if (f.method === 'HEAD') {
        drain(head.body);
        report(status, undefined);
        return {
          kind: 'body',
          head,
          headers: servedHeaders,
          bytes: 0,
          sink: undefined,
          writer: undefined,
          policy: undefined,
        };
      }
      sink = openSink(f, { status, headers: servedHeaders, url: head.url, source: tier });
      let writerFailed = false;
      const bytes = await pumpBody(head.body, {
        url: head.url,
        signal: attemptSignal,
        maxBodyBytes: o.maxBodyBytes,
        decode,
        headers: head.headers,
        sink,
        side: writer,
        onSideFailure: (error) => {
          writerFailed = true;
          this.#core.cacheError('write', f.key, error);
        },
        onProgress: f.onProgress,
      });
      // one attempt serves the flight: a hedged one that completes while another is closing its sink lost
      // (its own sink is aborted below, never closed; its cache entry never published)
      if (attemptSignal.aborted) throw attemptSignal.reason;
      if (f.closing) throw withoutStackTrace(new HedgeCancelledError(0));
      f.closing = true;
      try {
        await sink.close();
      } catch (error) {
        throw new SinkFailure(error);
      }
      if (writerFailed && writer !== undefined) {
        await quietly(writer.abort());
        writer = undefined;
      }
      if (writer !== undefined) {
        const w = writer;
        await w.close().catch(async (error: unknown) => {
          this.#core.cacheError('write', f.key, error);
          await quietly(w.abort());
          writer = undefined;
        });
      }
      report(status, undefined);
      return { kind: 'body', head, headers: servedHeaders, bytes, sink, writer, policy };
    } catch (error) {
      const reason = attemptSignal.aborted && !signal.aborted ? attemptSignal.reason : error;
      if (sink !== undefined) await quietly(sink.abort(reason));
      if (writer !== undefined) await quietly(writer.abort());
      report(reason instanceof HttpStatusError ? reason.status : undefined, reason);
      throw reason;
    } finally {
      clearTimer();
      unlink();
      unlisten?.();
    }
  }

  #attemptEvent(
    tier: string,
    url: string,
    attempt: number,
    hedge: number,
    status: number | undefined,
    error: Error | undefined,
    started: number,
  ): void {
    if (this.#onAttempt.active)
      this.#onAttempt.emit({
        tier,
        url,
        attempt,
        hedge,
        status,
        error,
        elapsedMs: this.#core.options.clock.now() - started,
      });
  }
}

/** The headers every request of the client sends (with `accept-encoding` when it decodes bodies). */
export function requestHeaders(o: ResolvedOptions): Readonly<Record<string, string>> {
  const h = o.headers;
  if (!o.decompress || h['accept-encoding'] !== undefined) return h;
  return { ...h, 'accept-encoding': ACCEPT_ENCODING };
}

/** The default attempt deadline for a total of `totalTimeoutMs`: a fifteenth, from 1 s to 10 s. */
export function derivedAttemptTimeoutMs(totalTimeoutMs: number): number {
  if (!Number.isFinite(totalTimeoutMs)) return HTTP_CLIENT_DEFAULTS.maxDerivedAttemptTimeoutMs;
  return Math.min(
    HTTP_CLIENT_DEFAULTS.maxDerivedAttemptTimeoutMs,
    Math.max(HTTP_CLIENT_DEFAULTS.minDerivedAttemptTimeoutMs, Math.round(totalTimeoutMs / 15)),
  );
}

/**
 * Core's classifier, but a local throttle's rejection is not retried: another draw at once would defeat
 * the throttle, and waiting a backoff for it holds the call for nothing (the next tier is tried instead).
 */
const RETRY_CLASSIFY = classify.error(ThrottledError, 'ignore');
/** A timeout while another source remains moves on to it instead of retrying. */
const NOT_LAST_SOURCE_CLASSIFY = RETRY_CLASSIFY.errorWhen(isTimeout, 'ignore');

function isTimeout(error: unknown): boolean {
  if (error instanceof TimeoutError) return true;
  return (
    error instanceof HttpNetworkError &&
    (error.kind === 'connect-timeout' || error.kind === 'headers-timeout')
  );
}

/** An error thrown on a losing path: no stack trace (it only points here). */
function withoutStackTrace<E extends Error>(error: E): E {
  error.stack = `${error.name}: ${error.message}`;
  return error;
}
