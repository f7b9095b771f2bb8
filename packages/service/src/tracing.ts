/**
 * OpenTelemetry tracing, configured by the standard `OTEL_*` variables and off by default.
 *
 * - {@link setupTracing} builds a `NodeTracerProvider` (batch processor, OTLP/HTTP or console exporter,
 *   sampler from `OTEL_TRACES_SAMPLER`) and registers it globally with the W3C `traceparent` propagator
 *   and an AsyncLocalStorage context manager. With `OTEL_TRACES_EXPORTER` unset or `none` nothing is
 *   registered and every helper here is a no-op that costs one boolean check.
 * - The service opens one SERVER span per request (its own hooks; no auto-instrumentation to load
 *   first), continuing the caller's trace from `traceparent`.
 * - {@link injectTraceHeaders} puts the active context into an outgoing request's headers;
 *   {@link traceAttempt} makes each attempt of a resilient call (each retry) its own child span.
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { createRequire } from 'node:module';
import type * as OtlpHttp from '@opentelemetry/exporter-trace-otlp-http';
import type * as Resources from '@opentelemetry/resources';
import type * as SdkBase from '@opentelemetry/sdk-trace-base';
import type { SpanExporter, SpanProcessor, Sampler } from '@opentelemetry/sdk-trace-base';
import type * as SdkNode from '@opentelemetry/sdk-trace-node';
import type { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { InvalidOptionError, type CallContext, type Operation } from '@bulwark/core';

export interface TracingOptions {
  /** Where `OTEL_*` settings are read from. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** `service.name` when `OTEL_SERVICE_NAME` is unset. @default 'unknown_service:node' */
  serviceName?: string;
  /** `service.version`. @default undefined */
  serviceVersion?: string;
  /** Export to this exporter, whatever `OTEL_TRACES_EXPORTER` says (tests use an `InMemorySpanExporter`). */
  exporter?: SpanExporter;
  /** `batch` (production) or `simple` (each span exported as it ends: tests, debugging). @default 'batch' */
  processor?: 'batch' | 'simple';
}

export interface Tracing {
  /** False when tracing is off (then nothing was registered). */
  readonly enabled: boolean;
  /** What spans go to: `none`, `otlp`, `console`, both (`otlp,console`) or `custom`. */
  readonly exporters: string;
  /** Where OTLP spans are sent, when exporting OTLP. */
  readonly endpoint: string | undefined;
  readonly serviceName: string;
  /** The sampler in force, e.g. `parentbased_always_on`. */
  readonly sampler: string;
  /** The provider, when enabled. */
  readonly provider: NodeTracerProvider | undefined;
  /** Exports every finished span now. */
  forceFlush(): Promise<void>;
  /** Flushes, stops the provider and unregisters the globals. Idempotent. */
  shutdown(): Promise<void>;
}

const TRACER_NAME = '@bulwark/service';

// OpenTelemetry semantic-convention attribute names (stable), spelled out to spare loading the package.
const ATTR_HTTP_REQUEST_METHOD = 'http.request.method';
const ATTR_HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
const ATTR_HTTP_ROUTE = 'http.route';
const ATTR_URL_PATH = 'url.path';
const ATTR_URL_SCHEME = 'url.scheme';
const ATTR_SERVICE_NAME = 'service.name';
const ATTR_SERVICE_VERSION = 'service.version';

// The SDK and the exporter load only when tracing is turned on (they take ~0.5 s to import, and most runs
// never need them). They share the API's globals with this module, so the spans they make are ours.
const require = createRequire(import.meta.url);
const sdk = () => ({
  base: require('@opentelemetry/sdk-trace-base') as typeof SdkBase,
  node: require('@opentelemetry/sdk-trace-node') as typeof SdkNode,
  resources: require('@opentelemetry/resources') as typeof Resources,
});
let active = false;
let current: NodeTracerProvider | undefined;

