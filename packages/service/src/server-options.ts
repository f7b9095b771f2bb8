/**
 * Fastify's constructor options from the kit's options: timeouts and limits that only exist at server
 * creation (Node's `connectionsCheckingInterval`, `headersTimeout`, `maxHeaderSize`), the logger,
 * request ids and the closing behaviour the shutdown sequence relies on.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { LogController, type FastifyBaseLogger, type FastifyServerOptions } from 'fastify';
import { createLogger, lazyChildLoggerFactory, requestIdGenerator } from './logging.js';
import { resolveServiceOptions, type ResolvedServiceOptions, type ServiceOptions } from './options.js';

/**
 * The options to pass to `Fastify(…)` for a server the kit will run on. `createService` uses it; call it
 * yourself to build the Fastify instance and then `register(bulwarkService, sameOptions)`.
 */
export function serverOptions(options: ServiceOptions | ResolvedServiceOptions = {}): FastifyServerOptions {
  const o = resolveServiceOptions(options);
  const loggerInstance =
    o.logger ??
    createLogger({
      serviceName: o.serviceName,
      version: o.version,
      level: o.logLevel,
      stream: o.logStream,
      redactPaths: o.redactPaths,
      traceIds: o.tracing?.enabled === true,
    });
  return {
    loggerInstance: loggerInstance as FastifyBaseLogger,
    // Fastify's own "incoming request" / "request completed" lines cost ~45 % of throughput; the kit
    // logs errors and slow requests, and every request only with `accessLog`.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyChildLoggerFactory as unknown as FastifyServerOptions['childLoggerFactory'],
    genReqId: requestIdGenerator(o.requestIdHeader),
    requestIdHeader: false,
    bodyLimit: o.bodyLimitBytes,
    handlerTimeout: o.handlerTimeoutMs,
    trustProxy: o.trustProxy,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    serverFactory: (handler) => createRawServer(o, handler),
  };
}

type Handler = Parameters<typeof createHttpServer>[1];

/** The node server with every connection-level limit set (Fastify skips its own when a factory is used). */
export function createRawServer(o: ResolvedServiceOptions, handler: Handler): HttpServer {
  const common = {
    connectionsCheckingInterval: o.connectionsCheckingIntervalMs,
    headersTimeout: o.headersTimeoutMs,
    requestTimeout: o.requestTimeoutMs,
    keepAliveTimeout: o.keepAliveTimeoutMs,
    maxHeaderSize: o.maxHeaderBytes,
  };
  const server =
    o.https === undefined
      ? createHttpServer(common, handler)
      : (createHttpsServer(
          { minVersion: 'TLSv1.2', ...o.https, ...common },
          handler,
        ) as unknown as HttpServer);
  server.setTimeout(o.connectionTimeoutMs);
  if (o.maxRequestsPerSocket > 0) server.maxRequestsPerSocket = o.maxRequestsPerSocket;
  return server;
}
