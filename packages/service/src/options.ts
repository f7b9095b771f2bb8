/**
 * The options of the service kit: one object, units in names, defaults declared once in
 * {@link SERVICE_DEFAULTS}, every value checked by {@link resolveServiceOptions} (which throws
 * `InvalidOptionError` naming the option) before anything is built.
 */
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { DestinationStream, LevelWithSilent, Logger } from 'pino';
import { InvalidOptionError } from '@bulwark/core';
import { checks } from '@bulwark/core/internal';
import { resolveDeadlines, type DeadlineOptions, type ResolvedDeadlines } from './deadline.js';
import type { HealthOptions } from './health.js';
import type { MetricsOptions } from './metrics.js';
import type { RateLimitOptions } from './rate-limit/limiter.js';
import { securityHeaderSets, type SecurityHeadersOptions } from './security-headers.js';
import type { SheddingOptions } from './shedding/shedder.js';
import type { Tracing } from './tracing/setup.js';

export interface ServiceOptions {
  /** Service name in logs, `/healthz` and `bulwark_service_info`. @default 'service' */
  serviceName?: string;
  /** Version in logs, `/healthz` and `bulwark_service_info`. @default '0.0.0' */
  version?: string;

  // --- logging -----------------------------------------------------------------------------------------
  /** A pino logger to use (then `logLevel`, `logStream` and `redactPaths` are ignored). @default a new one */
  logger?: Logger;
  /** Lowest level logged. @default 'info' */
  logLevel?: LevelWithSilent;
  /** Where the JSON lines go. @default stdout (asynchronous) */
  logStream?: DestinationStream;
  /** More paths to redact, pino syntax, on top of `REDACT_PATHS`. @default [] */
  redactPaths?: readonly string[];
  /** Log every request at info when it completes (costs throughput). @default false */
  accessLog?: boolean;
  /** Log requests slower than this at warn, in ms (0 = never). @default 1000 */
  slowRequestMs?: number;
  /** The request-id header accepted from clients and echoed on every response. @default 'x-request-id' */
  requestIdHeader?: string;

  // --- server ------------------------------------------------------------------------------------------
  /** Largest request body, in bytes (413 beyond). @default 1048576 */
  bodyLimitBytes?: number;
  /** Largest request head (request line + headers), in bytes (431 beyond). @default 16384 */
  maxHeaderBytes?: number;
  /** Time allowed to receive the request head, in ms (slowloris; 408 beyond). @default 10000 */
  headersTimeoutMs?: number;
  /** Time allowed to receive the whole request, in ms (slow bodies; 408 beyond). @default 30000 */
  requestTimeoutMs?: number;
  /** How often Node enforces the two timeouts above, in ms (Node's 30 s default makes them toothless). @default 1000 */
  connectionsCheckingIntervalMs?: number;
  /**
   * Idle keep-alive connections close after this, in ms. Keep it above the idle timeout of any load
   * balancer in front (so the balancer closes first and never reuses a closing socket). @default 72000
   */
  keepAliveTimeoutMs?: number;
  /** A socket idle this long is destroyed, in ms (0 = off). @default 0 */
  connectionTimeoutMs?: number;
  /**
   * A handler running longer gets 503 `FST_ERR_HANDLER_TIMEOUT` and its `request.signal` aborted, in ms
   * (0 = off). Fastify pays an AbortController and a timer per request for it, so it is off by
   * default: set Fastify's per-route `handlerTimeout` on the routes that do real work, or this for all.
   * @default 0
   */
  handlerTimeoutMs?: number;
  /** Requests served per keep-alive connection before it is closed (0 = no limit). @default 0 */
  maxRequestsPerSocket?: number;
  /** Fastify `trustProxy`: whose `X-Forwarded-For` to believe for `request.ip`. @default false */
  trustProxy?: boolean | string | string[];
  /** TLS: serve HTTPS with these `https.createServer` options (`key`, `cert`, `minVersion`…). @default undefined (HTTP) */
  https?: HttpsServerOptions;
  /**
   * Security headers on every response: `true` for helmet 8's default set (HSTS only over HTTPS), an
   * object to change the CSP / HSTS or add and drop headers, `false` for none. @default true
   */
  securityHeaders?: boolean | SecurityHeadersOptions;

