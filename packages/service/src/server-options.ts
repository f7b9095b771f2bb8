/**
 * Fastify's constructor options from the kit's options: timeouts and limits that only exist at server
 * creation (Node's `connectionsCheckingInterval`, `headersTimeout`, `maxHeaderSize`), the logger,
 * request ids and the closing behaviour the shutdown sequence relies on.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { LogController, type FastifyBaseLogger, type FastifyServerOptions } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { attachPreRouting, withPreRouting } from './shedding/fast-refusal.js';
import { createLogger, lazyChildLoggerFactory, requestIdGenerator } from './logging.js';
import { securityHeaderSets } from './security-headers.js';
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
    // The kit answers requests that arrive while the server closes itself (503 with Retry-After and
    // its error body), so Fastify's own bare 503 is off.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    clientErrorHandler: clientErrorHandler(o),
    serverFactory: (handler) => createRawServer(o, handler),
  };
}

type Handler = Parameters<typeof createHttpServer>[1];

const CLIENT_ERRORS: Readonly<Record<string, readonly [number, string, string, string]>> = {
  ERR_HTTP_REQUEST_TIMEOUT: [
    408,
    'Request Timeout',
    'BULWARK_ERR_REQUEST_TIMEOUT',
    'The request did not arrive in time.',
  ],
  HPE_HEADER_OVERFLOW: [
    431,
    'Request Header Fields Too Large',
    'BULWARK_ERR_HEADERS_TOO_LARGE',
    'The request line and headers are larger than the server accepts.',
  ],
};
const BAD_REQUEST = [
  400,
  'Bad Request',
  'BULWARK_ERR_BAD_REQUEST',
  'The request is not valid HTTP/1.1.',
] as const;

/**
 * Answers what Node's HTTP parser refused before Fastify saw a request (malformed HTTP 400, a head over
 * `maxHeaderBytes` 431, a request past `headersTimeoutMs`/`requestTimeoutMs` 408) like every other
 * answer: a fresh request id, the `api` security headers, a JSON body with a stable code. Then the
 * connection closes (the parser cannot go on).
 */
export function clientErrorHandler(o: ResolvedServiceOptions): (error: Error, socket: Duplex) => void {
  const headers = securityHeaderSets(o.securityHeaders, o.https !== undefined)
    .api.map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  const idHeader = o.requestIdHeader;
  return function (this: { log?: { debug?: (o: object, m: string) => void } }, error, socket) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (code === 'ECONNRESET' || socket.destroyed) return;
    const [status, reason, errorCode, message] = CLIENT_ERRORS[code] ?? BAD_REQUEST;
    const requestId = randomUUID();
    this.log?.debug?.({ err: error, reqId: requestId, statusCode: status }, 'client error');
    if (socket.writable) {
      const body = JSON.stringify({ statusCode: status, error: reason, code: errorCode, message });
      socket.write(
        `HTTP/1.1 ${status} ${reason}\r\n${idHeader}: ${requestId}\r\n${headers}` +
          `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
          `connection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy(error);
  };
}

/**
 * The node server with every connection-level limit set (Fastify skips its own when a factory is used).
 * Its `request` listener runs the kit's pre-routing step (refusals under overload, see shedding/fast-refusal.ts),
 * once the kit is installed, before Fastify's handler.
 */
export function createRawServer(o: ResolvedServiceOptions, fastifyHandler: Handler): HttpServer {
  const { listener: handler, checkContinue, preRouting } = withPreRouting(fastifyHandler as never);
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
          // A TLS handshake must finish within the headers timeout too: Node's default is 120 s, so a
          // client that connects and never finishes it held ~60 KB for two minutes (red-team finding).
          { minVersion: 'TLSv1.2', handshakeTimeout: o.headersTimeoutMs, ...o.https, ...common },
          handler,
        ) as unknown as HttpServer);
  attachPreRouting(server, preRouting);
  server.on('checkContinue', checkContinue);
  server.setTimeout(o.connectionTimeoutMs);
  if (o.maxRequestsPerSocket > 0) server.maxRequestsPerSocket = o.maxRequestsPerSocket;
  return server;
}