/** True while a `setupTracing` provider is registered (and not shut down). */
export function tracingEnabled(): boolean {
  return active;
}

/** The tracer the kit's spans come from (the global provider's; a no-op tracer when tracing is off). */
export function kitTracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

const DISABLED: Tracing = Object.freeze({
  enabled: false,
  exporters: 'none',
  endpoint: undefined,
  serviceName: '',
  sampler: 'always_off',
  provider: undefined,
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
});

/**
 * Reads `OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER` (`none` by default here, `otlp`, `console`, or a
 * comma list), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` (default
 * `http://localhost:4318`, traces at `/v1/traces`), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`,
 * `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, and registers a
 * provider when an exporter is configured. Throws {@link InvalidOptionError} naming a bad variable.
 */
export function setupTracing(options: TracingOptions = {}): Tracing {
  const env = options.env ?? process.env;
  const processor = options.processor ?? 'batch';
  if (processor !== 'batch' && processor !== 'simple') {
    throw new InvalidOptionError('tracing.processor', processor, '"batch" or "simple"');
  }
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return DISABLED;

  let exporters: SpanExporter[];
  let exporterNames: string;
  let endpoint: string | undefined;
  if (options.exporter !== undefined) {
    exporters = [options.exporter];
    exporterNames = 'custom';
  } else {
    const names = parseList(env.OTEL_TRACES_EXPORTER ?? 'none');
    for (const name of names) {
      if (!['none', 'otlp', 'console'].includes(name)) {
        throw new InvalidOptionError(
          'OTEL_TRACES_EXPORTER',
          env.OTEL_TRACES_EXPORTER,
          'none, otlp, console or a comma list of them',
        );
      }
    }
    const wanted = names.includes('none') ? [] : names;
    if (wanted.length === 0) return DISABLED;
    exporters = [];
    if (wanted.includes('otlp')) {
      endpoint = otlpTracesEndpoint(env);
      const headers = parseKeyValues(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS ?? env.OTEL_EXPORTER_OTLP_HEADERS);
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof OtlpHttp;
      exporters.push(new OTLPTraceExporter({ url: endpoint, headers }));
    }
    if (wanted.includes('console')) exporters.push(new (sdk().base.ConsoleSpanExporter)());
    exporterNames = wanted.join(',');
  }

  const { sampler, samplerName } = samplerFromEnv(env);
  const serviceName = env.OTEL_SERVICE_NAME?.trim() || options.serviceName || 'unknown_service:node';
  const attributes: Record<string, string> = {
    ...parseKeyValues(env.OTEL_RESOURCE_ATTRIBUTES),
    [ATTR_SERVICE_NAME]: serviceName,
  };
  if (options.serviceVersion !== undefined) attributes[ATTR_SERVICE_VERSION] = options.serviceVersion;

  const { base, node, resources } = sdk();
  const spanProcessors: SpanProcessor[] = exporters.map((e) =>
    processor === 'simple' ? new base.SimpleSpanProcessor(e) : new base.BatchSpanProcessor(e),
  );
  const provider = new node.NodeTracerProvider({
    resource: resources.resourceFromAttributes(attributes),
    sampler,
    spanProcessors,
  });
  // Replace whatever was registered before (a previous setup in the same process, e.g. in tests).
  trace.disable();
  context.disable();
  propagation.disable();
  provider.register();
  current = provider;
  active = true;

  let stopped: Promise<void> | undefined;
  return {
    enabled: true,
    exporters: exporterNames,
    endpoint,
    serviceName,
    sampler: samplerName,
    provider,
    forceFlush: () => provider.forceFlush(),
    shutdown() {
      stopped ??= (async () => {
        try {
          await provider.shutdown();
        } finally {
          if (current === provider) {
            current = undefined;
            active = false;
            trace.disable();
            context.disable();
            propagation.disable();
          }
        }
      })();
      return stopped;
    },
  };
}

