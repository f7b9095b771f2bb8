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

/** Paths redacted on every log line (pino path syntax; hyphenated keys in brackets). */
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
  '*.password',
  '*.secret',
  '*.token',
  '*.apiKey',
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

const NO_FIELDS = Object.freeze({});

/** pino `mixin`: the active span's ids, or nothing. */
export function traceMixin(): object {
  const span = trace.getSpan(context.active());
  if (span === undefined) return NO_FIELDS;
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
