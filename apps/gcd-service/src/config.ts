/**
 * Configuration comes only from the environment. `loadConfig(env)` turns it into typed options, with
 * every default declared once in {@link DEFAULTS}; a bad value is reported with the variable's name,
 * what was received and what is allowed (all problems at once), and `main.ts` exits non-zero.
 *
 * An empty value (`PORT=`) counts as unset, as Docker Compose writes unset interpolations.
 * Secrets (the password in `REDIS_URL`) are never echoed: see {@link redactUrl}.
 */
import { availableParallelism } from 'node:os';

export type Mode = 'gcd' | 'validator';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type RedisErrorMode = 'local' | 'allow' | 'deny';
export type ShedAlgorithm = 'gradient2' | 'aimd';

/** The defaults, in one place. The docs table is checked against it (test/config.test.ts). */
export const DEFAULTS = Object.freeze({
  /** What the process serves: the gcd service or the upstream validator. @default 'gcd' */
  mode: 'gcd' as Mode,
  /** TCP port (0 = any free port). @default 3000 */
  port: 3000,
  /**
   * Interface to listen on. Loopback by default, so a developer's `npm start` is not reachable from the
   * network; containers set `HOST=0.0.0.0` (probes from outside the pod cannot reach loopback).
   * @default '127.0.0.1'
   */
  host: '127.0.0.1',
  /** Digits allowed per number. @default 1000 */
  maxDigits: 1000,
  /**
   * Inputs up to this many digits are computed on the event loop; longer ones in the worker pool.
   * @default 100 (or MAX_DIGITS, when that is smaller)
   */
  inlineMaxDigits: 100,
  /** Deadline of a pool computation (queue wait included); past it the worker thread is terminated. @default 1000 */
  computeTimeoutMs: 1000,
  /** Worker threads: the CPU count minus one (one core stays with the event loop), at least 1. */
  poolMaxThreads: Math.max(1, availableParallelism() - 1),
  /**
   * Computations allowed to wait for a worker, a hard bound behind `POOL_MAX_WAIT_MS` (which sizes the
   * queue by time). Default: 64 per thread — a queue of 4 per thread refused 3–14 % of pool requests
   * at 0.25–0.5× capacity (bursts), and each refusal from the pool costs a full pass through Fastify,
   * where the kit's concurrency limit refuses before routing.
   */
  poolMaxQueue: 64 * Math.max(1, availableParallelism() - 1),
  /** Largest request body (the form). Must hold two numbers of `maxDigits`. @default 4096 (more when MAX_DIGITS needs it) */
  bodyLimitBytes: 4096,
  /** Largest request head (request line + headers). Must hold a URL with two numbers. @default 16384 (more when MAX_DIGITS needs it) */
  maxHeaderBytes: 16384,
  /** Whole request (headers and body) must arrive within this time. @default 10000 */
  requestTimeoutMs: 10_000,
  /** Request headers must arrive within this time (slowloris). @default 5000 */
  headersTimeoutMs: 5_000,
  /**
   * Idle keep-alive sockets are closed after this time. Above the idle timeout of a load balancer in
   * front (60 s for most), so the balancer closes first and never reuses a socket the server is closing.
   * @default 72000
   */
  keepAliveTimeoutMs: 72_000,
  /** A handler that has not answered by then gets a 503 (Fastify `handlerTimeout`). @default 5000 */
  handlerTimeoutMs: 5_000,
  /** Graceful shutdown: in-flight requests get this long before the process exits anyway. @default 10000 */
  shutdownTimeoutMs: 10_000,
  /**
   * On SIGTERM, keep serving this long with readiness failing before closing the listener, so a load
   * balancer or Kubernetes takes the instance out first (set it above the readiness probe period). @default 0
   */
  drainDelayMs: 0,
  /** pino level. @default 'info' */
  logLevel: 'info' as LogLevel,
  /** Log every request at info (costs about a third of the throughput; errors and slow requests are always logged). @default false */
  accessLog: false,
  /** Requests per second each client may make on average (0 turns rate limiting off). @default 20 */
  rateLimitPerSecond: 20,
  /** Requests a client may make at once after being idle. @default 40 */
  rateLimitBurst: 40,
  /** What a Redis failure means for the limit: a local in-memory bucket, let through, or 429. @default 'local' */
  rateLimitOnRedisError: 'local' as RedisErrorMode,
  /** Shed load (503 + Retry-After) with an adaptive concurrency limit and event-loop pressure. @default true */
  loadShedding: true,
  /** The adaptive concurrency-limit algorithm. @default 'gradient2' */
  shedAlgorithm: 'gradient2' as ShedAlgorithm,
  /**
   * Whose `X-Forwarded-For` to believe for the client address (rate-limit key, logs): `false`, `true`
   * (any: only behind a proxy that overwrites the header) or a comma list of proxy addresses / CIDRs.
   * @default false
   */
  trustProxy: false as boolean | readonly string[],
  /** Reload the TLS certificate when its files change (SIGHUP always reloads). @default true */
  tlsWatch: true,
  /** Per-attempt timeout of a call to the validator. @default 300 */
  validatorTimeoutMs: 300,
  /** Retries after a failed validator call (so at most 1 + this many attempts). @default 2 */
  validatorRetries: 2,
  /** Overall deadline of the validation step, retries included; then local validation is used. @default 1000 */
  validatorDeadlineMs: 1_000,
  /** How long the validator's breaker stays open before it lets a probe through. @default 5000 */
  validatorOpenMs: 5_000,
  /** Failed validator calls in a row that open its breaker (the chapter's `failure_threshold`). @default 5 */
  validatorFailureThreshold: 5,
  /**
   * Share the validator breaker's trips with every instance on the same Redis (`REDIS_URL`): one
   * instance's trip opens the others' breakers at once; each still probes on its own schedule.
   * @default false
   */
  validatorFleetBreaker: false,
  /** Game day: share of validator calls that fail, injected inside its breaker (0 = off). @default 0 */
  chaosValidatorFaultRate: 0,
  /** Game day: share of validator calls delayed by `CHAOS_VALIDATOR_LATENCY_MS` (0 = off). @default 0 */
  chaosValidatorLatencyRate: 0,
  /** Game day: the delay added to a validator call, inside its per-attempt timeout. @default 0 */
  chaosValidatorLatencyMs: 0,
  /** Game day: share of pool computations that fail as if their worker crashed (0 = off). @default 0 */
  chaosComputeFaultRate: 0,
  /** Game day: inject even though NODE_ENV=production. @default false */
  chaosAllowInProduction: false,
  /**
   * A computation is refused (503) when its expected wait for a worker — the computations ahead of it ×
   * the mean computation time measured so far ÷ threads — exceeds this (0 = only `POOL_MAX_QUEUE`
   * bounds the queue). The queue is sized by time: a burst of 1 000-digit computations (~1 ms each) may
   * wait, while a queue of 60 ms ones stays short. Half the default compute deadline: a computation
   * expected to wait longer would mostly time out. @default 500
   */
  poolMaxWaitMs: 500,
});