function otlpTracesEndpoint(env: Readonly<Record<string, string | undefined>>): string {
  const specific = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  const url =
    specific || (base ? `${base.replace(/\/+$/, '')}/v1/traces` : 'http://localhost:4318/v1/traces');
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
  } catch {
    throw new InvalidOptionError(
      specific ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT',
      specific || base,
      'an http(s) URL',
    );
  }
  return url;
}

function samplerFromEnv(env: Readonly<Record<string, string | undefined>>): {
  sampler: Sampler;
  samplerName: string;
} {
  const { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler } = sdk().base;
  const name = (env.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on').trim().toLowerCase();
  const ratio = (): number => {
    const raw = env.OTEL_TRACES_SAMPLER_ARG;
    if (raw === undefined || raw.trim() === '') return 1;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0 || value > 1) {
      throw new InvalidOptionError('OTEL_TRACES_SAMPLER_ARG', raw, 'a ratio between 0 and 1');
    }
    return value;
  };
  switch (name) {
    case 'always_on':
      return { sampler: new AlwaysOnSampler(), samplerName: name };
    case 'always_off':
      return { sampler: new AlwaysOffSampler(), samplerName: name };
    case 'traceidratio':
      return { sampler: new TraceIdRatioBasedSampler(ratio()), samplerName: name };
    case 'parentbased_always_on':
      return { sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }), samplerName: name };
    case 'parentbased_always_off':
      return { sampler: new ParentBasedSampler({ root: new AlwaysOffSampler() }), samplerName: name };
    case 'parentbased_traceidratio':
      return {
        sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio()) }),
        samplerName: name,
      };
    default:
      throw new InvalidOptionError(
        'OTEL_TRACES_SAMPLER',
        env.OTEL_TRACES_SAMPLER,
        'always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio',
      );
  }
}

function parseList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
}

/** `k1=v1,k2=v2` (values percent-decoded), as OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS use. */
function parseKeyValues(value: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (value === undefined) return out;
  for (const pair of value.split(',')) {
    const i = pair.indexOf('=');
    if (i <= 0) continue;
    const key = pair.slice(0, i).trim();
    let v = pair.slice(i + 1).trim();
    try {
      v = decodeURIComponent(v);
    } catch {
      // keep the raw value
    }
    if (key !== '') out[key] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Server spans (used by the service's hooks)

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
  if (statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

// ---------------------------------------------------------------------------------------------------------
// Helpers for outgoing calls

/**
 * Writes the trace context (`traceparent`, `tracestate`, baggage) of `ctx` — by default the active one —
 * into `headers` and returns them. A no-op when tracing is off.
 */
export function injectTraceHeaders<H extends Record<string, string>>(headers: H = {} as H, ctx?: Context): H {
  if (active) propagation.inject(ctx ?? context.active(), headers);
  return headers;
}

export interface TraceAttemptOptions {
  /** Span kind. @default SpanKind.CLIENT */
  kind?: SpanKind;
  /** Extra span attributes. */
  attributes?: Record<string, string | number | boolean>;
}

/**
 * Wraps an operation so each call of it — each attempt a retry policy makes — runs in its own child span
 * named `name`, with the attribute `bulwark.attempt` (1, 2, …), status ERROR when the attempt fails, and
 * the attempt's span active inside (so {@link injectTraceHeaders} propagates it). Returns `fn` itself
 * when tracing is off.
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
    return kitTracer().startActiveSpan(
      name,
      {
        kind: options.kind ?? SpanKind.CLIENT,
        attributes: { ...options.attributes, 'bulwark.attempt': ctx.attempt },
      },
      async (span) => {
        try {
          return await fn(ctx);
        } catch (error) {
          span.setStatus({
            code: SpanStatusCode.ERROR,
            message: error instanceof Error ? error.message : String(error),
          });
          if (error instanceof Error) span.recordException(error);
          throw error;
        } finally {
          span.end();
        }
      },
    );
  };
}
