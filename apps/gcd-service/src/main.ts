#!/usr/bin/env node
/**
 * Process wiring only: configuration from the environment, the server, listening, signals.
 * Everything else is in factories a test can call (server.ts).
 *
 * Exit codes: 0 after a clean shutdown, 78 (EX_CONFIG) for a bad environment, 1 for a failure to
 * start (port in use, unreadable certificate, …) or a shutdown that missed its deadline.
 */
import { ConfigError, loadConfig, type GcdConfig } from './config.js';
import { createGcdServer, type GcdServer } from './server.js';

const EX_CONFIG = 78;

let config: GcdConfig;
try {
  config = loadConfig(process.env);
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`gcd-service: ${error.message}\nSee docs/gcd-service.md for every variable.\n`);
    process.exit(EX_CONFIG);
  }
  throw error;
}

let server: GcdServer;
try {
  server = await createGcdServer(config);
  const url = await server.listen();
  server.app.log.info({ url, mode: config.mode }, `gcd-service (${config.mode}) listening on ${url}`);
} catch (error) {
  process.stderr.write(`gcd-service: cannot start: ${(error as Error).message}\n`);
  process.exit(1);
}

let stopping = false;
function shutdown(signal: NodeJS.Signals): void {
  if (stopping) {
    server.app.log.warn({ signal }, 'second signal: exiting now');
    process.exit(1);
  }
  stopping = true;
  server.app.log.info({ signal, deadlineMs: config.shutdownTimeoutMs }, 'shutting down');
  const deadline = setTimeout(() => {
    server.app.log.error({ deadlineMs: config.shutdownTimeoutMs }, 'shutdown deadline passed: exiting');
    process.exit(1);
  }, config.shutdownTimeoutMs);
  deadline.unref();
  server.close().then(
    () => process.exit(0),
    (error: unknown) => {
      server.app.log.error({ err: error }, 'shutdown failed');
      process.exit(1);
    },
  );
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.on('SIGHUP', () => {
  if (config.tls !== undefined) server.reloadTls('SIGHUP');
  else server.app.log.info('SIGHUP ignored: TLS is not enabled');
});
