/**
 * `createGcdServer(config)`: the whole service as a factory a test can call without globals — no
 * `process.env`, no signal handlers, no listening until `listen()`. `main.ts` wires the process.
 *
 * The production features come from @bulwark/service (`createService`): `/livez`, `/readyz`,
 * `/healthz`, `/metrics`, JSON logs with request ids, server spans, per-client rate limiting (Redis
 * when `REDIS_URL` is set), adaptive load shedding, security headers and server timeouts. This file
 * adds the gcd routes (or the validator's), the service's own error pages, its readiness checks and
 * metrics, the worker pool, the validator client and the TLS reload.
 */
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import formbody from '@fastify/formbody';
import { DeadlineExceededError, type Subscribe } from '@bulwark/core';
import { EventEmitter } from '@bulwark/core/internal';
import {
  ClientClosedError,
  createService,
  FleetBreaker,
  type FleetMalformedEvent,
  type FleetTripEvent,
  type ServiceOptions,
  type Tracing,
} from '@bulwark/service';
import type { DestinationStream } from 'pino';
import { createGameDay, type GameDay } from './chaos.js';
import { configErrorOf, describeConfig, type GcdConfig } from './config.js';
import { GcdComputer } from './compute.js';
import { GcdError } from './errors.js';
import { errorPage, type FormValues } from './html.js';
import { GcdMetrics } from './metrics.js';
import { registerGcdRoutes, type HtmlRouteConfig } from './routes.js';
import { keyFileTooOpen, readTlsFiles, TlsReloader, type TlsReloadResult } from './tls.js';
import { registerValidatorRoutes } from './validator.js';
import { ValidatorClient } from './validator-client.js';

/** Things a test (or an embedding program) may inject; production uses the defaults. */
export interface GcdServerDeps {
  /** Where JSON logs go. @default stdout */
  readonly logStream?: DestinationStream;
  /** Worker module for the pool. @default dist/src/worker.js */
  readonly workerFile?: URL;
  /** Tracing from `setupTracing()` (main.ts sets it up from `OTEL_*`). @default off */
  readonly tracing?: Tracing;
  /** How often the fleet breaker's malformed messages are summed up in one log line, in ms. @default 10 000 */
  readonly fleetLogIntervalMs?: number;
}

export interface TlsReloadEvent {
  readonly result: TlsReloadResult;
  readonly reason: string;
}

export interface GcdServer {
  readonly app: FastifyInstance;
  readonly config: GcdConfig;
  /** The compute engine (gcd mode only). */
  readonly computer: GcdComputer | undefined;
  /** The upstream validator client (gcd mode with `VALIDATOR_URL` only). */
  readonly validator: ValidatorClient | undefined;
  /** The validator breaker's link to the fleet (VALIDATOR_FLEET_BREAKER) only. */
  readonly fleet: FleetBreaker | undefined;
  /** The game day's fault injection (`CHAOS_*` rates above 0) only. */
  readonly gameDay: GameDay | undefined;
  /**
   * Switches the game day's injections off or on (`undefined`: flip), logged at warn with `by` (e.g.
   * `SIGUSR2`). Returns the new state, or undefined when no `CHAOS_*` rate is set (logged too).
   */
  switchChaos(by: string, enabled?: boolean): boolean | undefined;
  /** Starts listening; resolves with the base URL (`http://127.0.0.1:3000`). */
  listen(): Promise<string>;
  /** Re-reads the TLS files (no-op result when TLS is off). */
  reloadTls(reason?: string): TlsReloadResult;
  /** Every TLS reload, by SIGHUP, by hand or on a file change (after it was logged). */
  readonly onTlsReload: Subscribe<TlsReloadEvent>;
  /** Closes the server (drains in-flight requests), then the pool, the validator client, the TLS watch. */
  close(): Promise<void>;
}

/** At most one log line per this many ms for overload refusals (the count of the others is logged). */
const OVERLOAD_LOG_INTERVAL_MS = 1000;