export interface TlsConfig {
  readonly certFile: string;
  readonly keyFile: string;
  readonly watch: boolean;
}

export interface ValidatorConfig {
  readonly url: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly deadlineMs: number;
  readonly openMs: number;
  readonly failureThreshold: number;
  /** Share the breaker's trips through Redis (`REDIS_URL`) with the other instances. */
  readonly fleetBreaker?: boolean;
}

/**
 * A game day (docs/ops/game-day.md): faults and latency injected by @bulwark/core's chaos policies.
 * Present only when some rate is above 0; SIGUSR2 switches it all off and on at run time.
 */
export interface ChaosConfig {
  readonly validatorFaultRate: number;
  readonly validatorLatencyRate: number;
  readonly validatorLatencyMs: number;
  readonly computeFaultRate: number;
  /** Replays the same injections (`seededRandom`); unset = `Math.random`. */
  readonly seed: number | undefined;
}

export interface RateLimitConfig {
  readonly perSecond: number;
  readonly burst: number;
  readonly onRedisError: RedisErrorMode;
  /** Key clients by this header (e.g. `x-api-key`, hashed) instead of by address. */
  readonly keyHeader: string | undefined;
}

export interface GcdConfig {
  readonly mode: Mode;
  readonly port: number;
  readonly host: string;
  readonly maxDigits: number;
  readonly inlineMaxDigits: number;
  readonly computeTimeoutMs: number;
  readonly poolMaxThreads: number;
  readonly poolMaxQueue: number;
  readonly bodyLimitBytes: number;
  readonly maxHeaderBytes: number;
  readonly requestTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly handlerTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly drainDelayMs: number;
  readonly logLevel: LogLevel;
  readonly accessLog: boolean;
  /** Per-client rate limit; undefined = off. */
  readonly rateLimit: RateLimitConfig | undefined;
  readonly loadShedding: boolean;
  readonly shedAlgorithm: ShedAlgorithm;
  readonly trustProxy: boolean | readonly string[];
  /** Redis for the shared rate limit; unset = in-memory limit. Contains a secret: log {@link redactUrl} only. */
  readonly redisUrl: string | undefined;
  /** Callers sending `Authorization: Bearer <token>` see the details of /healthz and /readyz. A secret. */
  readonly healthDetailsToken: string | undefined;
  readonly tls: TlsConfig | undefined;
  readonly validator: ValidatorConfig | undefined;
  /** Game-day fault injection (`CHAOS_*`); undefined = off (the default). */
  readonly chaos: ChaosConfig | undefined;
  /** Every `OTEL_*` variable, passed to the tracing setup unchanged. */
  readonly otel: Readonly<Record<string, string>>;
  /** Expected wait for a worker past which a computation is refused (ms; 0 = `poolMaxQueue` only). */
  readonly poolMaxWaitMs: number;
}