  // --- parts -------------------------------------------------------------------------------------------
  /** Readiness checks. */
  health?: HealthOptions;
  /** Prometheus metrics, or `false` for none. @default {} (on, at /metrics) */
  metrics?: MetricsOptions | false;
  /** Per-client rate limiting, or `false`. @default false */
  rateLimit?: RateLimitOptions | false;
  /** Load shedding, or `false`. @default {} (on: gradient2 + event-loop delay) */
  shedding?: SheddingOptions | false;
  /** Tracing from `setupTracing()`: server spans per request and trace ids in logs. @default undefined (off) */
  tracing?: Tracing;
  /**
   * Deadlines across services: a request's `bulwark-timeout-ms` header becomes the ambient deadline of
   * its handler (400 when malformed, 504 when already spent), or `false` to ignore the header.
   * @default {} (on)
   */
  deadlines?: DeadlineOptions | false;
}

export const SERVICE_DEFAULTS = Object.freeze({
  serviceName: 'service',
  version: '0.0.0',
  logLevel: 'info' as LevelWithSilent,
  redactPaths: Object.freeze([]) as readonly string[],
  accessLog: false,
  slowRequestMs: 1000,
  requestIdHeader: 'x-request-id',
  bodyLimitBytes: 1_048_576,
  maxHeaderBytes: 16_384,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  connectionsCheckingIntervalMs: 1000,
  keepAliveTimeoutMs: 72_000,
  connectionTimeoutMs: 0,
  handlerTimeoutMs: 0,
  maxRequestsPerSocket: 0,
  trustProxy: false as NonNullable<ServiceOptions['trustProxy']>,
  securityHeaders: true as NonNullable<ServiceOptions['securityHeaders']>,
  health: Object.freeze({}) as HealthOptions,
  metrics: Object.freeze({}) as MetricsOptions | false,
  rateLimit: false as RateLimitOptions | false,
  shedding: Object.freeze({}) as SheddingOptions | false,
  deadlines: Object.freeze({}) as DeadlineOptions | false,
});

const KEYS = [...Object.keys(SERVICE_DEFAULTS), 'logger', 'logStream', 'https', 'tracing'];

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Every option with its value in force. */
export interface ResolvedServiceOptions {
  readonly serviceName: string;
  readonly version: string;
  readonly logger: Logger | undefined;
  readonly logLevel: LevelWithSilent;
  readonly logStream: DestinationStream | undefined;
  readonly redactPaths: readonly string[];
  readonly accessLog: boolean;
  readonly slowRequestMs: number;
  readonly requestIdHeader: string;
  readonly bodyLimitBytes: number;
  readonly maxHeaderBytes: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly connectionsCheckingIntervalMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly connectionTimeoutMs: number;
  readonly handlerTimeoutMs: number;
  readonly maxRequestsPerSocket: number;
  readonly trustProxy: NonNullable<ServiceOptions['trustProxy']>;
  readonly https: HttpsServerOptions | undefined;
  readonly securityHeaders: boolean | SecurityHeadersOptions;
  readonly health: HealthOptions;
  readonly metrics: MetricsOptions | false;
  readonly rateLimit: RateLimitOptions | false;
  readonly shedding: SheddingOptions | false;
  readonly tracing: Tracing | undefined;
  readonly deadlines: ResolvedDeadlines | false;
}

const RESOLVED = Symbol('bulwark.resolved');

