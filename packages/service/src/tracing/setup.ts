/**
 * OpenTelemetry tracing, configured by the standard `OTEL_*` variables and off by default.
 *
 * {@link setupTracing} builds the SDK's `TracerProvider` (batch processor, OTLP/HTTP or console exporter,
 * sampler from `OTEL_TRACES_SAMPLER`) and registers it globally with the W3C `traceparent` + baggage
 * propagator and an AsyncLocalStorage context manager. With `OTEL_TRACES_EXPORTER` unset or `none`
 * nothing is registered and nothing of the SDK is loaded.
 *
 * The SDK packages (`@opentelemetry/sdk-trace`, `resources`, `core`, `context-async-hooks`,
 * `exporter-trace-otlp-http`, the 3.x / 0.30x line) are optional peer dependencies: they load only when
 * tracing is turned on, and a missing one fails the setup with a `MissingDependencyError` naming it.
 */
import { context, propagation, trace } from '@opentelemetry/api';
import type * as ContextAsyncHooks from '@opentelemetry/context-async-hooks';
import type * as OtelCore from '@opentelemetry/core';
import type * as OtlpHttp from '@opentelemetry/exporter-trace-otlp-http';
import type * as Resources from '@opentelemetry/resources';
import type * as Sdk from '@opentelemetry/sdk-trace';
import type { Sampler, SpanExporter, SpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { InvalidOptionError } from '@bulwark/core';
import {
  loadOptional,
  requireOptionalPackages,
  TRACING_PACKAGES,
  type OptionalFeature,
} from '../optional.js';
import { setTracingActive } from './spans.js';

export interface TracingOptions {
  /** Where `OTEL_*` settings are read from. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** `service.name` when `OTEL_SERVICE_NAME` is unset. @default 'unknown_service:node' */
  serviceName?: string;
  /** `service.version`. @default undefined */
  serviceVersion?: string;
  /** Export to this exporter, whatever `OTEL_TRACES_EXPORTER` says (tests: `SpanCollector` from `@bulwark/service/testing`). */
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
  /** The SDK's provider, when enabled. */
  readonly provider: TracerProvider | undefined;
  /** Exports every finished span now. */
  forceFlush(): Promise<void>;
  /** Flushes, stops the provider and unregisters the globals. Idempotent. */
  shutdown(): Promise<void>;
}

const ATTR_SERVICE_NAME = 'service.name';
const ATTR_SERVICE_VERSION = 'service.version';

/** The SDK, loaded on first use (optional peers). */
interface Loaded {
  sdk: typeof Sdk;
  resources: typeof Resources;
  core: typeof OtelCore;
  contextAsyncHooks: typeof ContextAsyncHooks;
}

function loadSdk(feature: string): Loaded {
  const load = <T>(name: string) => loadOptional<T>(name, feature, TRACING_PACKAGES);
  return {
    sdk: load<typeof Sdk>('@opentelemetry/sdk-trace'),
    resources: load<typeof Resources>('@opentelemetry/resources'),
    core: load<typeof OtelCore>('@opentelemetry/core'),
    contextAsyncHooks: load<typeof ContextAsyncHooks>('@opentelemetry/context-async-hooks'),
  };
}

/**
 * The optional packages tracing needs under `env` (the `OTEL_*` variables), as a feature for
 * `requireOptionalPackages` — or undefined when tracing is off there (or the variables are invalid:
 * `setupTracing` says what is wrong with them).
 */
export function tracingFeature(
  env: Record<string, string | undefined> = process.env,
): OptionalFeature | undefined {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return undefined;
  const names = parseList(env.OTEL_TRACES_EXPORTER ?? 'none');
  if (names.includes('none') || names.length === 0) return undefined;
  if (!names.every((n) => n === 'otlp' || n === 'console')) return undefined;
  return {
    feature: `tracing (OTEL_TRACES_EXPORTER=${env.OTEL_TRACES_EXPORTER})`,
    packages: TRACING_PACKAGES.filter(
      (name) => names.includes('otlp') || name !== '@opentelemetry/exporter-trace-otlp-http',
    ),
  };
}

let current: TracerProvider | undefined;

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
 * `http://localhost:4318`, traces at `/v1/traces`; OTLP/HTTP with JSON bodies), `OTEL_EXPORTER_OTLP_HEADERS`,
 * `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`,
 * and registers a provider when an exporter is configured. Throws {@link InvalidOptionError} naming a bad
 * variable, or `MissingDependencyError` naming an SDK package that is not installed.
 */
