/**
 * The per-request work of the kit, as route-level hooks built once per route (in `onRoute`), so the hot
 * path does no lookups: each route's hooks close over its template, its exemptions and its histogram
 * cells. Requests that match no route get the same treatment through global hooks that bail out at once
 * for matched routes.
 *
 * onRequest: echo the request id → security headers → `Connection: close` while draining → 503 while the
 * server closes → server span → event-loop gate (503) → concurrency slot for a request without a body
 * (503) → rate limit (429). A request with a body takes its slot in preValidation, once the body is read:
 * a client that sends its body slowly holds a socket (bounded by `requestTimeoutMs`), never a slot.
 *
 * Every request ends exactly once, on the raw response's `close` event — which Node emits after the
 * response was sent, when the client went away before or after its body, when a server timeout destroyed
 * the socket, and for a pipelined response that never got its turn. Fastify's `onResponse` (which never
 * runs on a destroyed socket) and `onRequestAbort` (which runs only while the body is unread) are not
 * used for it. The ending releases the slot, ends the span, records the duration and writes the
 * slow/access log line.
 *
 * What is decided lives with its concept: the shedding decisions in `shedding/`, the rate limit in
 * `rate-limit/`, the deadline header in `deadline.ts`, the response's end in `response-end.ts`.
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { context, type Context, type Span } from '@opentelemetry/api';
import { InvalidOptionError, type TakeResult } from '@bulwark/core';
import type { HistogramCell } from './duration-histogram.js';
import type { ServiceMetrics } from './metrics.js';
import { admitDeadline, type ResolvedDeadlines } from './deadline.js';
import { carriesBody, type FastRefusal } from './shedding/fast-refusal.js';
import { onResponseEnd } from './response-end.js';
import type { HttpRateLimiter } from './rate-limit/limiter.js';
import { setHeader, type FixedHeaders } from './reply-headers.js';
import type { SecurityHeadersProfile } from './security-headers.js';
import { overloadedBody, type Shedder } from './shedding/shedder.js';
import { endServerSpan, startServerSpan, CLIENT_CLOSED } from './tracing/spans.js';

/** Per-route switches, set as `config: { bulwark: { … } }` on a route. */
export interface BulwarkRouteConfig {
  /** Skip rate limiting and shedding (health, metrics, admin routes). @default false */
  exempt?: boolean;
  /** Apply the rate limiter to this route. @default true unless `exempt` */
  rateLimit?: boolean;
  /** Apply load shedding to this route. @default true unless `exempt` */
  shedding?: boolean;
  /**
   * The security headers this route sends: `document` (helmet's set, for HTML), `api` (OWASP's REST set,
   * for JSON and other non-HTML answers) or `none`. @default 'document'
   */
  securityHeaders?: SecurityHeadersProfile;
  /**
   * Read the `bulwark-timeout-ms` header and run the handler under that deadline (see the kit's
   * `deadlines` option). @default true unless `exempt` (and the kit's `deadlines` is not `false`)
   */
  deadline?: boolean;
}

/** Where a request stands with its concurrency slot (`request.bulwarkAdmission`). */
export const Admission = Object.freeze({
  /** Holds no slot (its route is not shed, or it was refused). */
  None: 0,
  /** Will ask for a slot once its body has been read. */
  AwaitingBody: 1,
  /** Holds a slot, taken at `request.bulwarkAdmittedAt`. */
  Held: 2,
  /** The response closed: nothing may be taken any more. */
  Ended: 3,
} as const);

declare module 'fastify' {
  interface FastifyContextConfig {
    bulwark?: BulwarkRouteConfig;
  }
  interface FastifyRequest {
    /** Where this request stands with its concurrency slot (set by @bulwark/service). */
    bulwarkAdmission: number;
    /** When the slot was taken (`performance.now()`), while `bulwarkAdmission` is held. */
    bulwarkAdmittedAt: number;
    /** The request's server span, while tracing (set by @bulwark/service). */
    bulwarkSpan: Span | null;
    /** The context holding the server span, while tracing. */
    bulwarkTraceContext: Context | null;
  }
}

