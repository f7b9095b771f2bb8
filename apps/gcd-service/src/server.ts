/**
 * `createGcdServer(config)`: the whole service as a factory a test can call without globals — no
 * `process.env`, no signal handlers, no listening until `listen()`. `main.ts` wires the process.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import formbody from '@fastify/formbody';
import helmet from '@fastify/helmet';
import type { DestinationStream } from 'pino';
import type { GcdConfig } from './config.js';
import { describeConfig } from './config.js';
import { GcdComputer } from './compute.js';
import { errorBody, GcdError } from './errors.js';
import { errorPage, type FormValues } from './html.js';
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
}

/** At most one "validator unavailable" log line per this many ms (the count of the others is logged). */
const FALLBACK_LOG_INTERVAL_MS = 1000;

export interface GcdServer {
  readonly app: FastifyInstance;
  readonly config: GcdConfig;
  /** The compute engine (gcd mode only). */
  readonly computer: GcdComputer | undefined;
  /** The upstream validator client (gcd mode with `VALIDATOR_URL` only). */
  readonly validator: ValidatorClient | undefined;
  /** Starts listening; resolves with the base URL (`http://127.0.0.1:3000`). */
  listen(): Promise<string>;
  /** Re-reads the TLS files (no-op result when TLS is off). */
  reloadTls(reason?: string): TlsReloadResult;
  /** Stops accepting, drains, stops the worker pool. Idempotent. */
  close(): Promise<void>;
}

/** How often Node checks the header and request timeouts (its default, 30 s, makes them useless). */
const CONNECTIONS_CHECKING_INTERVAL_MS = 1000;

export async function createGcdServer(config: GcdConfig, deps: GcdServerDeps = {}): Promise<GcdServer> {
  const tlsOptions = config.tls === undefined ? undefined : readTlsFiles(config.tls);
  let rawServer: HttpServer | HttpsServer | undefined;

  const app = Fastify({
    logger: {
      level: config.logLevel,
      ...(deps.logStream === undefined ? {} : { stream: deps.logStream }),
      redact: ['req.headers.authorization', 'req.headers.cookie'],
    },
    bodyLimit: config.bodyLimitBytes,
    handlerTimeout: config.handlerTimeoutMs,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    requestIdHeader: 'x-request-id',
    serverFactory: (handler) => {
      const common = {
        maxHeaderSize: config.maxHeaderBytes,
        headersTimeout: config.headersTimeoutMs,
        requestTimeout: config.requestTimeoutMs,
        keepAliveTimeout: config.keepAliveTimeoutMs,
        connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS,
      };
      rawServer =
        tlsOptions === undefined
          ? createHttpServer(common, handler)
          : createHttpsServer({ ...common, ...tlsOptions }, handler);
      return rawServer as HttpServer;
    },
  }) as unknown as FastifyInstance;

  await app.register(helmet, {
    // HSTS and upgrade-insecure-requests only make sense over HTTPS (a plain-HTTP dev server would
    // otherwise tell browsers to upgrade requests to a port that does not speak TLS).
    hsts: tlsOptions !== undefined,
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        upgradeInsecureRequests: tlsOptions === undefined ? null : [],
      },
    },
  });

  let computer: GcdComputer | undefined;
  let validator: ValidatorClient | undefined;
  if (config.mode === 'validator') {
    registerValidatorRoutes(app, { maxDigits: config.maxDigits });
  } else {
    await app.register(formbody, { bodyLimit: config.bodyLimitBytes });
    computer = new GcdComputer({
      inlineMaxDigits: config.inlineMaxDigits,
      computeTimeoutMs: config.computeTimeoutMs,
      poolMaxThreads: config.poolMaxThreads,
      poolMaxQueue: config.poolMaxQueue,
      ...(deps.workerFile === undefined ? {} : { workerFile: deps.workerFile }),
    });
    if (config.validator !== undefined) {
      validator = new ValidatorClient(config.validator);
      watchValidator(app, validator);
    }
    const client = validator;
    registerGcdRoutes(app, {
      maxDigits: config.maxDigits,
      computer,
      validate: client === undefined ? undefined : (pair, signal) => client.check(pair, signal),
    });
  }

  /** Answers an error as JSON, or as the form page with the explanation for HTML routes. */
  function sendError(request: FastifyRequest, reply: FastifyReply, error: GcdError): FastifyReply {
    if (error.statusCode >= 500) request.log.warn({ code: error.code }, error.message);
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
    return reply
      .type('application/json; charset=utf-8')
      .send(errorBody(error.statusCode, error.code, error.message));
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
    return sendError(request, reply, toGcdError(error, request, config));
  });

  let reloader: TlsReloader | undefined;
  let closed: Promise<void> | undefined;

  return {
    app,
    config,
    computer,
    validator,
    async listen() {
      await app.listen({ port: config.port, host: config.host });
      app.log.info({ config: describeConfig(config) }, 'configuration');
      if (config.tls !== undefined) {
        if (keyFileTooOpen(config.tls.keyFile)) {
          app.log.warn({ file: config.tls.keyFile }, 'TLS key file is readable by group or others');
        }
        reloader = new TlsReloader(rawServer as HttpsServer, config.tls, (result, reason) => {
          if (result.ok) app.log.info({ reason }, 'TLS certificate reloaded');
          else app.log.error({ reason, err: result.error }, 'TLS reload failed; keeping the old certificate');
        });
        if (config.tls.watch) reloader.watch();
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
      closed ??= (async () => {
        reloader?.close();
        await app.close();
        await computer?.close();
        await validator?.close();
      })();
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

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/** Maps Fastify's own errors to our codes with a message that explains; hides internals of 5xx. */
function toGcdError(error: FastifyError | GcdError, request: FastifyRequest, config: GcdConfig): GcdError {
  if (error instanceof GcdError) return error;
  switch (error.code) {
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
  if (error.code === 'FST_ERR_HANDLER_TIMEOUT') {
    return new GcdError(
      'GCD_ERR_COMPUTE_TIMEOUT',
      `The request did not complete within ${config.handlerTimeoutMs} ms and was stopped.`,
      { 'retry-after': '1' },
    );
  }
  request.log.error({ err: error }, 'unhandled error');
  return new GcdError('GCD_ERR_INTERNAL', 'Internal error; it has been logged.');
}
