/**
 * A body cut by a TCP reset must never pass for a complete one.
 *
 * A response with neither `Content-Length` nor chunked encoding is close-delimited: its body ends when the
 * connection does (RFC 9112 §6.3, rule 8). A clean close (FIN) is that end; a reset (RST) is not — the
 * peer gave up mid-body. undici 8 does not tell them apart: its `onHttpSocketError` (client-h1.js) finishes
 * a close-delimited message on `ECONNRESET` ("On Mac OS, we get an ECONNRESET even if there is a full body
 * to be forwarded"), so the handler sees `onResponseEnd` and the caller a clean, short body (curl reports
 * `(56) Recv failure: Connection reset by peer`). With a length or chunked framing the same reset is an
 * error already.
 *
 * undici finishes that message synchronously inside the socket's `'error'` emission. So a listener that
 * runs first in that emission (prepended on every socket undici connects, from the
 * `undici:client:connected` diagnostics channel — which also covers proxied and caller-supplied
 * dispatchers) can mark "a reset is being delivered"; a response that ends while the mark is set ended
 * because of the reset. The mark is cleared by a microtask queued before anything the emission queues, so
 * it never outlives that emission. Hand-written because no library offers it; the undici behaviour is
 * pinned by packages/fault-server's "close-delimited + reset" test.
 */
import { subscribe } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';

let watching = false;
let resetting: Error | undefined;

const clear = (): void => {
  resetting = undefined;
};

function onSocketError(error: Error & { code?: unknown }): void {
  if (error?.code !== 'ECONNRESET') return;
  resetting = error;
  queueMicrotask(clear);
}

function onConnected(message: unknown): void {
  const socket = (message as { socket?: Socket } | null)?.socket;
  if (socket !== undefined && typeof socket.prependListener === 'function') {
    socket.prependListener('error', onSocketError);
  }
}

/** Starts watching the sockets undici connects from now on (idempotent; one subscription per process). */
export function watchResets(): void {
  if (watching) return;
  watching = true;
  subscribe('undici:client:connected', onConnected);
}

/**
 * The `ECONNRESET` being delivered right now, if a response end is happening inside a socket's reset:
 * then the body was cut, not complete. Only meaningful inside `onResponseEnd`.
 */
export function resetInProgress(): Error | undefined {
  return resetting;
}

type Controller = Dispatcher.DispatchController;

/** Forwards every callback, but turns an end delivered by a reset into that reset. */
class ResetGuardHandler implements Dispatcher.DispatchHandler {
  readonly #handler: Dispatcher.DispatchHandler;

  constructor(handler: Dispatcher.DispatchHandler) {
    this.#handler = handler;
  }

  onRequestStart(controller: Controller, context: unknown): void {
    this.#handler.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(
    controller: Controller,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    socket: Duplex,
  ): void {
    this.#handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(
    controller: Controller,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    this.#handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    this.#handler.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Controller, trailers: Record<string, string | string[] | undefined>): void {
    const reset = resetInProgress();
    if (reset !== undefined) this.#handler.onResponseError?.(controller, reset);
    else this.#handler.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Controller, error: Error): void {
    this.#handler.onResponseError?.(controller, error);
  }
}

/** An undici interceptor: `dispatcher.compose(resetGuard)`. */
export const resetGuard: Dispatcher.DispatcherComposeInterceptor = (dispatch) => {
  watchResets();
  return (options, handler) => dispatch(options, new ResetGuardHandler(handler));
};
