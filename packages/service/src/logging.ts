/**
 * JSON logs (pino) and request ids.
 *
 * - One JSON object per line; `service` and `version` on every line; trace ids (`trace_id`, `span_id`)
 *   on lines written inside a traced request when tracing is on.
 * - Secrets are redacted at the logger (compiled paths, not per call): authorization, cookies, API keys.
 * - A request id is taken from the `x-request-id` header when it is safe (≤ 128 characters of
 *   `A-Z a-z 0-9 - _ . : /`; anything else could forge log lines or blow up cardinality) and generated
 *   otherwise; the service echoes it on every response.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { context, trace } from '@opentelemetry/api';

/**
 * Paths redacted on every log line (pino path syntax; hyphenated keys in brackets). No wildcards: pino
 * compiles a wildcard path into a walk over every logged object, on every line (docs/benchmarks.md,
 * "Figures behind design choices"); add your own with `redactPaths`.
 */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers["proxy-authorization"]',
  'headers.cookie',
  'headers["x-api-key"]',
  'headers["set-cookie"]',
]);

export const REDACTED = '[Redacted]';

export interface LoggerSettings {
  serviceName: string;
  version: string;
  level: LevelWithSilent;
  stream: DestinationStream | undefined;
  redactPaths: readonly string[];
  /** Add `trace_id` / `span_id` of the active span to each line. */
  traceIds: boolean;
}

/** The service's pino logger. */
export function createLogger(s: LoggerSettings): Logger {
  return pino(
    {
      level: s.level,
      base: { service: s.serviceName, version: s.version },
      redact: { paths: [...REDACT_PATHS, ...s.redactPaths], censor: REDACTED },
      ...(s.traceIds ? { mixin: traceMixin } : {}),
    },
    s.stream ?? pino.destination({ dest: 1, sync: false }),
  );
}

/**
 * pino `mixin`: the active span's ids, or nothing. Always a new object: pino merges the line's own fields
 * into what the mixin returns, so a shared (let alone frozen) object would break every line.
 */
export function traceMixin(): object {
  const span = trace.getSpan(context.active());
  if (span === undefined) return {};
  const sc = span.spanContext();
  return { trace_id: sc.traceId, span_id: sc.spanId };
}

const SAFE_ID = /^[A-Za-z0-9\-_.:/]{1,128}$/;

/** Whether a client-supplied request id may be used as is. */
export function isValidRequestId(value: unknown): value is string {
  return typeof value === 'string' && SAFE_ID.test(value);
}

/** Fastify's `genReqId`: the client's id when it is safe, else a fresh UUID. */
export function requestIdGenerator(header: string): (req: IncomingMessage) => string {
  const name = header.toLowerCase();
  return (req) => {
    const given = req.headers[name];
    return isValidRequestId(given) ? given : randomUUID();
  };
}

/**
 * A request's logger that becomes a real pino child only when something logs through it. Fastify makes
 * one child per request; pino's `child()` serialises the bindings (and runs redaction) at once, a few
 * µs per request, wasted on the requests — nearly all — that log nothing.
 */
class LazyChildLogger {
  readonly #parent: Logger;
  readonly #bindings: Record<string, unknown>;
  readonly #options: object;
  #real: Logger | undefined = undefined;

  constructor(parent: Logger, bindings: Record<string, unknown>, options: object) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  #child(): Logger {
    return (this.#real ??= this.#parent.child(this.#bindings, this.#options));
  }

  get level(): string {
    return (this.#real ?? this.#parent).level;
  }
  set level(level: string) {
    this.#child().level = level;
  }
  isLevelEnabled(level: string): boolean {
    return this.#child().isLevelEnabled(level);
  }
  bindings(): Record<string, unknown> {
    return this.#child().bindings();
  }
  child(bindings: Record<string, unknown>, options?: object): Logger {
    return this.#child().child(bindings, options);
  }
  fatal(...args: unknown[]): void {
    (this.#child().fatal as (...a: unknown[]) => void)(...args);
  }
  error(...args: unknown[]): void {
    (this.#child().error as (...a: unknown[]) => void)(...args);
  }
  warn(...args: unknown[]): void {
    (this.#child().warn as (...a: unknown[]) => void)(...args);
  }
  info(...args: unknown[]): void {
    (this.#child().info as (...a: unknown[]) => void)(...args);
  }
  debug(...args: unknown[]): void {
    (this.#child().debug as (...a: unknown[]) => void)(...args);
  }
  trace(...args: unknown[]): void {
    (this.#child().trace as (...a: unknown[]) => void)(...args);
  }
  silent(): void {}
}

/** Fastify's `childLoggerFactory`: a {@link LazyChildLogger} per request. */
export function lazyChildLoggerFactory(
  logger: Logger,
  bindings: Record<string, unknown>,
  options: object,
): Logger {
  return new LazyChildLogger(logger, bindings, options) as unknown as Logger;
}
