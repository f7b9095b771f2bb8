/**
 * The kit: `createService(options)` returns a Fastify instance with everything wired —
 * `/livez`, `/readyz`, `/healthz`, `/metrics`, request ids, JSON logs, tracing, rate limiting, load
 * shedding, security headers, server timeouts and the shutdown flag — and `app.bulwark` to reach the
 * parts (add readiness checks, instrument policies, begin shutdown).
 *
 * For a Fastify instance you build yourself: `Fastify(serverOptions(opts))`, then
 * `await app.register(bulwarkService, opts)` **before** adding routes (the kit instruments routes as they
 * are added).
 */
import type { IncomingMessage } from 'node:http';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyRequest,
} from 'fastify';
import fp from 'fastify-plugin';
import type { Disposable } from '@bulwark/core';
import { DeadlineExceededError } from '@bulwark/core';
import { ClientClosedError, deadlinePreHandler, sendDeadlineExceeded } from './deadline.js';
import { FastRefusal, installFastRefusal, preRoutingOf } from './shedding/fast-refusal.js';
import { Health, type HealthCheck, type HealthCheckOptions, type ReadinessReport } from './health.js';
import {
  Admission,
  routeHooks,
  RouteState,
  UNMATCHED_ROUTE,
  type RouteHooks,
  type Runtime,
} from './hooks.js';
import {
  instrumentPolicy,
  PolicyRegistry,
  type InstrumentablePolicy,
  type InstrumentOptions,
} from './instrument.js';
import { ServiceMetrics, safeLabel } from './metrics.js';
import { resolveServiceOptions, type ResolvedServiceOptions, type ServiceOptions } from './options.js';
import { HttpRateLimiter, type RateLimitStatus } from './rate-limit/limiter.js';
import { FixedHeaders } from './reply-headers.js';
import { requestIdGenerator } from './logging.js';
import { securityHeaderSets, type SecurityHeadersProfile } from './security-headers.js';
import { serverOptions } from './server-options.js';
import { overloadedBody, Shedder, SHEDDING_DEFAULTS, type SheddingStatus } from './shedding/shedder.js';
import type { Tracing } from './tracing/setup.js';

/** The detailed report served at `/healthz`. */
export interface HealthReport {
  /** `fail`: a critical check fails (HTTP 503); `degraded`: working with reduced guarantees; else `ok`. */
  status: 'ok' | 'degraded' | 'fail';
  service: string;
  version: string;
  uptimeSeconds: number;
  startedAt: string;
  shuttingDown: boolean;
  checks: ReadinessReport['checks'];
  circuits: Record<string, string>;
  bulkheads: Record<string, { active: number; queued: number }>;
  rateLimit: RateLimitStatus | { enabled: false };
  shedding: (SheddingStatus & { enabled: true }) | { enabled: false };
  tracing: { enabled: boolean; exporters: string; sampler: string };
}

/** `/readyz` as served to a caller without the details token. */
export interface ReadinessSummary {
  status: 'ok' | 'fail';
  shuttingDown?: true;
  checks: Record<string, { status: string; critical: boolean }>;
}

/** `/healthz` as served to a caller without the details token (see `health.details`). */
export interface HealthSummary {
  status: HealthReport['status'];
  service: string;
  version: string;
  uptimeSeconds: number;
  shuttingDown: boolean;
  checks: Record<string, { status: string; critical: boolean }>;
}

/** `app.bulwark`: the kit's parts. */
export interface BulwarkKit {
  readonly options: ResolvedServiceOptions;
  readonly health: Health;
  /** Undefined when `metrics: false`. */
  readonly metrics: ServiceMetrics | undefined;
  /** Undefined unless `rateLimit` is set. */
  readonly rateLimiter: HttpRateLimiter | undefined;
  /** Undefined when `shedding: false`. */
  readonly shedder: Shedder | undefined;
  readonly tracing: Tracing | undefined;
  /** Registers a readiness check (see `Health.addCheck`). */
  addCheck(name: string, check: HealthCheck, options?: HealthCheckOptions): void;
  /** Turns a policy's events and state into `bulwark_*` metrics (a no-op disposable when metrics are off). */
  instrument(policy: InstrumentablePolicy, options?: InstrumentOptions): Disposable;
  /** True once shutdown began. */
  readonly shuttingDown: boolean;
  /** Fails readiness at once and answers new requests with `Connection: close`. Idempotent. */
  beginShutdown(): void;
  /** The `/healthz` report. */
  healthReport(): Promise<HealthReport>;
}

