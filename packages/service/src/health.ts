/**
 * Liveness, readiness and the detailed health report.
 *
 * - `/livez`: the process is alive and its event loop turns. Never checks dependencies (a Redis outage
 *   must not make an orchestrator restart every instance).
 * - `/readyz`: may this instance take traffic? Runs the registered dependency checks (in parallel, each
 *   bounded by its timeout; concurrent probes share one evaluation) and fails at once — without running
 *   them — once shutdown has begun.
 * - `/healthz`: the detailed report (the chapter's health endpoint): version, uptime, checks, breaker
 *   states, rate-limiter mode, shedding state.
 */
import { timingSafeEqual } from 'node:crypto';
import { InvalidOptionError } from '@bulwark/core';
import { checks } from '@bulwark/core/internal';

/** A dependency check: resolve (or return) to pass; throw, reject or return `false` to fail. */
export type HealthCheck = (signal: AbortSignal) => unknown;

export interface HealthCheckOptions {
  /** Time allowed for one run, in ms. @default the service's `health.checkTimeoutMs` */
  timeoutMs?: number;
  /**
   * A failing critical check fails readiness (503); a non-critical one only marks `/healthz` degraded.
   * @default true
   */
  critical?: boolean;
}

export interface HealthOptions {
  /** Default time allowed for each check, in ms. @default 2000 */
  checkTimeoutMs?: number;
  /**
   * Who sees the details of `/healthz` and `/readyz` (check errors and details, breaker states, the
   * rate-limit store and its last error, shedding, tracing): `false` — nobody, every caller gets the
   * status, version, uptime and each check's status; `{ token }` — callers that send
   * `Authorization: Bearer <token>`; `true` — everyone (a trusted network only: errors can name hosts).
   * @default false
   */
  details?: boolean | { token: string };
}

export const HEALTH_DEFAULTS = Object.freeze({ checkTimeoutMs: 2000, details: false as boolean });

export type CheckStatus = 'ok' | 'fail';

export interface CheckResult {
  status: CheckStatus;
  critical: boolean;
  durationMs: number;
  /** Why it failed: the error's message (checks must not put secrets in their errors). */
  error?: string;
  /** What the check returned, when it returned an object. */
  details?: unknown;
}

export interface ReadinessReport {
  status: CheckStatus;
  shuttingDown?: true;
  checks: Record<string, CheckResult>;
}

interface Registered {
  check: HealthCheck;
  timeoutMs: number;
  critical: boolean;
}

export class Health {
  readonly checkTimeoutMs: number;
  readonly startedAt = new Date();
  /** `true`: details for everyone; `false`: for nobody; a Buffer: for callers that present this bearer token. */
  readonly #details: boolean | Buffer;
  readonly #checks = new Map<string, Registered>();
  #shuttingDown = false;
  #pending: Promise<ReadinessReport> | undefined;
  #lastReady = true;

  constructor(options?: HealthOptions) {
    const o = checks.optionsObject('health', options);
    checks.knownKeys('health', o, ['checkTimeoutMs', 'details']);
    this.checkTimeoutMs = checks.positiveMs(
      'health.checkTimeoutMs',
      o.checkTimeoutMs ?? HEALTH_DEFAULTS.checkTimeoutMs,
    );
    const details: unknown = o.details ?? HEALTH_DEFAULTS.details;
    if (typeof details === 'boolean') this.#details = details;
    else {
      const token = (details as { token?: unknown } | null)?.token;
      if (typeof token !== 'string' || !/^[\x21-\x7e]{16,}$/.test(token)) {
        throw new InvalidOptionError(
          'health.details',
          typeof token === 'string' ? '(a token, hidden)' : details,
          'true, false or { token } with a token of at least 16 printable ASCII characters',
        );
      }
      checks.knownKeys('health.details', details as object, ['token']);
      this.#details = Buffer.from(token);
    }
  }

  /** Whether a caller sending this `Authorization` header may see the detailed reports. */
  showDetails(authorization: string | undefined): boolean {
    const d = this.#details;
    if (typeof d === 'boolean') return d;
    // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` and `BEARER` are Bearer too.
    const match = authorization === undefined ? null : /^bearer +(.*)$/is.exec(authorization);
    if (match === null) return false;
    const given = Buffer.from(match[1]!.trim());
    return given.length === d.length && timingSafeEqual(given, d);
  }

  /** Registers a readiness check under `name` (replacing one of the same name). */
  addCheck(name: string, check: HealthCheck, options: HealthCheckOptions = {}): void {
    checks.string('health.addCheck.name', name);
    checks.fn('health.addCheck.check', check);
    checks.knownKeys('health.addCheck', options, ['timeoutMs', 'critical']);
    this.#checks.set(name, {
      check,
      timeoutMs: checks.positiveMs('health.addCheck.timeoutMs', options.timeoutMs ?? this.checkTimeoutMs),
      critical: checks.boolean('health.addCheck.critical', options.critical ?? true),
    });
  }

  removeCheck(name: string): boolean {
    return this.#checks.delete(name);
  }

  get checkNames(): string[] {
    return [...this.#checks.keys()];
  }

  /** True once shutdown began: readiness fails from then on. */
  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Marks the instance as shutting down (readiness fails from the next probe on). Idempotent. */
  beginShutdown(): void {
    this.#shuttingDown = true;
    this.#lastReady = false;
  }

  /** The outcome of the last readiness evaluation (false once shutting down). */
  get lastReady(): boolean {
    return this.#lastReady && !this.#shuttingDown;
  }

  uptimeSeconds(): number {
    return process.uptime();
  }

  /** Evaluates readiness: fails at once while shutting down, else runs the checks. */
  async readiness(): Promise<ReadinessReport> {
    if (this.#shuttingDown) {
      return {
        status: 'fail',
        shuttingDown: true,
        checks: { shutdown: { status: 'fail', critical: true, durationMs: 0, error: 'shutting down' } },
      };
    }
    const report = await this.runChecks();
    this.#lastReady = report.status === 'ok' && !this.#shuttingDown;
    return this.#shuttingDown ? { ...report, status: 'fail', shuttingDown: true } : report;
  }

  /** Runs every check (even while shutting down). Concurrent callers share one run. */
  runChecks(): Promise<ReadinessReport> {
    this.#pending ??= this.#run().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #run(): Promise<ReadinessReport> {
    const entries = [...this.#checks];
    const results = await Promise.all(entries.map(([, r]) => runCheck(r)));
    const out: Record<string, CheckResult> = {};
    let status: CheckStatus = 'ok';
    entries.forEach(([name], i) => {
      const result = results[i]!;
      out[name] = result;
      if (result.status === 'fail' && result.critical) status = 'fail';
    });
    return { status, checks: out };
  }
}

async function runCheck(r: Registered): Promise<CheckResult> {
  const start = performance.now();
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const elapsed = () => Math.round((performance.now() - start) * 100) / 100;
  try {
    const value = await Promise.race([
      Promise.resolve().then(() => r.check(controller.signal)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = new Error(`check timed out after ${r.timeoutMs} ms`);
          controller.abort(error);
          reject(error);
        }, r.timeoutMs);
      }),
    ]);
    if (value === false) {
      return { status: 'fail', critical: r.critical, durationMs: elapsed(), error: 'check returned false' };
    }
    return {
      status: 'ok',
      critical: r.critical,
      durationMs: elapsed(),
      ...(typeof value === 'object' && value !== null ? { details: value } : {}),
    };
  } catch (error) {
    return { status: 'fail', critical: r.critical, durationMs: elapsed(), error: message(error) };
  } finally {
    clearTimeout(timer);
  }
}

function message(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