/** What the hooks need, shared by every route; `draining` and `closing` flip during shutdown. */
export interface Runtime {
  readonly metrics: ServiceMetrics | undefined;
  readonly shedder: Shedder | undefined;
  readonly rateLimiter: HttpRateLimiter | undefined;
  /** How the `bulwark-timeout-ms` header is read (undefined: it is not). */
  readonly deadlines: ResolvedDeadlines | undefined;
  readonly tracing: boolean;
  readonly scheme: 'http' | 'https';
  readonly accessLog: boolean;
  readonly slowRequestMs: number;
  /** The request-id header and each profile's security headers, one of them set on every response. */
  readonly fixedHeaders: Readonly<Record<SecurityHeadersProfile, FixedHeaders>>;
  /** Refusals before Fastify (the kit's raw server, shedding on): the request it let through last. */
  fastRefusal: FastRefusal | undefined;
  /** `Retry-After` of the kit's 503s (shedding, closing), in seconds. */
  readonly retryAfterSeconds: number;
  /** Shutdown began: answers carry `Connection: close`. */
  draining: boolean;
  /** The server is closing (`app.close()`): new requests on routes that are not exempt get 503. */
  closing: boolean;
}

/** The route label of requests that matched no route. */
export const UNMATCHED_ROUTE = 'unmatched';

const METHOD_INDEX: Record<string, number> = {
  GET: 0,
  HEAD: 1,
  POST: 2,
  PUT: 3,
  DELETE: 4,
  PATCH: 5,
  OPTIONS: 6,
  TRACE: 7,
  CONNECT: 8,
};
const OTHER_METHOD = 15;

/** One route's template, switches and cached histogram cells. */
export class RouteState {
  readonly route: string;
  readonly exempt: boolean;
  readonly rateLimited: boolean;
  readonly shed: boolean;
  /** Whether requests of this route run under the caller's deadline. */
  readonly deadline: boolean;
  /** The request id and the route's security headers. */
  readonly headers: FixedHeaders;
  readonly #cells = new Map<number, HistogramCell>();
  readonly #metrics: ServiceMetrics | undefined;

  constructor(route: string, config: BulwarkRouteConfig | undefined, rt: Runtime) {
    this.route = route;
    this.exempt = config?.exempt === true;
    this.rateLimited = rt.rateLimiter !== undefined && (config?.rateLimit ?? !this.exempt);
    this.shed = rt.shedder !== undefined && (config?.shedding ?? !this.exempt);
    this.deadline = rt.deadlines !== undefined && (config?.deadline ?? !this.exempt);
    const profile = config?.securityHeaders ?? 'document';
    if (!Object.hasOwn(rt.fixedHeaders, profile)) {
      throw new InvalidOptionError(
        `route ${route}: config.bulwark.securityHeaders`,
        profile,
        "'document', 'api' or 'none'",
      );
    }
    this.headers = rt.fixedHeaders[profile];
    this.#metrics = rt.metrics;
  }

  observe(method: string, statusCode: number, seconds: number): void {
    const m = METHOD_INDEX[method] ?? OTHER_METHOD;
    const key = statusCode * 16 + m;
    let cell = this.#cells.get(key);
    if (cell === undefined) {
      if (this.#metrics === undefined) return;
      cell = this.#metrics.requestDuration.cell(
        m === OTHER_METHOD ? '_OTHER' : method,
        this.route,
        statusCode,
      );
      this.#cells.set(key, cell);
    }
    cell.observe(seconds);
  }
}

const JSON_TYPE = 'application/json; charset=utf-8';
/** Refusals (503, 429) are never stored by a cache: the next try must reach a server. */
const NO_STORE = 'no-store';