declare module 'fastify' {
  interface FastifyInstance {
    bulwark: BulwarkKit;
  }
}

const KIT_HOOK = Symbol('bulwark.hook');
const EXEMPT = { bulwark: { exempt: true, securityHeaders: 'api' } } as const;

/** One prepared header template per security-header profile, each led by the request id. */
function fixedHeaderSets(
  requestIdHeader: string,
  sets: Readonly<Record<SecurityHeadersProfile, ReadonlyArray<readonly [string, string]>>>,
): Readonly<Record<SecurityHeadersProfile, FixedHeaders>> {
  return Object.freeze({
    document: new FixedHeaders(requestIdHeader, sets.document),
    api: new FixedHeaders(requestIdHeader, sets.api),
    none: new FixedHeaders(requestIdHeader, sets.none),
  });
}
const NO_STORE = 'no-store';

/** Connection errors that only say the client went away (a reset mid-body, a closed pipe). */
const GONE_CODES = new Set(['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE']);

/**
 * Whether `error` only says that the client went away: work that waited on the request's signal ended
 * with it (`ClientClosedError`), or reading the request failed because the connection was reset or closed.
 * Such a request is counted as aborted, never as a server error.
 */
function clientWentAway(request: FastifyRequest, error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === ClientClosedError.code) return true;
  return typeof code === 'string' && GONE_CODES.has(code) && request.raw.socket?.destroyed !== false;
}

/** A Fastify instance with the whole kit installed. Add your routes to it, then `listen`. */
export function createService(options: ServiceOptions = {}): FastifyInstance {
  const o = resolveServiceOptions(options);
  const app = Fastify(serverOptions(o)) as unknown as FastifyInstance;
  installKit(app, o);
  return app;
}

/**
 * The kit as a Fastify plugin, for an instance built elsewhere (pass `serverOptions(opts)` to `Fastify`
 * for the timeouts, logger and request ids). Await the registration before adding routes.
 */
// Typed by name: fp's inferred type is written into the .d.ts as `Fastify.…`, which `moduleResolution:
// bundler` consumers cannot resolve (TS2503).
export const bulwarkService: FastifyPluginAsync<ServiceOptions> = fp(
  async (app: FastifyInstance, options: ServiceOptions) => {
    installKit(app, resolveServiceOptions(options));
  },
  { name: '@bulwark/service', fastify: '5.x' },
);

