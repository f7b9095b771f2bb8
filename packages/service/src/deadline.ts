/**
 * Deadlines across services, the receiving side: the `bulwark-timeout-ms` request header (the caller's
 * remaining budget, from @bulwark/core's codec) becomes the request's ambient deadline, so every call the
 * handler makes through a Bulwark policy — and every outgoing @bulwark/http request, which forwards what
 * is left — is bounded by what the caller is still waiting for.
 *
 * - onRequest (before a slot is taken or the body is read): a malformed value → 400
 *   `BULWARK_ERR_INVALID_DEADLINE_HEADER`; a budget of 0 (the caller has given up) → 504
 *   `BULWARK_ERR_DEADLINE_EXCEEDED` without running anything; otherwise the deadline is
 *   `performance.now() + budget` (capped at `maxMs`), counted from the request's arrival.
 * - preHandler (the last hook before the handler): a deadline that passed meanwhile (a slow body) → 504;
 *   otherwise the handler runs inside `runWithDeadline({ deadline, signal })`, `signal` aborting when the
 *   client goes away before its answer was sent.
 * - A handler that ends with `DeadlineExceededError` is answered 504 by the kit's error handler.
 *
 * Without the header, a service with `handlerTimeoutMs` runs its handlers under that bound (so its own
 * limit propagates to its upstreams too); without either, nothing is done (no cost beyond a header read).
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import {
  DEADLINE_HEADER,
  DEADLINE_HEADER_DEFAULTS,
  InvalidOptionError,
  parseDeadlineHeader,
  runWithDeadline,
} from '@bulwark/core';
import { checks } from '@bulwark/core/internal';
import { onResponseEnd } from './response-end.js';

/** `deadlines: { … }` of the kit's options. */
export interface DeadlineOptions {
  /**
   * The longest budget accepted from a caller, in ms: a larger one is cut to it. @default
   * `handlerTimeoutMs` when set, else 60 000 (core's `DEADLINE_HEADER_DEFAULTS.maxMs`)
   */
  maxMs?: number;
}

/** The deadline settings in force (`false`: the header is ignored). */
export interface ResolvedDeadlines {
  readonly maxMs: number;
  /** The bound of a request without the header, in ms (`handlerTimeoutMs`; 0 = none). */
  readonly defaultMs: number;
}

export function resolveDeadlines(
  value: DeadlineOptions | false,
  handlerTimeoutMs: number,
): ResolvedDeadlines | false {
  if (value === false) return false;
  const o = checks.optionsObject('service.deadlines', value);
  checks.knownKeys('service.deadlines', o, ['maxMs']);
  const maxMs =
    o.maxMs === undefined
      ? handlerTimeoutMs > 0
        ? handlerTimeoutMs
        : DEADLINE_HEADER_DEFAULTS.maxMs
      : checks.positiveMs('service.deadlines.maxMs', o.maxMs);
  if (!Number.isInteger(maxMs)) {
    throw new InvalidOptionError('service.deadlines.maxMs', maxMs, 'a whole number of ms > 0');
  }
  return Object.freeze({ maxMs, defaultMs: handlerTimeoutMs });
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** The body of a request refused for a malformed header (stable: `code` BULWARK_ERR_INVALID_DEADLINE_HEADER). */
export function invalidDeadlineBody(reason: string): string {
  return JSON.stringify({
    statusCode: 400,
    error: 'Bad Request',
    code: 'BULWARK_ERR_INVALID_DEADLINE_HEADER',
    message: `${reason}. Send the time the caller still waits as one whole number of milliseconds, 1 to 10 digits 0-9 with no unit or sign (e.g. "${DEADLINE_HEADER}: 250"), or leave the header out for no deadline.`,
  });
}

/** The body of a request whose deadline passed before it was answered (stable: `code` BULWARK_ERR_DEADLINE_EXCEEDED). */
export const DEADLINE_EXCEEDED_BODY = JSON.stringify({
  statusCode: 504,
  error: 'Gateway Timeout',
  code: 'BULWARK_ERR_DEADLINE_EXCEEDED',
  message: `The request's deadline (${DEADLINE_HEADER}) passed before it could be answered.`,
});

/** Answers 504 with {@link DEADLINE_EXCEEDED_BODY}. */
export function sendDeadlineExceeded(reply: FastifyReply): void {
  reply.code(504).type(JSON_TYPE).send(DEADLINE_EXCEEDED_BODY);
}

/**
 * Reads the header in onRequest. Returns false when it answered (400 or 504): the request stops there.
 * Sets `request.bulwarkDeadline` (a `performance.now()` time; 0 = none) otherwise.
 */
export function admitDeadline(
  deadlines: ResolvedDeadlines,
  request: FastifyRequest,
  reply: FastifyReply,
): boolean {
  const value = request.headers[DEADLINE_HEADER];
  if (value === undefined) {
    if (deadlines.defaultMs > 0) request.bulwarkDeadline = performance.now() + deadlines.defaultMs;
    return true;
  }
  // sent more than once, Node joins the copies ("100, 200"): read them one by one (the same value twice is fine)
  const budget = parseDeadlineHeader(
    value.includes(',') ? (request.raw.headersDistinct[DEADLINE_HEADER] ?? value) : value,
    { maxMs: deadlines.maxMs },
  );
  if (!budget.ok) {
    reply.code(400).type(JSON_TYPE).send(invalidDeadlineBody(budget.reason));
    return false;
  }
  if (!budget.present) return true;
  if (budget.timeoutMs === 0) {
    sendDeadlineExceeded(reply);
    return false;
  }
  request.bulwarkDeadline = performance.now() + budget.timeoutMs;
  return true;
}

/** Why the request's ambient signal aborted: the client went away before its answer was sent. */
export class ClientClosedError extends Error {
  static readonly code = 'BULWARK_ERR_CLIENT_CLOSED';
  override readonly name = 'ClientClosedError';
  readonly code = ClientClosedError.code;
  constructor() {
    super('The client closed the connection before the answer was sent');
  }
}

/** The preHandler: runs the rest (the handler) inside the request's ambient deadline. */
export function deadlinePreHandler(
  request: FastifyRequest,
  reply: FastifyReply,
  done: HookHandlerDoneFunction,
): void {
  const deadline = request.bulwarkDeadline;
  if (deadline === 0) {
    done();
    return;
  }
  if (performance.now() >= deadline) {
    sendDeadlineExceeded(reply);
    return;
  }
  const controller = new AbortController();
  const res = reply.raw;
  onResponseEnd(request.raw, res, () => {
    if (!res.writableFinished) controller.abort(new ClientClosedError());
  });
  runWithDeadline({ deadline, signal: controller.signal }, done);
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's deadline, a `performance.now()` time (0: none), set by @bulwark/service. */
    bulwarkDeadline: number;
  }
}