/** One problem with one variable. */
export interface ConfigIssue {
  readonly variable: string;
  /** The value as received (redacted for secrets). */
  readonly received: string;
  readonly expected: string;
}

/** The environment is invalid. `message` lists every problem, one per line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'GCD_ERR_CONFIG';
  constructor(readonly issues: readonly ConfigIssue[]) {
    super(
      `Invalid configuration (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n` +
        issues.map((i) => `  ${i.variable}=${i.received}: expected ${i.expected}`).join('\n'),
    );
  }
}

/** A variable the reader looked at, for docs and `--help`. */
export interface VariableInfo {
  readonly name: string;
  readonly default: string;
  readonly expected: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads variables, records what it read, and collects problems instead of stopping at the first. */
class EnvReader {
  readonly issues: ConfigIssue[] = [];
  readonly read: VariableInfo[] = [];
  constructor(private readonly env: Env) {}

  raw(name: string, fallback: string, expected: string): string | undefined {
    this.read.push({ name, default: fallback, expected });
    const value = this.env[name];
    return value === undefined || value === '' ? undefined : value;
  }

  fail(name: string, received: string, expected: string): void {
    this.issues.push({ variable: name, received: JSON.stringify(received), expected });
  }

  int(name: string, fallback: number, min: number, max: number, fallbackText = String(fallback)): number {
    const expected = `a whole number from ${min} to ${max}`;
    const value = this.raw(name, fallbackText, expected);
    if (value === undefined) return fallback;
    if (!/^[0-9]{1,15}$/u.test(value) || Number(value) < min || Number(value) > max) {
      this.fail(name, value, expected);
      return fallback;
    }
    return Number(value);
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const expected = `one of ${allowed.join(', ')}`;
    const value = this.raw(name, fallback, expected);
    if (value === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(value)) {
      this.fail(name, value, expected);
      return fallback;
    }
    return value as T;
  }

  bool(name: string, fallback: boolean): boolean {
    const expected = 'one of true, false, on, off, 1, 0';
    const value = this.raw(name, fallback ? 'true' : 'false', expected);
    if (value === undefined) return fallback;
    const v = value.toLowerCase();
    if (v === 'true' || v === 'on' || v === '1') return true;
    if (v === 'false' || v === 'off' || v === '0') return false;
    this.fail(name, value, expected);
    return fallback;
  }

  trustProxy(name: string): boolean | readonly string[] {
    const expected = 'false, true, or a comma list of proxy IP addresses / CIDRs';
    const value = this.raw(name, 'false', expected);
    if (value === undefined || value === 'false') return false;
    if (value === 'true') return true;
    const list = value.split(',').map((v) => v.trim());
    if (list.some((v) => !/^[0-9a-fA-F:.]+(?:\/[0-9]{1,3})?$/u.test(v))) {
      this.fail(name, value, expected);
      return false;
    }
    return Object.freeze(list);
  }

  /** A share of calls, from 0 to 1 (`0.05` = 5 %). */
  rate(name: string, fallback: number): number {
    const expected = 'a number from 0 to 1 (a share of calls: 0.05 = 5 %)';
    const value = this.raw(name, String(fallback), expected);
    if (value === undefined) return fallback;
    if (!/^(?:0|1|0?\.[0-9]{1,15}|1\.0{1,15})$/u.test(value)) {
      this.fail(name, value, expected);
      return fallback;
    }
    return Number(value);
  }

