/**
 * Spans: the SERVER span of each request (made by the service's hooks), and helpers for the work inside
 * it — a child span per attempt of a resilient call ({@link traceAttempt}), any other child span
 * ({@link startSpan}), and the W3C `traceparent` for an outgoing request ({@link injectTraceHeaders}).
 * Everything here uses only `@opentelemetry/api`; with tracing off (no `setupTracing` provider) each
 * helper is a no-op that costs one boolean check.
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type { CallContext, Operation } from '@bulwark/core';

const TRACER_NAME = '@bulwark/service';

// OpenTelemetry semantic-convention attribute names (stable), spelled out to spare loading the package.
const ATTR_HTTP_REQUEST_METHOD = 'http.request.method';
const ATTR_HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
const ATTR_HTTP_ROUTE = 'http.route';
const ATTR_URL_PATH = 'url.path';
const ATTR_URL_SCHEME = 'url.scheme';
const ATTR_ERROR_TYPE = 'error.type';

/** Status recorded on the span of a request whose client disconnected (nginx's convention). */
export const CLIENT_CLOSED = 499;

let active = false;

/** True while a `setupTracing` provider is registered (and not shut down). */
export function tracingEnabled(): boolean {
  return active;
}

/** Set by `setupTracing` (internal). */
export function setTracingActive(on: boolean): void {
  active = on;
}

/** The tracer the kit's spans come from (the global provider's; a no-op tracer when tracing is off). */
export function kitTracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/** Starts the SERVER span of a request, continuing the caller's trace from its `traceparent` header. */
export function startServerSpan(
  method: string,
  route: string,
  path: string,
  scheme: string,
  headers: Record<string, unknown>,
): { span: Span; ctx: Context } {
  const parent = propagation.extract(ROOT_CONTEXT, headers);
  const span = kitTracer().startSpan(
    `${method} ${route}`,
    {
      kind: SpanKind.SERVER,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: method,
        [ATTR_HTTP_ROUTE]: route,
        [ATTR_URL_PATH]: path,
        [ATTR_URL_SCHEME]: scheme,
      },
    },
    parent,
  );
  return { span, ctx: trace.setSpan(parent, span) };
}

/** Ends a SERVER span with the response status (ERROR for 5xx, as the HTTP conventions say). */
export function endServerSpan(span: Span, statusCode: number): void {
  span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, statusCode);
  if (statusCode >= 500) {
    span.setAttribute(ATTR_ERROR_TYPE, String(statusCode));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

/**
 * Writes the trace context (`traceparent`, `tracestate`, baggage) of `ctx` — by default the active one —
 * into `headers` and returns them. A no-op when tracing is off.
 */
export function injectTraceHeaders<H extends Record<string, string>>(headers: H = {} as H, ctx?: Context): H {
  if (active) propagation.inject(ctx ?? context.active(), headers);
  return headers;
}

/**
 * Starts an INTERNAL span, a child of the active one (inside a request: its server span), or returns
 * undefined when tracing is off. End it with {@link endSpan}.
 *
 * ```ts
 * const span = startSpan('gcd.compute', { 'gcd.compute.path': 'pool' });
 * try { return await work(); } catch (e) { endSpan(span, e); span = undefined; throw e; } finally { endSpan(span); }
 * ```
 */
export function startSpan(name: string, attributes?: Attributes, parent?: Context): Span | undefined {
  if (!active) return undefined;
  return kitTracer().startSpan(
    name,
    { kind: SpanKind.INTERNAL, ...(attributes === undefined ? {} : { attributes }) },
    parent ?? context.active(),
  );
}

/** Ends a span from {@link startSpan} (a no-op for undefined); with `error`, marks it failed first. */
export function endSpan(span: Span | undefined, error?: unknown): void {
  if (span === undefined) return;
  if (error !== undefined) {
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : String(error),
    });
    span.setAttribute(ATTR_ERROR_TYPE, errorType(error));
  }
  span.end();
}

/**
 * Runs `fn` inside an INTERNAL child span named `name` — active while `fn` runs, so the spans `fn` makes
 * (an attempt of a resilient call, another step) are its children — ended when `fn` settles, marked
 * ERROR when it throws. With tracing off it calls `fn(undefined)` and nothing else.
 *
 * ```ts
 * const mode = await traceStep('gcd.validate', async (span) => { const m = await validate(); span?.setAttribute('gcd.validation', m); return m; });
 * ```
 */
export function traceStep<T>(
  name: string,
  fn: (span: Span | undefined) => T | Promise<T>,
  attributes?: Attributes,
): T | Promise<T> {
  if (!active) return fn(undefined);
  return kitTracer().startActiveSpan(
    name,
    { kind: SpanKind.INTERNAL, ...(attributes === undefined ? {} : { attributes }) },
    async (span) => {
      try {
        return await fn(span);
      } catch (error) {
        endSpan(span, error);
        throw error;
      } finally {
        if (span.isRecording()) span.end();
      }
    },
  );
}

export interface TraceAttemptOptions {
  /** Span kind. @default SpanKind.CLIENT */
  kind?: SpanKind;
  /** Extra span attributes. */
  attributes?: Record<string, string | number | boolean>;
}

/**
 * Wraps an operation so each call of it — each attempt a retry policy makes — runs in its own child span
 * named `name`, with the attributes `bulwark.attempt` (1, 2, …) and, on a retry,
 * `http.request.resend_count` (attempt − 1), status ERROR when the attempt fails, and the attempt's span
 * active inside (so {@link injectTraceHeaders} propagates it). Returns `fn` itself when tracing is off.
 *
 * ```ts
 * await policy.execute(traceAttempt('validator', async (ctx) => fetch(url, { headers: injectTraceHeaders(), signal: ctx.signal })));
 * ```
 */
export function traceAttempt<T>(
  name: string,
  fn: Operation<T>,
  options: TraceAttemptOptions = {},
): Operation<T> {
  return (ctx: CallContext) => {
    if (!active) return fn(ctx);
    const attributes: Attributes = { ...options.attributes, 'bulwark.attempt': ctx.attempt };
    if (ctx.attempt > 1) attributes['http.request.resend_count'] = ctx.attempt - 1;
    return kitTracer().startActiveSpan(
      name,
      { kind: options.kind ?? SpanKind.CLIENT, attributes },
      async (span) => {
        try {
          return await fn(ctx);
        } catch (error) {
          span.setStatus({
            code: SpanStatusCode.ERROR,
            message: error instanceof Error ? error.message : String(error),
          });
          span.setAttribute(ATTR_ERROR_TYPE, errorType(error));
          if (error instanceof Error) span.recordException(error);
          throw error;
        } finally {
          span.end();
        }
      },
    );
  };
}

/** `error.type`: the error's code, else its name. */
function errorType(error: unknown): string {
  const e = error as { code?: unknown; name?: unknown } | null;
  if (typeof e?.code === 'string' && e.code !== '') return e.code;
  if (typeof e?.name === 'string' && e.name !== '') return e.name;
  return '_OTHER';
}