export function setupTracing(options: TracingOptions = {}): Tracing {
  const env = options.env ?? process.env;
  const processor = options.processor ?? 'batch';
  if (processor !== 'batch' && processor !== 'simple') {
    throw new InvalidOptionError('tracing.processor', processor, '"batch" or "simple"');
  }
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return DISABLED;

  let wanted: string[] = [];
  if (options.exporter === undefined) {
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
    wanted = names.includes('none') ? [] : names;
    if (wanted.length === 0) return DISABLED;
  }
  // Everything is checked before anything is loaded.
  const endpoint = wanted.includes('otlp') ? otlpTracesEndpoint(env) : undefined;
  const otlpHeaders = parseKeyValues(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS ?? env.OTEL_EXPORTER_OTLP_HEADERS);
  const samplerName = samplerNameFromEnv(env);
  const ratio = samplerRatio(env, samplerName);

  const feature =
    options.exporter === undefined
      ? `tracing (OTEL_TRACES_EXPORTER=${env.OTEL_TRACES_EXPORTER})`
      : 'tracing (setupTracing with an exporter)';
  // every package missing named at once, not one per attempt
  requireOptionalPackages([
    {
      feature,
      packages: TRACING_PACKAGES.filter(
        (name) => endpoint !== undefined || name !== '@opentelemetry/exporter-trace-otlp-http',
      ),
    },
  ]);
  const { sdk, resources, core, contextAsyncHooks } = loadSdk(feature);

  const exporters: SpanExporter[] = [];
  if (options.exporter !== undefined) exporters.push(options.exporter);
  if (endpoint !== undefined) {
    const { OTLPTraceExporter } = loadOptional<typeof OtlpHttp>(
      '@opentelemetry/exporter-trace-otlp-http',
      feature,
      TRACING_PACKAGES,
    );
    exporters.push(new OTLPTraceExporter({ url: endpoint, headers: otlpHeaders }));
  }
  if (wanted.includes('console')) exporters.push(new sdk.ConsoleSpanExporter());

  const serviceName = env.OTEL_SERVICE_NAME?.trim() || options.serviceName || 'unknown_service:node';
  const attributes: Record<string, string> = {
    ...parseKeyValues(env.OTEL_RESOURCE_ATTRIBUTES),
    [ATTR_SERVICE_NAME]: serviceName,
  };
  if (options.serviceVersion !== undefined) attributes[ATTR_SERVICE_VERSION] = options.serviceVersion;

  const spanProcessors: SpanProcessor[] = exporters.map((e) =>
    processor === 'simple'
      ? new sdk.SimpleSpanProcessor({ exporter: e })
      : new sdk.BatchSpanProcessor({ exporter: e }),
  );
  const provider = new sdk.TracerProvider({
    resource: resources.resourceFromAttributes(attributes),
    sampler: makeSampler(sdk, samplerName, ratio),
    spanProcessors,
  });
  // Replace whatever was registered before (a previous setup in the same process, e.g. in tests).
  trace.disable();
  context.disable();
  propagation.disable();
  context.setGlobalContextManager(new contextAsyncHooks.AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new core.CompositePropagator({
      propagators: [new core.W3CTraceContextPropagator(), new core.W3CBaggagePropagator()],
    }),
  );
  trace.setGlobalTracerProvider(provider);
  current = provider;
  setTracingActive(true);

  let stopped: Promise<void> | undefined;
  return {
    enabled: true,
    exporters: options.exporter === undefined ? wanted.join(',') : 'custom',
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
            setTracingActive(false);
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

const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
type SamplerName = (typeof SAMPLERS)[number];

function samplerNameFromEnv(env: Readonly<Record<string, string | undefined>>): SamplerName {
  const name = (env.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on').trim().toLowerCase();
  if (!(SAMPLERS as readonly string[]).includes(name)) {
    throw new InvalidOptionError('OTEL_TRACES_SAMPLER', env.OTEL_TRACES_SAMPLER, SAMPLERS.join(', '));
  }
  return name as SamplerName;
}

function samplerRatio(env: Readonly<Record<string, string | undefined>>, name: SamplerName): number {
  if (!name.endsWith('traceidratio')) return 1;
  const raw = env.OTEL_TRACES_SAMPLER_ARG;
  if (raw === undefined || raw.trim() === '') return 1;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > 1) {
    throw new InvalidOptionError('OTEL_TRACES_SAMPLER_ARG', raw, 'a ratio between 0 and 1');
  }
  return value;
}

function makeSampler(sdk: typeof Sdk, name: SamplerName, ratio: number): Sampler {
  const { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler } = sdk;
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
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