  string(name: string, expected: string, fallback = '(unset)'): string | undefined {
    return this.raw(name, fallback, expected);
  }

  url(name: string, protocols: readonly string[], secret: boolean): string | undefined {
    const expected = `a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`;
    const value = this.raw(name, '(unset)', expected);
    if (value === undefined) return undefined;
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      url = undefined;
    }
    if (url === undefined || !protocols.includes(url.protocol)) {
      this.issues.push({
        variable: name,
        received: secret ? '(hidden: it may contain a password)' : JSON.stringify(value),
        expected,
      });
      return undefined;
    }
    return value;
  }
}

function read(env: Env): { config: GcdConfig; reader: EnvReader } {
  const r = new EnvReader(env);
  const mode = r.oneOf<Mode>('GCD_MODE', DEFAULTS.mode, ['gcd', 'validator']);
  const port = r.int('PORT', DEFAULTS.port, 0, 65535);
  const hostExpected = 'an IP address or host name without spaces';
  const host = r.string('HOST', hostExpected, DEFAULTS.host) ?? DEFAULTS.host;
  if (/\s|\/|^$/u.test(host)) r.fail('HOST', host, hostExpected);
  const maxDigits = r.int('MAX_DIGITS', DEFAULTS.maxDigits, 1, 1_000_000);
  // A default never conflicts with another setting: with MAX_DIGITS below 100 every input is inline.
  const inlineMaxDigits = r.int(
    'INLINE_MAX_DIGITS',
    Math.min(DEFAULTS.inlineMaxDigits, maxDigits),
    0,
    1_000_000,
    `${DEFAULTS.inlineMaxDigits} (or MAX_DIGITS, when smaller)`,
  );
  const computeTimeoutMs = r.int('COMPUTE_TIMEOUT_MS', DEFAULTS.computeTimeoutMs, 1, 600_000);
  const poolMaxThreads = r.int(
    'POOL_MAX_THREADS',
    DEFAULTS.poolMaxThreads,
    1,
    256,
    'CPU count − 1 (at least 1)',
  );
  const poolMaxQueue = r.int('POOL_MAX_QUEUE', 64 * poolMaxThreads, 0, 100_000, '64 × POOL_MAX_THREADS');
  // Defaults that follow MAX_DIGITS up (a default never conflicts with another setting; a value the
  // operator set still must fit, see the relations below).
  const bodyLimitBytes = r.int(
    'BODY_LIMIT_BYTES',
    Math.max(DEFAULTS.bodyLimitBytes, 2 * maxDigits + 64),
    64,
    10 * 1024 * 1024,
    `${DEFAULTS.bodyLimitBytes} (or 2 × MAX_DIGITS + 64, when larger)`,
  );
  const maxHeaderBytes = r.int(
    'MAX_HEADER_BYTES',
    Math.max(DEFAULTS.maxHeaderBytes, 2 * maxDigits + 2048),
    1024,
    1024 * 1024,
    `${DEFAULTS.maxHeaderBytes} (or 2 × MAX_DIGITS + 2048, when larger)`,
  );
  const requestTimeoutMs = r.int('REQUEST_TIMEOUT_MS', DEFAULTS.requestTimeoutMs, 1, 3_600_000);
  const headersTimeoutMs = r.int('HEADERS_TIMEOUT_MS', DEFAULTS.headersTimeoutMs, 1, 3_600_000);
  const keepAliveTimeoutMs = r.int('KEEP_ALIVE_TIMEOUT_MS', DEFAULTS.keepAliveTimeoutMs, 1, 3_600_000);
  const handlerTimeoutMs = r.int('HANDLER_TIMEOUT_MS', DEFAULTS.handlerTimeoutMs, 1, 3_600_000);
  const shutdownTimeoutMs = r.int('SHUTDOWN_TIMEOUT_MS', DEFAULTS.shutdownTimeoutMs, 1, 3_600_000);
  const drainDelayMs = r.int('DRAIN_DELAY_MS', DEFAULTS.drainDelayMs, 0, 3_600_000);
  const logLevel = r.oneOf<LogLevel>('LOG_LEVEL', DEFAULTS.logLevel, [
    'fatal',
    'error',
    'warn',
    'info',
    'debug',
    'trace',
    'silent',
  ]);
  const accessLog = r.bool('ACCESS_LOG', DEFAULTS.accessLog);
  // A validator's one client is the gcd fleet (a handful of addresses): a per-address limit there would
  // cap the whole fleet's validations and trip its breaker, so a validator has none unless one is set.
  const rateLimitPerSecond = r.int(
    'RATE_LIMIT_PER_SECOND',
    mode === 'validator' ? 0 : DEFAULTS.rateLimitPerSecond,
    0,
    1_000_000_000,
    `${DEFAULTS.rateLimitPerSecond} (0 when GCD_MODE=validator)`,
  );
  const rateLimitBurst = r.int('RATE_LIMIT_BURST', DEFAULTS.rateLimitBurst, 1, 1_000_000_000);
  const rateLimitOnRedisError = r.oneOf<RedisErrorMode>(
    'RATE_LIMIT_ON_REDIS_ERROR',
    DEFAULTS.rateLimitOnRedisError,
    ['local', 'allow', 'deny'],
  );
  const headerExpected = 'an HTTP header name such as x-api-key';
  const rateLimitKeyHeader = r.string('RATE_LIMIT_KEY_HEADER', headerExpected, '(unset: client address)');
  if (rateLimitKeyHeader !== undefined && !/^[A-Za-z0-9-]{1,64}$/u.test(rateLimitKeyHeader)) {
    r.fail('RATE_LIMIT_KEY_HEADER', rateLimitKeyHeader, headerExpected);
  }
  const loadShedding = r.bool('LOAD_SHEDDING', DEFAULTS.loadShedding);
  const shedAlgorithm = r.oneOf<ShedAlgorithm>('SHED_ALGORITHM', DEFAULTS.shedAlgorithm, [
    'gradient2',
    'aimd',
  ]);
  const trustProxy = r.trustProxy('TRUST_PROXY');
  const redisUrl = r.url('REDIS_URL', ['redis:', 'rediss:'], true);

  const fileExpected = 'a path to a PEM file (set TLS_CERT_FILE and TLS_KEY_FILE together)';
  const certFile = r.string('TLS_CERT_FILE', fileExpected);
  const keyFile = r.string('TLS_KEY_FILE', fileExpected);
  const tlsWatch = r.bool('TLS_WATCH', DEFAULTS.tlsWatch);
  if ((certFile === undefined) !== (keyFile === undefined)) {
    const [missing, given] = certFile === undefined ? ['TLS_CERT_FILE', keyFile] : ['TLS_KEY_FILE', certFile];
    r.issues.push({
      variable: missing,
      received: '(unset)',
      expected: `a path too, since ${missing === 'TLS_CERT_FILE' ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE'} is set (${JSON.stringify(given)})`,
    });
  }

  const detailsExpected = 'a token of at least 16 printable ASCII characters, no spaces';
  const healthDetailsToken = r.string('HEALTH_DETAILS_TOKEN', detailsExpected, '(unset: no details)');
  if (healthDetailsToken !== undefined && !/^[\x21-\x7e]{16,}$/u.test(healthDetailsToken)) {
    r.issues.push({
      variable: 'HEALTH_DETAILS_TOKEN',
      received: '(hidden: it is a secret)',
      expected: detailsExpected,
    });
  }

  const validatorUrl = r.url('VALIDATOR_URL', ['http:', 'https:'], false);
  const validatorTimeoutMs = r.int('VALIDATOR_TIMEOUT_MS', DEFAULTS.validatorTimeoutMs, 1, 60_000);
  const validatorRetries = r.int('VALIDATOR_RETRIES', DEFAULTS.validatorRetries, 0, 10);
  const validatorDeadlineMs = r.int('VALIDATOR_DEADLINE_MS', DEFAULTS.validatorDeadlineMs, 1, 60_000);
  const validatorOpenMs = r.int('VALIDATOR_OPEN_MS', DEFAULTS.validatorOpenMs, 1, 3_600_000);
  const validatorFailureThreshold = r.int(
    'VALIDATOR_FAILURE_THRESHOLD',
    DEFAULTS.validatorFailureThreshold,
    1,
    1000,
  );
  const validatorFleetBreaker = r.bool('VALIDATOR_FLEET_BREAKER', DEFAULTS.validatorFleetBreaker);

  const chaosValidatorFaultRate = r.rate('CHAOS_VALIDATOR_FAULT_RATE', DEFAULTS.chaosValidatorFaultRate);
  const chaosValidatorLatencyRate = r.rate(
    'CHAOS_VALIDATOR_LATENCY_RATE',
    DEFAULTS.chaosValidatorLatencyRate,
  );
  const chaosValidatorLatencyMs = r.int(
    'CHAOS_VALIDATOR_LATENCY_MS',
    DEFAULTS.chaosValidatorLatencyMs,
    0,
    600_000,
  );
  const chaosComputeFaultRate = r.rate('CHAOS_COMPUTE_FAULT_RATE', DEFAULTS.chaosComputeFaultRate);
  const chaosSeed = r.raw('CHAOS_SEED', '(unset: Math.random)', 'a whole number from 0 to 4294967295');
  if (chaosSeed !== undefined && (!/^[0-9]{1,10}$/u.test(chaosSeed) || Number(chaosSeed) > 4_294_967_295)) {
    r.fail('CHAOS_SEED', chaosSeed, 'a whole number from 0 to 4294967295');
  }
  const chaosAllowInProduction = r.bool('CHAOS_ALLOW_IN_PRODUCTION', DEFAULTS.chaosAllowInProduction);
  const poolMaxWaitMs = r.int('POOL_MAX_WAIT_MS', DEFAULTS.poolMaxWaitMs, 0, 600_000);

  // Relations between variables.
  if (inlineMaxDigits > maxDigits) {
    r.fail('INLINE_MAX_DIGITS', String(inlineMaxDigits), `at most MAX_DIGITS (${maxDigits})`);
  }
  const bodyNeeded = 2 * maxDigits + 64;
  if (bodyLimitBytes < bodyNeeded) {
    r.fail(
      'BODY_LIMIT_BYTES',
      String(bodyLimitBytes),
      `at least ${bodyNeeded} (2 × MAX_DIGITS + 64), so a form with two numbers of MAX_DIGITS fits`,
    );
  }
  const headNeeded = 2 * maxDigits + 2048;
  if (maxHeaderBytes < headNeeded) {
    r.fail(
      'MAX_HEADER_BYTES',
      String(maxHeaderBytes),
      `at least ${headNeeded} (2 × MAX_DIGITS + 2048), so /api/gcd?n=…&m=… with two numbers of MAX_DIGITS fits`,
    );
  }
  if (drainDelayMs >= shutdownTimeoutMs) {
    r.fail('DRAIN_DELAY_MS', String(drainDelayMs), `less than SHUTDOWN_TIMEOUT_MS (${shutdownTimeoutMs})`);
  }
  if (headersTimeoutMs > requestTimeoutMs) {
    r.fail(
      'HEADERS_TIMEOUT_MS',
      String(headersTimeoutMs),
      `at most REQUEST_TIMEOUT_MS (${requestTimeoutMs})`,
    );
  }
  if (validatorFleetBreaker && (validatorUrl === undefined || redisUrl === undefined)) {
    r.fail(
      'VALIDATOR_FLEET_BREAKER',
      'true',
      "false unless VALIDATOR_URL and REDIS_URL are both set (the breaker it shares is the validator's, through that Redis)",
    );
  }
  if (mode === 'validator' && validatorUrl !== undefined) {
    r.fail('VALIDATOR_URL', validatorUrl, 'unset when GCD_MODE=validator (a validator does not call one)');
  }

  const chaosRates: [string, number][] = [
    ['CHAOS_VALIDATOR_FAULT_RATE', chaosValidatorFaultRate],
    ['CHAOS_VALIDATOR_LATENCY_RATE', chaosValidatorLatencyRate],
    ['CHAOS_COMPUTE_FAULT_RATE', chaosComputeFaultRate],
  ];
  const chaosOn = chaosRates.some(([, rate]) => rate > 0);
  if (validatorUrl === undefined) {
    for (const [name, rate] of chaosRates.slice(0, 2)) {
      if (rate > 0) {
        r.fail(
          name,
          String(rate),
          '0 unless VALIDATOR_URL is set (it injects into the calls to the validator)',
        );
      }
    }
  }
  if (chaosValidatorLatencyRate > 0 && chaosValidatorLatencyMs === 0) {
    r.fail(
      'CHAOS_VALIDATOR_LATENCY_MS',
      '0',
      'a delay above 0, since CHAOS_VALIDATOR_LATENCY_RATE is above 0 (the delay it injects)',
    );
  }
  if (mode === 'validator' && chaosComputeFaultRate > 0) {
    r.fail(
      'CHAOS_COMPUTE_FAULT_RATE',
      String(chaosComputeFaultRate),
      '0 when GCD_MODE=validator (a validator has no worker pool)',
    );
  }
  if (chaosOn && env.NODE_ENV === 'production' && !chaosAllowInProduction) {
    const set = chaosRates.filter(([, rate]) => rate > 0).map(([name, rate]) => `${name}=${rate}`);
    r.issues.push({
      variable: 'CHAOS_ALLOW_IN_PRODUCTION',
      received: env.CHAOS_ALLOW_IN_PRODUCTION ? JSON.stringify(env.CHAOS_ALLOW_IN_PRODUCTION) : '(unset)',
      expected: `true to inject faults with NODE_ENV=production (${set.join(', ')} is set); or set the CHAOS_* rates to 0`,
    });
  }

  const otel: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith('OTEL_') && value !== undefined) otel[name] = value;
  }
  r.read.push({ name: 'OTEL_*', default: '(unset)', expected: 'the standard OpenTelemetry variables' });

  const config: GcdConfig = Object.freeze({
    mode,
    port,
    host,
    maxDigits,
    inlineMaxDigits,
    computeTimeoutMs,
    poolMaxThreads,
    poolMaxQueue,
    bodyLimitBytes,
    maxHeaderBytes,
    requestTimeoutMs,
    headersTimeoutMs,
    keepAliveTimeoutMs,
    handlerTimeoutMs,
    shutdownTimeoutMs,
    drainDelayMs,
    logLevel,
    accessLog,
    rateLimit:
      rateLimitPerSecond === 0
        ? undefined
        : Object.freeze({
            perSecond: rateLimitPerSecond,
            burst: rateLimitBurst,
            onRedisError: rateLimitOnRedisError,
            keyHeader: rateLimitKeyHeader?.toLowerCase(),
          }),
    loadShedding,
    shedAlgorithm,
    trustProxy,
    redisUrl,
    healthDetailsToken,
    tls:
      certFile !== undefined && keyFile !== undefined
        ? Object.freeze({ certFile, keyFile, watch: tlsWatch })
        : undefined,
    validator:
      validatorUrl !== undefined
        ? Object.freeze({
            url: validatorUrl,
            timeoutMs: validatorTimeoutMs,
            retries: validatorRetries,
            deadlineMs: validatorDeadlineMs,
            openMs: validatorOpenMs,
            failureThreshold: validatorFailureThreshold,
            fleetBreaker: validatorFleetBreaker,
          })
        : undefined,
    chaos: chaosOn
      ? Object.freeze({
          validatorFaultRate: chaosValidatorFaultRate,
          validatorLatencyRate: chaosValidatorLatencyRate,
          validatorLatencyMs: chaosValidatorLatencyMs,
          computeFaultRate: chaosComputeFaultRate,
          seed: chaosSeed === undefined ? undefined : Number(chaosSeed),
        })
      : undefined,
    otel: Object.freeze(otel),
    poolMaxWaitMs,
  });
  return { config, reader: r };
}

/** The typed configuration, or a {@link ConfigError} listing every bad variable. */
export function loadConfig(env: Env): GcdConfig {
  const { config, reader } = read(env);
  if (reader.issues.length > 0) throw new ConfigError(reader.issues);
  return config;
}

/** Every variable the service reads, with its default and what it accepts (docs and `--help`). */
export function listVariables(): readonly VariableInfo[] {
  return read({}).reader.read;
}

/** The configuration as it is safe to log: the Redis password replaced by `***`. */
export function describeConfig(config: GcdConfig): Record<string, unknown> {
  return {
    ...config,
    redisUrl: config.redisUrl === undefined ? undefined : redactUrl(config.redisUrl),
    healthDetailsToken: config.healthDetailsToken === undefined ? undefined : '***',
    otel: Object.keys(config.otel),
  };
}

/** A URL with its password (and user name) hidden. */
export function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password !== '') url.password = '***';
    if (url.username !== '' && url.password === '') url.username = '***';
    return url.toString();
  } catch {
    return '(unparseable URL hidden)';
  }
}
