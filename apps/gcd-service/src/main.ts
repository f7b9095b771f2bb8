#!/usr/bin/env node
/**
 * Process wiring only: configuration from the environment, tracing, the server, listening, signals.
 * Everything else is in factories a test can call (server.ts).
 *
 * Signals: SIGTERM / SIGINT begin the kit's graceful shutdown (readiness fails at once, in-flight
 * requests finish, then the worker pool stops; a second signal exits at once); SIGHUP reloads the TLS
 * certificate; SIGUSR2 switches a game day's fault injection (`CHAOS_*`) off and on.
 *
 * Exit codes: 0 after a clean shutdown; 78 (EX_CONFIG) for a bad environment; 1 for a failure to start
 * (port in use, unreadable certificate, …) or a shutdown that missed `SHUTDOWN_TIMEOUT_MS`; 128 + n
 * when a second signal n cut the shutdown short.
 */
import { InvalidOptionError } from '@bulwark/core';
import {
  installShutdown,
  MissingDependencyError,
  REDIS_FEATURE,
  requireOptionalPackages,
  setupTracing,
  tracingFeature,
  type OptionalFeature,
  type Tracing,
} from '@bulwark/service';
import { ConfigError, loadConfig, type GcdConfig } from './config.js';
import { createGcdServer, type GcdServer } from './server.js';

const EX_CONFIG = 78;

function configError(message: string): never {
  process.stderr.write(`gcd-service: ${message}\nSee docs/gcd-service.md for every variable.\n`);
  process.exit(EX_CONFIG);
}

let config: GcdConfig;
let tracing: Tracing;
try {
  config = loadConfig(process.env);
  // Every optional package the configuration needs, checked at once: one message names all that are
  // missing (tracing's and Redis'), with one npm install for them.
  const features: OptionalFeature[] = [];
  const tracingNeeds = tracingFeature(config.otel);
  if (tracingNeeds !== undefined) features.push(tracingNeeds);
  if (config.redisUrl !== undefined && config.rateLimit !== undefined) features.push(REDIS_FEATURE);
  requireOptionalPackages(features);
  tracing = setupTracing({
    env: config.otel,
    serviceName: config.mode === 'validator' ? 'gcd-validator' : 'gcd-service',
  });
} catch (error) {
  if (error instanceof ConfigError) configError(error.message);
  if (error instanceof InvalidOptionError) {
    configError(
      `Invalid configuration:\n  ${error.option}=${JSON.stringify(error.received)}: expected ${error.expected}`,
    );
  }
  // A feature turned on whose optional package is not installed (tracing, a Redis rate limit).
  if (error instanceof MissingDependencyError) configError(error.message);
  throw error;
}

let server: GcdServer;
try {
  server = await createGcdServer(config, { tracing });
  await server.listen();
} catch (error) {
  // A missing optional package, or a value the kit refused (told in variables: configErrorOf).
  if (error instanceof MissingDependencyError || error instanceof ConfigError) {
    await tracing.shutdown();
    configError(error.message);
  }
  process.stderr.write(`gcd-service: cannot start: ${(error as Error).message}\n`);
  await tracing.shutdown();
  process.exit(1);
}

installShutdown(server.app, {
  shutdownTimeoutMs: config.shutdownTimeoutMs,
  drainDelayMs: config.drainDelayMs,
  tracing,
});
process.on('SIGHUP', () => {
  if (config.tls !== undefined) server.reloadTls('SIGHUP');
  else server.app.log.info('SIGHUP ignored: TLS is not enabled');
});
process.on('SIGUSR2', () => {
  server.switchChaos('SIGUSR2');
});
