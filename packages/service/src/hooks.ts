/**
 * The per-request work of the kit, as route-level hooks built once per route (in `onRoute`), so the hot
 * path does no lookups: each route's hooks close over its template, its exemptions and its histogram
 * cells. Requests that match no route get the same treatment through global hooks that bail out at once
 * for matched routes.
 *
 * onRequest: echo the request id → security headers → `Connection: close` while draining → server span → shed (503) →
 * rate limit (429). onResponse: histogram → release the concurrency slot → end the span → slow/access log.
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { context, type Context, type Span } from '@opentelemetry/api';
import { InvalidOptionError, type TakeResult } from '@bulwark/core';
import type { HistogramCell } from './duration-histogram.js';
import type { ServiceMetrics } from './metrics.js';
import type { HttpRateLimiter } from './rate-limit.js';
import { setHeader, type FixedHeaders } from './reply-headers.js';
import type { SecurityHeadersProfile } from './security-headers.js';
import type { Shedder } from './shedder.js';
import { endServerSpan, startServerSpan } from './tracing.js';

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
}

declare module 'fastify' {
  interface FastifyContextConfig {
    bulwark?: BulwarkRouteConfig;
  }
  interface FastifyRequest {
    /** True while this request holds a concurrency slot (set by @bulwark/service). */
    bulwarkAdmitted: boolean;
    /** The request's server span, while tracing (set by @bulwark/service). */
    bulwarkSpan: Span | null;
    /** The context holding the server span, while tracing. */
    bulwarkTraceContext: Context | null;
  }
}

/** What the hooks need, shared by every route; `draining` flips when shutdown begins. */
export interface Runtime {
  readonly metrics: ServiceMetrics | undefined;
  readonly shedder: Shedder | undefined;
  readonly rateLimiter: HttpRateLimiter | undefined;
  readonly tracing: boolean;
  readonly scheme: 'http' | 'https';
  readonly accessLog: boolean;
  readonly slowRequestMs: number;
  /** The request-id header and each profile's security headers, one of them set on every response. */
  readonly fixedHeaders: Readonly<Record<SecurityHeadersProfile, FixedHeaders>>;
  draining: boolean;
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
  readonly rateLimited: boolean;
  readonly shed: boolean;
  /** The request id and the route's security headers. */
  readonly headers: FixedHeaders;
  readonly #cells = new Map<number, HistogramCell>();
  readonly #metrics: ServiceMetrics | undefined;

  constructor(route: string, config: BulwarkRouteConfig | undefined, rt: Runtime) {
    this.route = route;
    const exempt = config?.exempt === true;
    this.rateLimited = rt.rateLimiter !== undefined && (config?.rateLimit ?? !exempt);
    this.shed = rt.shedder !== undefined && (config?.shedding ?? !exempt);
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

/** Body of a shed response (stable: `code` BULWARK_ERR_OVERLOADED). */
export function overloadedBody(retryAfterSeconds: number): string {
  return JSON.stringify({
    statusCode: 503,
    error: 'Service Unavailable',
    code: 'BULWARK_ERR_OVERLOADED',
    message: `The server is overloaded; retry after ${retryAfterSeconds} s.`,
  });
}

function rateLimitedBody(retryAfterSeconds: number): string {
  return `{"statusCode":429,"error":"Too Many Requests","code":"BULWARK_ERR_RATE_LIMITED","message":"Rate limit exceeded; retry after ${retryAfterSeconds} s."}`;
}

export interface RouteHooks {
  onRequest(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void;
  preHandler(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void;
  onResponse(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void;
  onRequestAbort(request: FastifyRequest, done: HookHandlerDoneFunction): void;
}

export function routeHooks(rt: Runtime, state: RouteState): RouteHooks {
  const shedder = state.shed ? rt.shedder : undefined;
  const limiter = state.rateLimited ? rt.rateLimiter : undefined;
  const metrics = rt.metrics;
  const shedConcurrency = metrics?.shed.labels('concurrency');
  const shedEventLoop = metrics?.shed.labels('event_loop');
  const rateLimited = limiter === undefined ? undefined : metrics?.rateLimitRejections.labels(limiter.name);
  const retryAfter = String(shedder?.retryAfterSeconds ?? 1);
  const shedBody = overloadedBody(shedder?.retryAfterSeconds ?? 1);
  const fixedHeaders = state.headers;
  const route = state.route;
  const aborted = metrics?.aborted;

  const applyLimit = (
    result: TakeResult,
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ) => {
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
    if (request.bulwarkAdmitted) {
      request.bulwarkAdmitted = false;
      rt.shedder!.abandon();
    }
    const seconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
    reply.code(429).header('retry-after', seconds).type(JSON_TYPE).send(rateLimitedBody(seconds));
  };

  return {
    onRequest(request, reply, done) {
      fixedHeaders.apply(reply, request.id as string);
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
      if (shedder !== undefined) {
        const reason = shedder.admit();
        if (reason !== undefined) {
          (reason === 'concurrency' ? shedConcurrency : shedEventLoop)?.inc();
          reply.code(503).header('retry-after', retryAfter).type(JSON_TYPE).send(shedBody);
          return;
        }
        request.bulwarkAdmitted = true;
      }
      if (limiter === undefined) {
        done();
        return;
      }
      const result = limiter.take(limiter.keyOf(request));
      if (result instanceof Promise) {
        result.then(
          (r) => applyLimit(r, request, reply, done),
          () => done(),
        );
      } else {
        applyLimit(result as TakeResult, request, reply, done);
      }
    },

    preHandler(request, _reply, done) {
      const ctx = request.bulwarkTraceContext;
      if (ctx === null) done();
      else context.with(ctx, done);
    },

    onResponse(request, reply, done) {
      const statusCode = reply.statusCode;
      const ms = reply.elapsedTime;
      if (metrics !== undefined) state.observe(request.method, statusCode, ms / 1000);
      if (request.bulwarkAdmitted) {
        request.bulwarkAdmitted = false;
        rt.shedder!.release(ms, statusCode === 503 || statusCode === 504);
      }
      const span = request.bulwarkSpan;
      let traceIds: { trace_id: string; span_id: string } | undefined;
      if (span !== null) {
        request.bulwarkSpan = null;
        request.bulwarkTraceContext = null;
        const sc = span.spanContext();
        traceIds = { trace_id: sc.traceId, span_id: sc.spanId };
        endServerSpan(span, statusCode);
      }
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
      done();
    },

    // The client went away before the response: free the slot and end the span (onResponse never runs).
    onRequestAbort(request, done) {
      if (request.bulwarkAdmitted) {
        request.bulwarkAdmitted = false;
        rt.shedder!.abandon();
      }
      const span = request.bulwarkSpan;
      if (span !== null) {
        request.bulwarkSpan = null;
        request.bulwarkTraceContext = null;
        span.setAttribute('bulwark.client_aborted', true);
        endServerSpan(span, CLIENT_CLOSED);
      }
      aborted?.inc({ method: METHOD_INDEX[request.method] === undefined ? '_OTHER' : request.method, route });
      done();
    },
  };
}

/** Status recorded on the span of a request whose client disconnected (nginx's convention). */
const CLIENT_CLOSED = 499;

/** The path without its query string (a query may carry secrets; it is never logged or traced). */
function pathOf(url: string): string {
  const i = url.indexOf('?');
  return i === -1 ? url : url.slice(0, i);
}