/** Checks every option and fills in the defaults. Parts (metrics, rateLimit, …) check their own fields when built. */
export function resolveServiceOptions(
  options: ServiceOptions | ResolvedServiceOptions = {},
): ResolvedServiceOptions {
  if ((options as { [RESOLVED]?: true })[RESOLVED]) return options as ResolvedServiceOptions;
  const o = checks.optionsObject('service', options) as ServiceOptions;
  checks.knownKeys('service', o, KEYS);
  const d = SERVICE_DEFAULTS;
  const ms = (name: keyof typeof d & string, allowZero: boolean): number => {
    const value = (o as Record<string, unknown>)[name] ?? d[name];
    return allowZero
      ? checks.nonNegativeMs(`service.${name}`, value)
      : checks.positiveMs(`service.${name}`, value);
  };
  const handlerTimeoutMs = ms('handlerTimeoutMs', true);
  const resolved: ResolvedServiceOptions = {
    serviceName: nonEmpty('service.serviceName', o.serviceName ?? d.serviceName),
    version: nonEmpty('service.version', o.version ?? d.version),
    logger: o.logger === undefined ? undefined : logger(o.logger),
    logLevel: checks.oneOf('service.logLevel', o.logLevel ?? d.logLevel, LEVELS),
    logStream: o.logStream,
    redactPaths: stringArray('service.redactPaths', o.redactPaths ?? d.redactPaths),
    accessLog: checks.boolean('service.accessLog', o.accessLog ?? d.accessLog),
    slowRequestMs: ms('slowRequestMs', true),
    requestIdHeader: headerName('service.requestIdHeader', o.requestIdHeader ?? d.requestIdHeader),
    bodyLimitBytes: checks.positiveInteger('service.bodyLimitBytes', o.bodyLimitBytes ?? d.bodyLimitBytes),
    maxHeaderBytes: checks.positiveInteger('service.maxHeaderBytes', o.maxHeaderBytes ?? d.maxHeaderBytes),
    headersTimeoutMs: ms('headersTimeoutMs', false),
    requestTimeoutMs: ms('requestTimeoutMs', true),
    connectionsCheckingIntervalMs: ms('connectionsCheckingIntervalMs', false),
    keepAliveTimeoutMs: ms('keepAliveTimeoutMs', true),
    connectionTimeoutMs: ms('connectionTimeoutMs', true),
    handlerTimeoutMs,
    maxRequestsPerSocket: checks.number(
      'service.maxRequestsPerSocket',
      o.maxRequestsPerSocket ?? d.maxRequestsPerSocket,
      {
        min: 0,
        integer: true,
      },
    ),
    trustProxy: o.trustProxy ?? d.trustProxy,
    https: o.https === undefined ? undefined : checks.optionsObject('service.https', o.https, true),
    securityHeaders: part('service.securityHeaders', o.securityHeaders ?? d.securityHeaders, true),
    health: checks.optionsObject('service.health', o.health ?? d.health),
    metrics: part('service.metrics', o.metrics ?? d.metrics, false),
    rateLimit: part('service.rateLimit', o.rateLimit ?? d.rateLimit, false),
    shedding: part('service.shedding', o.shedding ?? d.shedding, false),
    tracing: o.tracing,
    deadlines: resolveDeadlines(
      part('service.deadlines', o.deadlines ?? d.deadlines, false),
      handlerTimeoutMs,
    ),
  };
  // Node refuses a head timeout longer than the whole-request timeout.
  if (resolved.requestTimeoutMs > 0 && resolved.headersTimeoutMs > resolved.requestTimeoutMs) {
    throw new InvalidOptionError(
      'service.headersTimeoutMs',
      resolved.headersTimeoutMs,
      `at most requestTimeoutMs (${resolved.requestTimeoutMs})`,
    );
  }
  securityHeaderSets(resolved.securityHeaders, resolved.https !== undefined); // throws on a bad header or value
  if (o.tracing !== undefined && typeof (o.tracing as Partial<Tracing>).enabled !== 'boolean') {
    throw new InvalidOptionError('service.tracing', o.tracing, 'the result of setupTracing()');
  }
  return Object.freeze(Object.defineProperty(resolved, RESOLVED, { value: true }));
}

function nonEmpty(option: string, value: unknown): string {
  const s = checks.string(option, value);
  if (s === '') throw new InvalidOptionError(option, value, 'a non-empty string');
  return s;
}

function headerName(option: string, value: unknown): string {
  const s = checks.string(option, value).toLowerCase();
  if (!/^[a-z0-9-]+$/.test(s)) throw new InvalidOptionError(option, value, 'an HTTP header name');
  return s;
}

function stringArray(option: string, value: unknown): readonly string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    throw new InvalidOptionError(option, value, 'an array of strings');
  }
  return Object.freeze([...value]);
}

function logger(value: unknown): Logger {
  const l = value as Partial<Logger>;
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof l.child !== 'function' ||
    typeof l.info !== 'function'
  ) {
    throw new InvalidOptionError('service.logger', value, 'a pino logger');
  }
  return value as Logger;
}

/** `false`, or an options object (`true` allowed only where the part has a "defaults" shorthand). */
function part<T>(option: string, value: T, allowTrue: boolean): T {
  if (value === false || (allowTrue && value === true)) return value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(
      option,
      value,
      allowTrue ? 'true, false or an options object' : 'false or an options object',
    );
  }
  return value;
}
