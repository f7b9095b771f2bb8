/**
 * Graceful shutdown, wired by the program's `main.ts`: `installShutdown(app, { … })`.
 *
 * On the first SIGTERM / SIGINT:
 * 1. readiness fails at once (`/readyz` 503) and new requests get `Connection: close`; liveness stays 200;
 * 2. the server keeps serving for `drainDelayMs` (load balancers notice the failing readiness);
 * 3. `app.close()`: no new connections; requests on open ones get 503 + `Connection: close`; idle
 *    keep-alive sockets are closed (again every 100 ms, as in-flight requests finish); in-flight
 *    requests complete;
 * 4. `onShutdown` runs (close worker pools, …), tracing is flushed (for at most
 *    {@link TRACING_FLUSH_MS}: a collector that is down or slow is a warning, not a failed shutdown), logs
 *    are flushed; exit 0.
 *
 * A hard deadline (`shutdownTimeoutMs` from the signal) destroys every socket and exits 1; a second
 * signal exits at once with 128 + the signal number. The same signal again within
 * {@link DUPLICATE_SIGNAL_MS} of the first is not a second one: a terminal's Ctrl-C reaches the whole
 * process group, and a wrapper such as `npm start` forwards the same SIGINT once more.
 */
import { constants } from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { Clock, ClockTimer } from '@bulwark/core';
import { checks, systemClock } from '@bulwark/core/internal';
import type { Tracing } from './tracing/setup.js';

export interface ShutdownOptions {
  /** Signals that begin the shutdown. @default ['SIGTERM', 'SIGINT'] */
  signals?: readonly NodeJS.Signals[];
  /** Keep serving this long after readiness fails, before closing, in ms. @default 0 */
  drainDelayMs?: number;
  /** Hard deadline from the first signal; then sockets are destroyed and the process exits 1, in ms. @default 10000 */
  shutdownTimeoutMs?: number;
  /** Runs after the server closed (stop worker pools, close clients). Bounded by the deadline. */
  onShutdown?: (reason: string) => unknown;
  /** Tracing to flush and stop at the end. @default app.bulwark.tracing */
  tracing?: Tracing;
  /** How to end the process. @default process.exit */
  exit?: (code: number) => void;
  /** How often idle connections are closed during the drain, in ms. @default 100 */
  idleSweepIntervalMs?: number;
  /** The drain delay, the deadline and the idle sweep run on this clock. @default systemClock */
  clock?: Clock;
}

export const SHUTDOWN_DEFAULTS = Object.freeze({
  signals: Object.freeze(['SIGTERM', 'SIGINT']) as readonly NodeJS.Signals[],
  drainDelayMs: 0,
  shutdownTimeoutMs: 10_000,
  idleSweepIntervalMs: 100,
});

/**
 * The longest the final tracing flush may take, in ms (less when the deadline is nearer). Spans a
 * collector has not taken by then are dropped, with a warning; the shutdown still exits 0.
 */
export const TRACING_FLUSH_MS = 3000;

/** A repeat of the first signal within this many ms is the same event delivered twice (see above). */
export const DUPLICATE_SIGNAL_MS = 100;

const KEYS = [...Object.keys(SHUTDOWN_DEFAULTS), 'onShutdown', 'tracing', 'exit', 'clock'];

export interface ShutdownHandle {
  /** True once shutdown began. */
  readonly started: boolean;
  /** Begins the shutdown by hand (as a signal would); resolves with the exit code once done. */
  shutdown(reason?: string): Promise<number>;
  /** Removes the signal listeners (the shutdown itself, once begun, continues). */
  dispose(): void;
}