/** Runs a log call at most once per interval; the call gets how many were skipped since the last one. */
class ThrottledLog {
  #last = -Infinity;
  #suppressed = 0;
  constructor(readonly intervalMs: number) {}
  maybe(write: (suppressed: number) => void): void {
    const now = performance.now();
    if (now - this.#last < this.intervalMs) {
      this.#suppressed++;
      return;
    }
    write(this.#suppressed);
    this.#last = now;
    this.#suppressed = 0;
  }
}

/** The listen backlog asked for (Node's default is 511). */
const LISTEN_BACKLOG = 4096;

/** At most one "validator unavailable" log line per this many ms (the count of the others is logged). */
const FALLBACK_LOG_INTERVAL_MS = 1000;
/** The fleet breaker's malformed (or muted) messages: the first one logged, then a sum per interval. */
const FLEET_LOG_INTERVAL_MS = 10_000;

const VERSION = readVersion();

/** The page's Content-Security-Policy: only same-origin scripts, styles and form targets. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self';base-uri 'self';font-src 'self';form-action 'self';frame-ancestors 'none';" +
  "img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self'";

/** The kit's options for this configuration. */
export function kitOptions(
  config: GcdConfig,
  deps: GcdServerDeps,
  https: ServiceOptions['https'],
): ServiceOptions {
  return {
    serviceName: config.mode === 'validator' ? 'gcd-validator' : 'gcd-service',
    version: VERSION,
    logLevel: config.logLevel,
    ...(deps.logStream === undefined ? {} : { logStream: deps.logStream }),
    accessLog: config.accessLog,
    bodyLimitBytes: config.bodyLimitBytes,
    maxHeaderBytes: config.maxHeaderBytes,
    headersTimeoutMs: config.headersTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    keepAliveTimeoutMs: config.keepAliveTimeoutMs,
    // No Fastify handlerTimeout: it would cost every request an AbortController, a timer and a listener.
    // HANDLER_TIMEOUT_MS bounds the requests that wait (validator, pool) in routes.ts; inline work is
    // bounded by INLINE_MAX_DIGITS and cannot be interrupted by a timer anyway.
    trustProxy: typeof config.trustProxy === 'boolean' ? config.trustProxy : [...config.trustProxy],
    ...(https === undefined ? {} : { https }),
    // helmet's defaults, tightened for a page with no inline style: style-src 'self' only, and no
    // framing at all. Over plain HTTP, upgrade-insecure-requests would send the form to a port without TLS.
    securityHeaders: {
      contentSecurityPolicy:
        https === undefined
          ? CONTENT_SECURITY_POLICY
          : `${CONTENT_SECURITY_POLICY};upgrade-insecure-requests`,
    },
    metrics: {},
    health: config.healthDetailsToken === undefined ? {} : { details: { token: config.healthDetailsToken } },
    rateLimit:
      config.rateLimit === undefined
        ? false
        : { ...config.rateLimit, ...(config.redisUrl === undefined ? {} : { redisUrl: config.redisUrl }) },
    shedding: config.shedding,
    ...(deps.tracing === undefined ? {} : { tracing: deps.tracing }),
  };
}

export async function createGcdServer(config: GcdConfig, deps: GcdServerDeps = {}): Promise<GcdServer> {
  const https = config.tls === undefined ? undefined : readTlsFiles(config.tls);
  let app: ReturnType<typeof createService>;
  try {
    app = createService(kitOptions(config, deps, https));
  } catch (error) {
    // The kit checks its own options (e.g. headersTimeoutMs ≤ requestTimeoutMs): say it in variables.
    throw configErrorOf(error) ?? error;
  }
  const kit = app.bulwark;

  let computer: GcdComputer | undefined;
  let validator: ValidatorClient | undefined;
  let fleet: FleetBreaker | undefined;
  let stopFleetLogs: (() => void) | undefined;
  let metrics: GcdMetrics | undefined;
  // The game day's policies; the compute fault throws the pool's own "worker failed" refusal.
  let workerFailed: unknown;
  const gameDay = config.chaos === undefined ? undefined : createGameDay(config.chaos, () => workerFailed);
  for (const [name, policy] of gameDay?.policies ?? []) kit.instrument(policy, { name });
  if (config.mode === 'validator') {
    registerValidatorRoutes(app, { maxDigits: config.maxDigits });
  } else {
    await app.register(formbody, { bodyLimit: config.bodyLimitBytes });
    computer = new GcdComputer({
      inlineMaxDigits: config.inlineMaxDigits,
      computeTimeoutMs: config.computeTimeoutMs,
      poolMaxThreads: config.poolMaxThreads,
      poolMaxQueue: config.poolMaxQueue,
      poolMaxWaitMs: config.poolMaxWaitMs,
      ...(deps.workerFile === undefined ? {} : { workerFile: deps.workerFile }),
      ...(gameDay?.compute === undefined ? {} : { chaos: gameDay.compute }),
    });
    workerFailed = computer.workerFailedError;
    const pool = computer;
    kit.instrument(pool.bulkhead, { name: 'gcd-pool' });
    kit.addCheck('worker-pool', () => {
      if (pool.threads === 0) throw new Error('no worker thread is running');
      return { threads: pool.threads, inFlight: pool.inFlight, queued: pool.queueSize };
    });
    if (config.validator !== undefined) {
      const client = new ValidatorClient(config.validator, {
        ...(gameDay === undefined ? {} : { chaos: gameDay.validator }),
      });
      validator = client;
      for (const [name, policy] of Object.entries(client.policies)) kit.instrument(policy, { name });
      // Not critical: when the validator is away the service still answers (locally), so it stays ready.
      kit.addCheck(
        'validator',
        () => {
          const state = client.breaker.state;
          if (state !== 'closed') {
            throw new Error(`validator breaker ${state}: numbers are validated locally (local-fallback)`);
          }
          return { url: config.validator!.url, breaker: state, fallbacks: client.fallbacks };
        },
        { critical: false },
      );
      watchValidator(app, client);
      if (config.validator.fleetBreaker === true && config.redisUrl !== undefined) {
        ({ fleet, stopLogs: stopFleetLogs } = shareValidatorBreaker(app, client, {
          validatorUrl: config.validator.url,
          redisUrl: config.redisUrl,
          secret: config.fleetBreakerSecret,
          logIntervalMs: deps.fleetLogIntervalMs ?? FLEET_LOG_INTERVAL_MS,
        }));
      }
    }
    metrics = kit.metrics === undefined ? undefined : new GcdMetrics(kit.metrics.registry, pool, validator);
    const counted = metrics;
    const client = validator;
    registerGcdRoutes(app, {
      maxDigits: config.maxDigits,
      handlerTimeoutMs: config.handlerTimeoutMs,
      computer: pool,
      validate:
        client === undefined
          ? undefined
          : async (pair, signal) => {
              try {
                const mode = await client.check(pair, signal);
                counted?.validations[mode].inc();
                return mode;
              } catch (error) {
                if (error instanceof GcdError) counted?.validations.rejected.inc();
                throw error;
              }
            },
      onLocal: counted === undefined ? undefined : () => counted.validations.local.inc(),
    });
  }

  // Overload refusals (503 busy, compute timeout) are counted in gcd_computations_total and logged at most
  // once a second with the number left out: under overload a line per refusal would cost more than the
  // refusal itself.
  const overloadLog = new ThrottledLog(OVERLOAD_LOG_INTERVAL_MS);

  /** Answers an error as JSON, or as the form page with the explanation for HTML routes. */
  function sendError(request: FastifyRequest, reply: FastifyReply, error: GcdError): FastifyReply {
    if (error.statusCode >= 500) {
      overloadLog.maybe((suppressed) => request.log.warn({ code: error.code, suppressed }, error.message));
    }
    reply.code(error.statusCode).headers(error.headers).header('cache-control', 'no-store');
    if ((request.routeOptions.config as HtmlRouteConfig | undefined)?.html === true) {
      const body = request.body as Record<string, unknown> | null | undefined;
      const values: FormValues = {
        ...(typeof body?.n === 'string' ? { n: body.n } : {}),
        ...(typeof body?.m === 'string' ? { m: body.m } : {}),
      };
      return reply
        .type('text/html; charset=utf-8')
        .send(errorPage(error.statusCode, error.code, error.message, values, config.maxDigits));
    }
    return reply.type('application/json; charset=utf-8').send(error.json);
  }

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    const allowed = METHODS.filter((method) => app.hasRoute({ method, url: path }));
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '));
      return sendError(
        request,
        reply,
        new GcdError(
          'GCD_ERR_METHOD_NOT_ALLOWED',
          `${request.method} is not allowed on ${path}; use ${allowed.join(' or ')}.`,
        ),
      );
    }
    return sendError(
      request,
      reply,
      new GcdError(
        'GCD_ERR_NOT_FOUND',
        config.mode === 'validator'
          ? `No route ${request.method} ${path}. This is the gcd validator: POST /validate with {"n": "…", "m": "…"}.`
          : `No route ${request.method} ${path}. Try GET / (the form), POST /gcd, or GET /api/gcd?n=12&m=18.`,
      ),
    );
  });

  app.setErrorHandler((error: FastifyError | GcdError, request, reply) => {
    // The client went away while its request waited (the validator, the pool): nobody reads an answer
    // and nothing is wrong — a debug line; the kit counts it as aborted, not as an error.
    if ((error as { code?: unknown }).code === ClientClosedError.code) {
      request.log.debug('the client closed the connection before the answer');
      return reply.code(499).send();
    }
    return sendError(request, reply, toGcdError(error, request, config));
  });

  let reloader: TlsReloader | undefined;
  const tlsReloads = new EventEmitter<TlsReloadEvent>();
  app.addHook('onClose', async () => {
    reloader?.close();
    metrics?.dispose();
    await computer?.close();
    stopFleetLogs?.();
    await fleet?.close();
    await validator?.close();
  });

  let closed: Promise<void> | undefined;
  return {
    app,
    config,
    computer,
    validator,
    fleet,
    gameDay,
    switchChaos(by, enabled) {
      if (gameDay === undefined) {
        app.log.warn({ by }, 'chaos switch ignored: no CHAOS_* rate is set');
        return undefined;
      }
      const on = gameDay.setEnabled(enabled ?? !gameDay.enabled);
      app.log.warn(
        { by, chaos: on ? 'on' : 'off', policies: [...gameDay.policies.keys()] },
        `chaos injection switched ${on ? 'on' : 'off'} by ${by}`,
      );
      return on;
    },
    onTlsReload: tlsReloads.subscribe,
    async listen() {
      // One line per address: "gcd-service (gcd) listening on http://127.0.0.1:3000". The backlog is
      // raised from Node's 511 (the kernel caps it at net.core.somaxconn): under a burst of new
      // connections a probe's connection waits in the queue, not for a SYN retransmit (1 s, then 3 s).
      await app.listen({
        port: config.port,
        host: config.host,
        backlog: LISTEN_BACKLOG,
        // Fastify names the scheme http:// for a server it did not create (the kit's factory): say https.
        listenTextResolver: (address) =>
          `${app.bulwark.options.serviceName} (${config.mode}) listening on ${
            config.tls === undefined ? address : address.replace(/^http:/, 'https:')
          }`,
      });
      app.log.info({ config: describeConfig(config) }, 'configuration');
      if (config.chaos !== undefined) {
        app.log.warn(
          { chaos: config.chaos, policies: [...(gameDay?.policies.keys() ?? [])] },
          'chaos injection is ON (game day): faults and latency are injected on purpose; SIGUSR2 switches it off',
        );
      }
      if (config.tls !== undefined) {
        if (keyFileTooOpen(config.tls.keyFile)) {
          app.log.warn(
            { file: config.tls.keyFile },
            'TLS key file is readable by others (or writable by its group)',
          );
        }
        reloader = new TlsReloader(app.server as unknown as HttpsServer, config.tls, (result, reason) => {
          if (result.ok) app.log.info({ reason }, 'TLS certificate reloaded');
          else app.log.error({ reason, err: result.error }, 'TLS reload failed; keeping the old certificate');
          if (tlsReloads.active) tlsReloads.emit({ result, reason });
        });
        if (config.tls.watch) reloader.watch();
      }
      if (config.redisUrl !== undefined && config.rateLimit === undefined) {
        if (fleet !== undefined) {
          app.log.info(
            "REDIS_URL is used to share the validator breaker's trips (VALIDATOR_FLEET_BREAKER=true); not for rate limiting, which is off (RATE_LIMIT_PER_SECOND=0)",
          );
        } else {
          app.log.warn(
            'REDIS_URL is set but not used: rate limiting is off (RATE_LIMIT_PER_SECOND=0) and the fleet breaker too (VALIDATOR_FLEET_BREAKER)',
          );
        }
      }
      const address = app.server.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `${config.tls === undefined ? 'http' : 'https'}://${host}:${address.port}`;
    },
    reloadTls(reason = 'manual') {
      if (reloader === undefined) return { ok: false, error: 'TLS is not enabled' };
      return reloader.reload(reason);
    },
    close() {
      closed ??= app.close().then(() => undefined);
      return closed;
    },
  };
}