/** Body of a request refused because the server is shutting down (stable: `code` BULWARK_ERR_SHUTTING_DOWN). */
export function shuttingDownBody(retryAfterSeconds: number): string {
  return JSON.stringify({
    statusCode: 503,
    error: 'Service Unavailable',
    code: 'BULWARK_ERR_SHUTTING_DOWN',
    message: `The server is shutting down; retry after ${retryAfterSeconds} s (another instance will answer).`,
  });
}

function rateLimitedBody(retryAfterSeconds: number): string {
  return `{"statusCode":429,"error":"Too Many Requests","code":"BULWARK_ERR_RATE_LIMITED","message":"Rate limit exceeded; retry after ${retryAfterSeconds} s."}`;
}

export interface RouteHooks {
  onRequest(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void;
  /** Takes the slot of a request with a body (registered only on routes that shed and may take one). */
  preValidation(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void;
  preHandler(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void;
}

export function routeHooks(rt: Runtime, state: RouteState): RouteHooks {
  const shedder = state.shed ? rt.shedder : undefined;
  const limiter = state.rateLimited ? rt.rateLimiter : undefined;
  const metrics = rt.metrics;
  const shedConcurrency = metrics?.shed.labels('concurrency');
  const shedEventLoop = metrics?.shed.labels('event_loop');
  const rateLimited = limiter === undefined ? undefined : metrics?.rateLimitRejections.labels(limiter.name);
  const retryAfter = String(rt.retryAfterSeconds);
  const shedBody = overloadedBody(rt.retryAfterSeconds);
  const closingBody = shuttingDownBody(rt.retryAfterSeconds);
  const fixedHeaders = state.headers;
  const route = state.route;
  const aborted = metrics?.aborted;
  const exempt = state.exempt;
  const deadlines = state.deadline ? rt.deadlines : undefined;
  /** Whether anything has to happen when the response closes. */
  const watchEnd = shedder !== undefined || rt.tracing || metrics !== undefined || rt.slowRequestMs > 0;

  const shed = (reply: FastifyReply, reason: 'concurrency' | 'event_loop') => {
    (reason === 'concurrency' ? shedConcurrency : shedEventLoop)?.inc();
    reply
      .code(503)
      .header('retry-after', retryAfter)
      .header('cache-control', NO_STORE)
      .type(JSON_TYPE)
      .send(shedBody);
  };

  /** Takes a slot, or answers 503 and returns false. */
  const admit = (request: FastifyRequest, reply: FastifyReply): boolean => {
    if (!shedder!.limiter.tryAcquire()) {
      request.bulwarkAdmission = Admission.None;
      shed(reply, 'concurrency');
      return false;
    }
    request.bulwarkAdmission = Admission.Held;
    request.bulwarkAdmittedAt = performance.now();
    return true;
  };

  const applyLimit = (
    result: TakeResult,
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ) => {
    // The client went away while the store answered: the request has ended, nothing more to do.
    if (request.bulwarkAdmission === Admission.Ended) return;
    const l = limiter!;
    if (l.headers) {
      setHeader(reply, 'ratelimit-policy', l.policyField);
      setHeader(reply, 'ratelimit', l.field(result.remaining));
    }
    if (result.allowed) {
      done();
      return;
    }
    rateLimited?.inc();
    if (request.bulwarkAdmission === Admission.Held) {
      request.bulwarkAdmission = Admission.None;
      shedder!.abandon();
    } else {
      request.bulwarkAdmission = Admission.None;
    }
    const seconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
    reply
      .code(429)
      .header('retry-after', seconds)
      .header('cache-control', NO_STORE)
      .type(JSON_TYPE)
      .send(rateLimitedBody(seconds));
  };

  /**
   * The one ending of a request: the raw response closed — after it was sent, or because the connection
   * went away first. "Answered" means the whole response was handed to the socket (`end()` ran).
   */
  const end = (request: FastifyRequest, reply: FastifyReply) => {
    const answered = reply.raw.writableEnded;
    const ms = reply.elapsedTime;
    const statusCode = reply.statusCode;
    if (request.bulwarkAdmission === Admission.Held) {
      if (answered)
        shedder!.release(
          performance.now() - request.bulwarkAdmittedAt,
          statusCode === 503 || statusCode === 504,
        );
      else shedder!.abandon();
    }
    request.bulwarkAdmission = Admission.Ended;
    const span = request.bulwarkSpan;
    let traceIds: { trace_id: string; span_id: string } | undefined;
    if (span !== null) {
      request.bulwarkSpan = null;
      request.bulwarkTraceContext = null;
      const sc = span.spanContext();
      traceIds = { trace_id: sc.traceId, span_id: sc.spanId };
      if (!answered) span.setAttribute('bulwark.client_aborted', true);
      endServerSpan(span, answered ? statusCode : CLIENT_CLOSED);
    }
    if (!answered) {
      aborted?.inc({ method: METHOD_INDEX[request.method] === undefined ? '_OTHER' : request.method, route });
      return;
    }
    if (metrics !== undefined) state.observe(request.method, statusCode, ms / 1000);
    if (rt.accessLog) {
      request.log.info(
        {
          method: request.method,
          route,
          path: pathOf(request.url),
          statusCode,
          responseTimeMs: ms,
          ...traceIds,
        },
        'request completed',
      );
    } else if (rt.slowRequestMs > 0 && ms >= rt.slowRequestMs) {
      request.log.warn(
        {
          method: request.method,
          route,
          path: pathOf(request.url),
          statusCode,
          responseTimeMs: ms,
          ...traceIds,
        },
        'slow request',
      );
    }
  };

  return {
    onRequest(request, reply, done) {
      fixedHeaders.apply(reply, request.id as string);
      if (watchEnd) onResponseEnd(request.raw, reply.raw, () => end(request, reply));
      if (rt.draining) setHeader(reply, 'connection', 'close');
      if (rt.tracing) {
        const { span, ctx } = startServerSpan(
          request.method,
          route,
          pathOf(request.url),
          rt.scheme,
          request.headers,
        );
        request.bulwarkSpan = span;
        request.bulwarkTraceContext = ctx;
      }
      if (rt.closing && !exempt) {
        reply
          .code(503)
          .header('retry-after', retryAfter)
          .header('cache-control', NO_STORE)
          .type(JSON_TYPE)
          .send(closingBody);
        return;
      }
      // before a slot is taken: a malformed or spent budget is answered at once (400 / 504)
      if (deadlines !== undefined && !admitDeadline(deadlines, request, reply)) return;
      if (shedder !== undefined) {
        // The gate sheds a random share: a request it let through before Fastify is not asked again.
        const fast = rt.fastRefusal;
        if (fast !== undefined && fast.passed === request.raw) fast.passed = null;
        else if (shedder.gate.shouldShed()) {
          shed(reply, 'event_loop');
          return;
        }
        if (carriesBody(request.method, request.headers)) request.bulwarkAdmission = Admission.AwaitingBody;
        else if (!admit(request, reply)) return;
      }
      if (limiter === undefined) {
        done();
        return;
      }
      const result = limiter.take(limiter.keyOf(request));
      if (result instanceof Promise) {
        result.then(
          (r) => applyLimit(r, request, reply, done),
          () => {
            if (request.bulwarkAdmission !== Admission.Ended) done();
          },
        );
      } else {
        applyLimit(result as TakeResult, request, reply, done);
      }
    },

    preValidation(request, reply, done) {
      const admission = request.bulwarkAdmission;
      if (admission === Admission.AwaitingBody) {
        if (admit(request, reply)) done();
        return;
      }
      // The client went away while its body was read: stop here, nothing was taken.
      if (admission === Admission.Ended) return;
      done();
    },

    preHandler(request, _reply, done) {
      const ctx = request.bulwarkTraceContext;
      if (ctx === null) done();
      else context.with(ctx, done);
    },
  };
}

/** The path without its query string (a query may carry secrets; it is never logged or traced). */
export function pathOf(url: string): string {
  const i = url.indexOf('?');
  return i === -1 ? url : url.slice(0, i);
}
