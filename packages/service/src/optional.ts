/**
 * Optional peer dependencies: the heavy parts a service turns on only when it needs them — the
 * OpenTelemetry SDK and exporter (tracing) and ioredis (a rate limit shared through Redis). They load
 * here, lazily, the first time the feature is configured (they cost ~0.3–0.5 s to import, and most runs
 * never need them). A feature switched on without its package installed fails at once with
 * {@link MissingDependencyError}, naming the package and the command that installs it.
 */
import { createRequire } from 'node:module';
import { BulwarkError } from '@bulwark/core';

/** A feature was turned on but the package it runs on is not installed. */
export class MissingDependencyError extends BulwarkError {
  override readonly name = 'MissingDependencyError';
  readonly code = 'BULWARK_ERR_MISSING_DEPENDENCY';
  constructor(
    /** The package that could not be loaded, e.g. `ioredis`. */
    readonly packageName: string,
    /** What needs it, in words, e.g. `tracing (OTEL_TRACES_EXPORTER=otlp)`. */
    readonly feature: string,
    /** Every package the feature needs (the install command names them all). */
    readonly packages: readonly string[],
  ) {
    super(
      `${feature} needs the package ${packageName}, which is not installed: ` +
        `run \`npm install ${packages.join(' ')}\` (optional peer dependencies of @bulwark/service).`,
    );
  }
}

/** The packages tracing runs on (the OpenTelemetry SDK, its Node context manager and the OTLP exporter). */
export const TRACING_PACKAGES = Object.freeze([
  '@opentelemetry/sdk-trace',
  '@opentelemetry/resources',
  '@opentelemetry/core',
  '@opentelemetry/context-async-hooks',
  '@opentelemetry/exporter-trace-otlp-http',
]);

/** The package a Redis-backed rate limit runs on. */
export const REDIS_PACKAGES = Object.freeze(['ioredis']);

const requireHere = createRequire(import.meta.url);

/**
 * Loads an optional package, or throws {@link MissingDependencyError} when it is not installed (any other
 * failure while loading it is rethrown as is).
 */
export function loadOptional<T>(packageName: string, feature: string, packages: readonly string[]): T {
  try {
    return requireHere(packageName) as T;
  } catch (error) {
    if (isNotFound(error, packageName)) throw new MissingDependencyError(packageName, feature, packages);
    throw error;
  }
}

function isNotFound(error: unknown, packageName: string): boolean {
  const e = error as { code?: unknown; message?: unknown };
  return (
    (e?.code === 'MODULE_NOT_FOUND' || e?.code === 'ERR_MODULE_NOT_FOUND') &&
    typeof e.message === 'string' &&
    e.message.includes(`'${packageName}'`)
  );
}