function installKit(app: FastifyInstance, o: ResolvedServiceOptions): void {
  const health = new Health(o.health);
  const metrics =
    o.metrics === false
      ? undefined
      : new ServiceMetrics(o.metrics, { service: o.serviceName, version: o.version });
  const rateLimiter = o.rateLimit === false ? undefined : new HttpRateLimiter(o.rateLimit);
  const shedder = o.shedding === false ? undefined : new Shedder(o.shedding);
  const policies = new PolicyRegistry();
  const tracing = o.tracing;

  const rt: Runtime = {
    metrics,
    shedder,
    rateLimiter,
    deadlines: o.deadlines === false ? undefined : o.deadlines,
    tracing: tracing?.enabled === true,
    scheme: o.https === undefined ? 'http' : 'https',
    accessLog: o.accessLog,
    slowRequestMs: o.slowRequestMs,
    fixedHeaders: fixedHeaderSets(
      o.requestIdHeader,
      securityHeaderSets(o.securityHeaders, o.https !== undefined),
    ),
    retryAfterSeconds: shedder?.retryAfterSeconds ?? SHEDDING_DEFAULTS.retryAfterSeconds,
    fastRefusal: undefined,
    draining: false,
    closing: false,
  };
  // Refusals under overload before Fastify, on the kit's own server (see shedding/fast-refusal.ts).
  if (shedder !== undefined && FastRefusal.usable(rt) && preRoutingOf(app.server) !== undefined) {
    const genReqId =
      (app as unknown as { genReqId?: (req: IncomingMessage) => string }).genReqId ??
      requestIdGenerator(o.requestIdHeader);
    const refusal = new FastRefusal(rt, shedder, genReqId, overloadedBody(rt.retryAfterSeconds));
    rt.fastRefusal = refusal;
    installFastRefusal(app.server, refusal);
  }

  if (metrics !== undefined && rateLimiter !== undefined) {
    const storeErrors = metrics.rateLimitStoreErrors.labels(rateLimiter.name);
    rateLimiter.policy.onStoreError(() => storeErrors.inc());
  }
  if (metrics !== undefined) {
    metrics.sources = {
      ready: () => health.lastReady,
      inflight: () => shedder?.limiter.inflight ?? 0,
      concurrencyLimit: () => shedder?.limiter.limit ?? 0,
      shedRatio: () => shedder?.gate.shedRatio ?? 0,
      eventLoop: () => shedder?.gate.lastSample ?? { delayMs: 0, utilization: 0 },
      rateLimitDegraded: () =>
        rateLimiter?.redis === undefined ? [] : [[rateLimiter.name, rateLimiter.degraded]],
      circuits: () => policies.circuitValues(),
      bulkheads: () => policies.bulkheadValues(),
    };
  }

  const healthReport = async (): Promise<HealthReport> => {
    const checks = await health.runChecks();
    const circuits: Record<string, string> = {};
    for (const c of policies.circuitValues()) circuits[c.name] = c.state;
    const bulkheads: Record<string, { active: number; queued: number }> = {};
    for (const b of policies.bulkheadValues()) bulkheads[b.name] = { active: b.active, queued: b.queued };
    const rateLimit = rateLimiter?.status();
    const shedding = shedder?.status();
    const degraded =
      Object.values(checks.checks).some((c) => c.status === 'fail') ||
      rateLimit?.degraded === true ||
      Object.values(circuits).some((s) => s !== 'closed') ||
      (shedding !== undefined && (shedding.shedRatio > 0 || shedding.eventLoop.pressured));
    return {
      status: checks.status === 'fail' ? 'fail' : degraded ? 'degraded' : 'ok',
      service: o.serviceName,
      version: o.version,
      uptimeSeconds: Math.round(health.uptimeSeconds() * 1000) / 1000,
      startedAt: health.startedAt.toISOString(),
      shuttingDown: health.shuttingDown,
      checks: checks.checks,
      circuits,
      bulkheads,
      rateLimit: rateLimit ?? { enabled: false },
      shedding: shedding === undefined ? { enabled: false } : { enabled: true, ...shedding },
      tracing: {
        enabled: tracing?.enabled === true,
        exporters: tracing?.exporters ?? 'none',
        sampler: tracing?.sampler ?? 'always_off',
      },
    };
  };

  const kit: BulwarkKit = {
    options: o,
    health,
    metrics,
    rateLimiter,
    shedder,
    tracing,
    addCheck: (name, check, options) => health.addCheck(name, check, options),
    instrument: (policy, options) =>
      metrics === undefined ? { dispose() {} } : instrumentPolicy(metrics, policies, policy, options),
    get shuttingDown() {
      return health.shuttingDown;
    },
    beginShutdown() {
      health.beginShutdown();
      rt.draining = true;
    },
    healthReport,
  };
  app.decorate('bulwark', kit);
  app.decorateRequest('bulwarkAdmission', Admission.None);
  app.decorateRequest('bulwarkAdmittedAt', 0);
  app.decorateRequest('bulwarkSpan', null);
  app.decorateRequest('bulwarkTraceContext', null);
  app.decorateRequest('bulwarkDeadline', 0);

  // Every route added from here on gets its own hooks.
  app.addHook('onRoute', (route) => {
    const onRequest = list(route.onRequest);
    const constrained = route.constraints !== undefined && Object.keys(route.constraints).length > 0;
    if (onRequest.some((h) => (h as Record<symbol, unknown>)[KIT_HOOK] === true)) {
      // e.g. the HEAD twin of a GET: the same hooks, and refused before routing like it
      if (rt.fastRefusal !== undefined && !constrained) {
        for (const m of methods(route.method)) rt.fastRefusal.alias(m, 'GET', route.url);
      }
      return;
    }
    const state = new RouteState(route.url, route.config?.bulwark, rt);
    if (rt.fastRefusal !== undefined) {
      for (const m of methods(route.method)) rt.fastRefusal.addRoute(m, route.url, constrained, state);
    }
    const hooks = routeHooks(rt, state);
    mark(hooks);
    // Ours run first on the way in (before the route's own).
    route.onRequest = [hooks.onRequest, ...onRequest] as never;
    // A request with a body takes its slot once the body is read (only methods Fastify reads a body for).
    if (state.shed && methods(route.method).some((m) => m !== 'GET' && m !== 'HEAD')) {
      route.preValidation = [hooks.preValidation, ...list(route.preValidation)] as never;
    }
    if (rt.tracing) route.preHandler = [...list(route.preHandler), hooks.preHandler] as never;
    // Last before the handler: the handler (and what it starts) runs under the request's deadline.
    if (state.deadline) route.preHandler = [...list(route.preHandler), deadlinePreHandler] as never;
  });

  // Requests that match no route: the same hooks, labelled `unmatched` (never holding a slot while a body
  // arrives: a 404 with a body takes none).
  const unmatched: RouteHooks = routeHooks(
    rt,
    new RouteState(UNMATCHED_ROUTE, { shedding: false, deadline: false }, rt),
  );
  app.addHook('onRequest', (request, reply, done) => {
    if (request.is404) unmatched.onRequest(request, reply, done);
    else done();
  });
  if (rt.tracing) {
    app.addHook('preHandler', (request, reply, done) => {
      if (request.is404) unmatched.preHandler(request, reply, done);
      else done();
    });
  }
  if (metrics !== undefined) {
    app.addHook('onError', (request, _reply, error, done) => {
      const route = request.is404 ? UNMATCHED_ROUTE : (request.routeOptions.url ?? UNMATCHED_ROUTE);
      // a client that went away is counted once, as an aborted request, not as an error
      if (!clientWentAway(request, error)) {
        metrics.errors.inc({
          method: request.method,
          route,
          code: safeLabel((error as { code?: unknown }).code, 'ERR_UNKNOWN'),
        });
      }
      done();
    });
  }

  // Errors no handler answered. An error that carries an HTTP status was made for the client (Fastify's
  // own, a validation error, an http-errors one): answered as Fastify would, logged once when 5xx. Any
  // other error is a bug or an outage: logged once, with the request id, and answered with a generic
  // message — its text may hold internals (a query, a password) and never goes to the client. An
  // application's own `setErrorHandler` replaces this one.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    // The client went away before its answer (work waiting on the request's signal ended with it): no
    // one reads an answer and nothing is wrong; a debug line, and the kit counts it as aborted.
    if ((error as { code?: unknown }).code === ClientClosedError.code) {
      request.log.debug('the client closed the connection before the answer');
      reply.code(499).send();
      return;
    }
    // The request's deadline passed (the caller has given up): a short 504, nothing logged.
    if ((error as { code?: unknown }).code === DeadlineExceededError.code) {
      sendDeadlineExceeded(reply);
      return;
    }
    const status = error.statusCode;
    if (typeof status === 'number' && status >= 400 && status <= 599) {
      if (status >= 500) request.log.error({ err: error, statusCode: status }, 'request failed');
      reply.code(status).send(error);
      return;
    }
    request.log.error({ err: error }, 'unhandled error');
    reply
      .code(500)
      .type('application/json; charset=utf-8')
      .send(internalErrorBody(request.id as string));
  });
  // This handler is a default: an application's own `setErrorHandler` in the same scope replaces it
  // without Fastify's "overriding an errorHandler" warning (FSTWRN004), which is meant for two handlers
  // an application set itself. Fastify keeps the flag behind a symbol (as `reply-headers.ts` notes, its
  // internals are reached by description); where it is missing, the warning is all that changes.
  const alreadySet = Object.getOwnPropertySymbols(app).find(
    (s) => s.description === 'fastify.errorHandlerAlreadySet',
  );
  if (alreadySet !== undefined) (app as unknown as Record<symbol, unknown>)[alreadySet] = false;

  // The kit's own routes: exempt from rate limiting and shedding, never cached.
  app.get('/livez', { config: EXEMPT }, async (_request, reply) => {
    reply.header('cache-control', NO_STORE);
    return { status: 'ok' };
  });
  app.get('/readyz', { config: EXEMPT }, async (request, reply) => {
    const report = await health.readiness();
    reply.header('cache-control', NO_STORE);
    if (report.status !== 'ok') reply.code(503).header('retry-after', rt.retryAfterSeconds);
    return health.showDetails(request.headers.authorization) ? report : summarize(report);
  });
  app.get('/healthz', { config: EXEMPT }, async (request, reply) => {
    const report = await healthReport();
    reply.header('cache-control', NO_STORE);
    if (report.status === 'fail') reply.code(503).header('retry-after', rt.retryAfterSeconds);
    return health.showDetails(request.headers.authorization) ? report : summarizeHealth(report);
  });
  if (metrics !== undefined && metrics.path !== '') {
    app.get(metrics.path, { config: EXEMPT }, async (_request, reply) => {
      const { contentType, body } = await metrics.expose();
      reply.type(contentType).header('cache-control', NO_STORE);
      return body;
    });
  }

  // Lifecycle: start sampling, wait briefly for Redis, log store changes, release everything on close.
  app.addHook('onReady', async () => {
    shedder?.start();
    if (rateLimiter?.redis !== undefined) {
      rateLimiter.onHealthChange((e) => {
        if (e.degraded) {
          app.log.warn(
            {
              rateLimit: rateLimiter.name,
              onStoreError: rateLimiter.onStoreError,
              err: errorMessage(e.error),
            },
            `rate-limit store unavailable; applying onStoreError "${rateLimiter.onStoreError}"`,
          );
        } else {
          app.log.info({ rateLimit: rateLimiter.name }, 'rate-limit store available again');
        }
      });
      const connected = await rateLimiter.connected(2000);
      if (!connected) {
        app.log.warn(
          { rateLimit: rateLimiter.name, onStoreError: rateLimiter.onStoreError },
          'rate-limit store not reachable at start; serving with onStoreError until it is',
        );
      }
    }
  });
  // app.close(): from now on requests on routes that are not exempt get 503 + Retry-After (and the
  // connection closes); the kit's own routes answer until the server is gone (liveness stays 200).
  app.addHook('preClose', (done) => {
    kit.beginShutdown();
    rt.closing = true;
    done();
  });
  app.addHook('onClose', async () => {
    shedder?.stop();
    await rateLimiter?.close();
  });
}