/** Logs the validator's breaker transitions, and fallbacks at most once a second. */
function watchValidator(app: FastifyInstance, client: ValidatorClient): void {
  client.breaker.onStateChange((e) => {
    const level = e.to === 'closed' ? 'info' : 'warn';
    app.log[level](
      { breaker: e.name, from: e.from, to: e.to, reason: e.reason },
      `validator breaker ${e.to}`,
    );
  });
  let lastLog = -Infinity;
  let suppressed = 0;
  client.onFallback((e) => {
    const now = performance.now();
    if (now - lastLog < FALLBACK_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    app.log.warn(
      { reason: e.reason, err: e.message, breaker: e.breakerState, suppressed },
      'validator unavailable: using local validation (x-gcd-validation: local-fallback)',
    );
    lastLog = now;
    suppressed = 0;
  });
}

/**
 * VALIDATOR_FLEET_BREAKER: the validator breaker's own trips go to every instance on this Redis, and
 * theirs come here (applied as `open({ by: 'fleet:<instance>' })`). Redis trouble is logged once per
 * outage; the local breaker goes on deciding by itself meanwhile. Malformed messages (garbage, or
 * unsigned / badly signed ones with VALIDATOR_FLEET_BREAKER_SECRET) and trips ignored while muted are
 * each counted by the link; the log gets the first one, then one sum per interval while more arrive —
 * never a line (nor a stack) per message: anyone who can PUBLISH could otherwise flood every instance's log.
 */
function shareValidatorBreaker(
  app: FastifyInstance,
  client: ValidatorClient,
  options: {
    validatorUrl: string;
    redisUrl: string;
    secret: string | undefined;
    logIntervalMs: number;
  },
): { fleet: FleetBreaker; stopLogs: () => void } {
  // Instances share trips only for the same validator (its host and port name the channel).
  const name = `gcd-validator:${new URL(options.validatorUrl).host}`;
  const fleet = new FleetBreaker({
    breaker: client.breaker,
    url: options.redisUrl,
    name,
    ...(options.secret === undefined ? {} : { secret: options.secret }),
  });
  let failing = false;
  const malformed = throttledLog<FleetMalformedEvent>(options.logIntervalMs, (count, last) =>
    app.log.warn(
      { count, total: fleet.malformed, reason: last.reason, sample: last.sample },
      `fleet breaker: ${count} malformed message${count === 1 ? '' : 's'} ignored in the last ${options.logIntervalMs / 1000} s`,
    ),
  );
  const muted = throttledLog<FleetTripEvent>(options.logIntervalMs, (count, last) =>
    app.log.warn(
      { count, from: last.trip.instance, reason: last.trip.reason },
      `fleet breaker: ${count} trip${count === 1 ? '' : 's'} from other instances ignored in the last ${options.logIntervalMs / 1000} s: the validator answered this instance's probe after the last one`,
    ),
  );
  fleet.onMalformed((e) => {
    malformed.add(e, () =>
      app.log.warn(
        { reason: e.reason, via: e.via, sample: e.sample, total: e.count },
        'fleet breaker: ignored a malformed message (more are summed up)',
      ),
    );
  });
  fleet.onRemoteTrip((e) => {
    if (e.muted) {
      muted.add(e, () =>
        app.log.warn(
          { breaker: 'validator', from: e.trip.instance, reason: e.trip.reason },
          "fleet breaker: ignored a trip from another instance: the validator answered this instance's probe after the last one (more are summed up)",
        ),
      );
      return;
    }
    if (e.applied) {
      app.log.warn(
        { breaker: 'validator', from: e.trip.instance, reason: e.trip.reason, via: e.via },
        'validator breaker opened by another instance',
      );
    }
  });
  fleet.onError((e) => {
    if (failing) return;
    failing = true;
    app.log.warn(
      { during: e.during, err: e.error },
      'fleet breaker: Redis unavailable, the validator breaker decides locally',
    );
  });
  fleet.onSubscribe(() => {
    if (!failing) return;
    failing = false;
    app.log.info('fleet breaker: Redis back, trips are shared again');
  });
  return {
    fleet,
    stopLogs: () => {
      malformed.stop();
      muted.stop();
    },
  };
}

/**
 * A log for events that may come by thousands: the first one is logged at once (`first`), then the
 * ones after it are counted and `summary(count, last)` logs their sum at the end of each interval in
 * which any arrived; a quiet interval ends it (the next event is logged at once again).
 */
function throttledLog<E>(
  intervalMs: number,
  summary: (count: number, last: E) => void,
): { add(event: E, first: () => void): void; stop(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let count = 0;
  let last: E | undefined;
  const tick = (): void => {
    if (count === 0) {
      timer = undefined;
      return;
    }
    summary(count, last!);
    count = 0;
    timer = setTimeout(tick, intervalMs).unref();
  };
  return {
    add(event, first) {
      if (timer === undefined) {
        first();
        timer = setTimeout(tick, intervalMs).unref();
        return;
      }
      count++;
      last = event;
    },
    stop() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}

const DEADLINE_EXCEEDED: string = DeadlineExceededError.code;

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/** Maps Fastify's own errors to our codes with a message that explains; hides internals of 5xx. */
function toGcdError(error: FastifyError | GcdError, request: FastifyRequest, config: GcdConfig): GcdError {
  if (error instanceof GcdError) return error;
  switch (error.code) {
    case DEADLINE_EXCEEDED:
      // the caller's budget (bulwark-timeout-ms) ran out while the request waited (e.g. for the pool)
      return new GcdError(
        'GCD_ERR_DEADLINE_EXCEEDED',
        'The request did not complete within the time its caller allowed (bulwark-timeout-ms).',
      );
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GcdError(
        'GCD_ERR_BODY_TOO_LARGE',
        `The request body is larger than ${config.bodyLimitBytes} bytes; two numbers of at most ${config.maxDigits} digits fit well within that.`,
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GcdError(
        'GCD_ERR_UNSUPPORTED_MEDIA_TYPE',
        `${request.method} ${request.url.split('?')[0]} does not accept Content-Type ${JSON.stringify(request.headers['content-type'] ?? '')}.`,
      );
    default:
      break;
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    // Fastify's other client errors (malformed JSON, bad URL, …): keep its message, use our code.
    return new GcdError('GCD_ERR_INVALID_BODY', error.message);
  }
  request.log.error({ err: error }, 'unhandled error');
  return new GcdError('GCD_ERR_INTERNAL', 'Internal error; it has been logged.');
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}
