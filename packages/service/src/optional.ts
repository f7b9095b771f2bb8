/**
 * Optional peer dependencies: the heavy parts a service turns on only when it needs them — the
 * OpenTelemetry SDK and exporter (tracing) and ioredis (a rate limit shared through Redis). They load
 * here, lazily, the first time the feature is configured (they cost ~0.3–0.5 s to import, and most runs
 * never need them). A feature switched on without its package installed fails at once with
 * {@link MissingDependencyError}, naming the package and the command that installs it — every missing
 * package of every feature at once when they are checked together ({@link requireOptionalPackages}).
 */
import { createRequire } from 'node:module';
import { BulwarkError } from '@bulwark/core';

/** A feature was turned on but the package it runs on is not installed. */
export class MissingDependencyError extends BulwarkError {
  override readonly name = 'MissingDependencyError';
  readonly code = 'BULWARK_ERR_MISSING_DEPENDENCY';
  /** Every package that is not installed (`packageName` is the first of them). */
  readonly missing: readonly string[];
  constructor(
    /** The package that could not be loaded, e.g. `ioredis`. */
    readonly packageName: string,
    /** What needs it, in words, e.g. `tracing (OTEL_TRACES_EXPORTER=otlp)` (several: "A and B"). */
    readonly feature: string,
    /** Every package the feature(s) need (the install command names them all). */
    readonly packages: readonly string[],
    missing: readonly string[] = [packageName],
  ) {
    const several = missing.length > 1;
    super(
      `${feature} ${/ and /.test(feature) ? 'need' : 'needs'} the package${several ? 's' : ''} ${listed(missing)}, ` +
        `which ${several ? 'are' : 'is'} not installed: ` +
        `run \`npm install ${packages.join(' ')}\` (optional peer dependencies of @bulwark/service).`,
    );
    this.missing = Object.freeze([...missing]);
  }
}

function listed(names: readonly string[]): string {
  return names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
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

/** A rate limit shared through Redis, as a feature for {@link requireOptionalPackages}. */
export const REDIS_FEATURE: OptionalFeature = Object.freeze({
  feature: 'a Redis rate-limit store (rateLimit.redisUrl / REDIS_URL)',
  packages: REDIS_PACKAGES,
});

const requireHere = createRequire(import.meta.url);

/** A feature that is turned on, in words, and the optional packages it runs on. */
export interface OptionalFeature {
  /** e.g. `tracing (OTEL_TRACES_EXPORTER=otlp)` */
  feature: string;
  /** e.g. {@link TRACING_PACKAGES} */
  packages: readonly string[];
}

/**
 * Checks, before anything is loaded, that the packages of every feature given are installed; throws one
 * {@link MissingDependencyError} naming every missing package of every feature, with one `npm install`
 * command for them all (so a second attempt does not find the next one missing).
 */
export function requireOptionalPackages(features: readonly OptionalFeature[]): void {
  const short: OptionalFeature[] = [];
  const missing: string[] = [];
  for (const f of features) {
    const gone = f.packages.filter((name) => !installed(name));
    if (gone.length === 0) continue;
    short.push(f);
    for (const name of gone) if (!missing.includes(name)) missing.push(name);
  }
  if (missing.length === 0) return;
  const packages = [...new Set(short.flatMap((f) => f.packages))];
  throw new MissingDependencyError(missing[0]!, listed(short.map((f) => f.feature)), packages, missing);
}

function installed(packageName: string): boolean {
  try {
    requireHere.resolve(packageName);
    // Node 22's require.resolve skips module.registerHooks (Node 24's does not), which a loader can use
    // to hide or redirect a package; import.meta.resolve goes through them on both.
    import.meta.resolve(packageName);
    return true;
  } catch (error) {
    if (isNotFound(error, packageName)) return false;
    throw error;
  }
}

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