export function installShutdown(app: FastifyInstance, options: ShutdownOptions = {}): ShutdownHandle {
  const o = checks.optionsObject('shutdown', options);
  checks.knownKeys('shutdown', o, KEYS);
  const d = SHUTDOWN_DEFAULTS;
  const signals = o.signals ?? d.signals;
  for (const s of signals) checks.oneOf('shutdown.signals', s, Object.keys(constants.signals));
  const drainDelayMs = checks.nonNegativeMs('shutdown.drainDelayMs', o.drainDelayMs ?? d.drainDelayMs);
  const shutdownTimeoutMs = checks.positiveMs(
    'shutdown.shutdownTimeoutMs',
    o.shutdownTimeoutMs ?? d.shutdownTimeoutMs,
  );
  const sweepMs = checks.positiveMs(
    'shutdown.idleSweepIntervalMs',
    o.idleSweepIntervalMs ?? d.idleSweepIntervalMs,
  );
  const onShutdown =
    o.onShutdown === undefined
      ? undefined
      : checks.fn<(reason: string) => unknown>('shutdown.onShutdown', o.onShutdown);
  const exit =
    o.exit === undefined
      ? (code: number) => process.exit(code)
      : checks.fn<(code: number) => void>('shutdown.exit', o.exit);
  const clock = checks.clock('shutdown.clock', o.clock ?? systemClock);
  const log = app.log;

  let running: Promise<number> | undefined;
  let exited = false;
  const finish = (code: number) => {
    if (exited) return;
    exited = true;
    exit(code);
  };

  const run = async (reason: string): Promise<number> => {
    const kit = (app as Partial<Pick<FastifyInstance, 'bulwark'>>).bulwark;
    kit?.beginShutdown();
    const tracing = o.tracing ?? kit?.tracing;
    log.info({ reason, drainDelayMs, shutdownTimeoutMs }, 'shutdown started: readiness failing, draining');

    let sweep: ClockTimer | undefined;
    let sweeping = false;
    const sweepLater = () => {
      sweep = clock.setTimeout(() => {
        if (!sweeping) return;
        app.server.closeIdleConnections?.();
        sweepLater();
      }, sweepMs);
      sweep.unref?.();
    };
    const stopSweep = () => {
      sweeping = false;
      if (sweep !== undefined) clock.clearTimeout(sweep);
    };
    const deadlineAt = clock.now() + shutdownTimeoutMs;
    const deadline = clock.setTimeout(() => {
      log.error(
        { reason, shutdownTimeoutMs },
        'shutdown deadline passed; closing every connection and exiting',
      );
      app.server.closeAllConnections?.();
      flushThen(app, () => finish(1));
    }, shutdownTimeoutMs);
    // Not unref'd: if the shutdown hangs with nothing else keeping the process alive, the deadline still ends it (exit 1).
    try {
      if (drainDelayMs > 0) {
        await new Promise<void>((resolve) => clock.setTimeout(resolve, drainDelayMs).unref?.());
      }
      sweeping = true;
      sweepLater();
      await app.close();
      stopSweep();
      await onShutdown?.(reason);
      if (tracing !== undefined) await flushTracing(tracing, deadlineAt, reason);
      clock.clearTimeout(deadline);
      log.info({ reason }, 'shutdown complete');
      return 0;
    } catch (error) {
      stopSweep();
      clock.clearTimeout(deadline);
      log.error({ reason, err: error }, 'shutdown failed');
      return 1;
    }
  };

  /** tracing.shutdown(), bounded; its failure (no collector, a slow one) is logged as a warning. */
  const flushTracing = async (tracing: Tracing, deadlineAt: number, reason: string): Promise<void> => {
    const boundMs = Math.max(0, Math.min(TRACING_FLUSH_MS, deadlineAt - clock.now() - 50));
    let timer: ClockTimer | undefined;
    const where =
      tracing.endpoint === undefined ? '' : ` (is an OTLP collector listening at ${tracing.endpoint}?)`;
    try {
      const finished = await Promise.race([
        tracing.shutdown().then(() => true),
        new Promise<false>((resolve) => {
          timer = clock.setTimeout(() => resolve(false), boundMs);
        }),
      ]);
      if (!finished)
        log.warn(
          { reason, flushMs: boundMs },
          `tracing: the last spans were not exported within ${boundMs} ms${where}; shutting down without them`,
        );
    } catch (error) {
      log.warn(
        { reason, err: error },
        `tracing: the last spans could not be exported${where}; shutting down without them`,
      );
    } finally {
      if (timer !== undefined) clock.clearTimeout(timer);
    }
  };

  const shutdown = (reason = 'manual'): Promise<number> => {
    running ??= run(reason).then((code) => {
      flushThen(app, () => finish(code));
      return code;
    });
    return running;
  };

  let first: { signal: NodeJS.Signals; at: number } | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (first?.signal === signal && performance.now() - first.at < DUPLICATE_SIGNAL_MS) return;
    if (running !== undefined) {
      const code = 128 + (constants.signals[signal] ?? 15);
      log.warn({ signal }, 'second signal during shutdown; exiting now');
      flushThen(app, () => finish(code));
      return;
    }
    first = { signal, at: performance.now() };
    void shutdown(signal);
  };
  for (const s of signals) process.on(s, onSignal);

  return {
    get started() {
      return running !== undefined;
    },
    shutdown,
    dispose() {
      for (const s of signals) process.off(s, onSignal);
    },
  };
}

/** Flushes the logger (pino's asynchronous destination) and then calls `then`, whatever happens. */
function flushThen(app: FastifyInstance, then: () => void): void {
  const logger = app.log as { flush?: (cb?: (err?: Error) => void) => void };
  if (typeof logger.flush !== 'function') {
    then();
    return;
  }
  let called = false;
  const once = () => {
    if (called) return;
    called = true;
    then();
  };
  const guard = setTimeout(once, 200);
  guard.unref();
  try {
    logger.flush(() => {
      clearTimeout(guard);
      once();
    });
  } catch {
    clearTimeout(guard);
    once();
  }
}
