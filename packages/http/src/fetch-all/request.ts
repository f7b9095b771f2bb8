/**
 * One GET over undici's low-level `dispatch` API, for `fetchAll`.
 *
 * Why not `undici.request`: it wraps every body in a `Readable` stream, which costs more than everything
 * else `fetchAll` does per URL (measured on loopback, docs/many-requests.md "Performance": `dispatch`
 * with a byte-counting handler is far faster than `request` + reading the body). `fetchAll` only counts body bytes (and keeps them
 * when asked), so a handler that sees the chunks directly is enough.
 *
 * An exchange is aborted by calling {@link Exchange.abort} (the run's timeout and abort do), not through
 * an `AbortSignal`: a signal per request costs an `AbortController` plus listener bookkeeping, which was
 * the largest single cost of a `fetchAll` request (see run.ts).
 */
import { DEADLINE_HEADER } from '@bulwark/core';
import type { Dispatcher } from 'undici';
import { parseRetryAfter } from '../classify.js';
import { HttpBodyTooLargeError, HttpStatusError, classifyNetworkError } from '../errors.js';
import { resetInProgress } from '../reset-guard.js';
import { withAuthorization } from '../credentials.js';

/** What one exchange produced: the response status and its body size (and bytes, when kept). */
export interface ExchangeResult {
  readonly status: number;
  readonly bytes: number;
  readonly body: Buffer | undefined;
}

/** A parsed target: undici's dispatch options are origin + path. */
export interface Target {
  /** The URL as given. */
  readonly url: string;
  readonly origin: string;
  /** Path and query. */
  readonly path: string;
  /** `host[:port]`. */
  readonly host: string;
  /** `Authorization: Basic` for the URL's `user:pass@` (sent to this origin only), when it has one. */
  readonly basic?: string;
}

/** Filled in as an exchange progresses, so a failed attempt still reports its status and bytes. */
export interface Progress {
  status: number | undefined;
  bytes: number;
  /** Why the last exchange failed (undefined while it runs or when it succeeded). */
  error: unknown;
}

export interface ExchangeOptions {
  readonly dispatcher: Dispatcher;
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** Keep the body bytes (otherwise only counted). */
  readonly keepBody: boolean;
  /** Abort the transfer beyond this many body bytes (`Infinity` = no limit). */
  readonly maxBodyBytes: number;
  /** Statuses that reject (so retry and the breaker see a failure) instead of resolving. */
  readonly isFailureStatus: (status: number) => boolean;
  /** Called once when an exchange settles (however it ends). */
  readonly onEnd: () => void;
}

type Controller = Dispatcher.DispatchController;

/**
 * One request in flight. {@link Exchange.start} sends it and returns a promise that settles when the
 * whole body has arrived: it rejects with an `HttpStatusError` for a status `isFailureStatus` selects, an
 * `HttpNetworkError` for a network failure, or the reason given to {@link Exchange.abort}.
 */
export class Exchange implements Dispatcher.DispatchHandler {
  #controller: Controller | undefined = undefined;
  #status = 0;
  #headers: Record<string, string | string[] | undefined> | undefined = undefined;
  #bytes = 0;
  #chunks: Buffer[] | undefined;
  #done = false;
  #abortReason: unknown = undefined;
  #resolve!: (result: ExchangeResult) => void;
  #reject!: (error: unknown) => void;

  constructor(
    readonly target: Target,
    readonly options: ExchangeOptions,
    readonly progress: Progress,
  ) {
    this.#chunks = options.keepBody ? [] : undefined;
  }

  /** Sends the request; `budget`: the `bulwark-timeout-ms` value to send with it (none when undefined). */
  start(budget?: string): Promise<ExchangeResult> {
    const promise = new Promise<ExchangeResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    try {
      this.options.dispatcher.dispatch(
        {
          origin: this.target.origin,
          path: this.target.path,
          method: 'GET',
          headers: this.#requestHeaders(budget),
        },
        this,
      );
    } catch (error) {
      this.#fail(classifyNetworkError(error, this.target.url));
    }
    return promise;
  }

  /**
   * The run's headers, with the URL's `user:pass@` as `Authorization: Basic` (a set `Authorization` wins)
   * and the attempt's budget.
   */
  #requestHeaders(budget: string | undefined): Readonly<Record<string, string>> | undefined {
    const basic = this.target.basic;
    const headers =
      basic === undefined ? this.options.headers : withAuthorization(this.options.headers ?? {}, basic);
    if (budget === undefined) return headers;
    return { ...headers, [DEADLINE_HEADER]: budget };
  }

  /** Settles at once with `reason` and aborts the transfer (now, or as soon as undici starts it). */
  abort(reason: unknown): void {
    if (this.#done) return;
    this.#abortReason = reason;
    this.#fail(reason);
    this.#controller?.abort(reason as Error);
  }

  onRequestStart(controller: Controller): void {
    this.#controller = controller;
    if (this.#abortReason !== undefined) controller.abort(this.#abortReason as Error);
  }

  onResponseStart(
    _controller: Controller,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    // 1xx informational responses come first; the last call carries the final status
    this.#status = statusCode;
    this.#headers = headers;
    this.progress.status = statusCode;
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.#done) return;
    this.#bytes += chunk.length;
    this.progress.bytes = this.#bytes;
    if (this.#bytes > this.options.maxBodyBytes) {
      const error = new HttpBodyTooLargeError(this.options.maxBodyBytes, this.target.url);
      this.#fail(error);
      controller.abort(error);
      return;
    }
    this.#chunks?.push(chunk);
  }

  onResponseEnd(): void {
    if (this.#done) return;
    // a close-delimited body ended by a reset was cut, not completed (reset-guard.ts)
    const reset = resetInProgress();
    if (reset !== undefined) {
      this.#fail(classifyNetworkError(reset, this.target.url));
      return;
    }
    const status = this.#status;
    if (this.options.isFailureStatus(status)) {
      const retryAfter = this.#headers?.['retry-after'];
      this.#fail(new HttpStatusError(status, this.target.url, parseRetryAfter(retryAfter)));
      return;
    }
    this.#done = true;
    this.options.onEnd();
    const chunks = this.#chunks;
    this.#resolve({
      status,
      bytes: this.#bytes,
      body: chunks === undefined ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks),
    });
  }

  onResponseError(_controller: Controller, error: Error): void {
    if (this.#done) return;
    this.#fail(classifyNetworkError(error, this.target.url));
  }

  #fail(error: unknown): void {
    this.#done = true;
    this.progress.error = error;
    this.options.onEnd();
    this.#reject(error);
  }
}