/** A route option that may hold one hook or an array of them, as an array. */
function list(value: unknown): unknown[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function mark(hooks: RouteHooks): void {
  for (const fn of [hooks.onRequest, hooks.preValidation, hooks.preHandler]) {
    Object.defineProperty(fn, KIT_HOOK, { value: true });
  }
}

function methods(method: string | string[]): string[] {
  return Array.isArray(method) ? method : [method];
}

/** The body of a 500 whose error is not the client's: generic, with the request id to quote. */
function internalErrorBody(requestId: string): string {
  return JSON.stringify({
    statusCode: 500,
    error: 'Internal Server Error',
    code: 'BULWARK_ERR_INTERNAL',
    message: `Internal error; it has been logged with request id ${requestId}.`,
  });
}

/** `/readyz` without details: each check's status only (no error text, no details). */
function summarize(report: ReadinessReport): ReadinessSummary {
  const checks: Record<string, { status: string; critical: boolean }> = {};
  for (const [name, c] of Object.entries(report.checks))
    checks[name] = { status: c.status, critical: c.critical };
  return { status: report.status, ...(report.shuttingDown ? { shuttingDown: true } : {}), checks };
}

/** `/healthz` without details: status, identity, uptime and each check's status. */
function summarizeHealth(report: HealthReport): HealthSummary {
  return {
    status: report.status,
    service: report.service,
    version: report.version,
    uptimeSeconds: report.uptimeSeconds,
    shuttingDown: report.shuttingDown,
    checks: summarize({ status: 'ok', checks: report.checks }).checks,
  };
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export type { ServiceOptions, ResolvedServiceOptions };
