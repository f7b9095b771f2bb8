/**
 * Configuration comes only from the environment, read through one table, {@link ENV}: each variable is
 * one row — its name, parser, the option it sets (in the kit's, core's or the validator client's words),
 * its default and its doc line. docs/gcd-service.md's table is checked against it (test/docs.test.ts), so
 * a default is written once: the kit's (`SERVICE_DEFAULTS`, `RATE_LIMIT_DEFAULTS`, `SHEDDING_DEFAULTS`,
 * `SHUTDOWN_DEFAULTS`), the validator client's (`VALIDATOR_DEFAULTS`, built on core's), or this
 * service's own choice in {@link DEFAULTS}. A bad value is reported with the variable's name, what was
 * received and what is allowed (all problems at once), and `main.ts` exits non-zero.
 *
 * Rules across variables are checked here, except those the kit checks itself (`headersTimeoutMs` ≤
 * `requestTimeoutMs`): those come back from `createGcdServer` as a {@link ConfigError} naming the
 * variables, through {@link configErrorOf}.
 *
 * Secrets (the password in `REDIS_URL`) are never echoed: see {@link redactUrl}.
 */
import { availableParallelism } from 'node:os';
import { InvalidOptionError } from '@bulwark/core';
import {
  RATE_LIMIT_DEFAULTS,
  SERVICE_DEFAULTS,
  SHEDDING_DEFAULTS,
  SHUTDOWN_DEFAULTS,
  type RateLimitOptions,
  type ServiceOptions,
  type SheddingOptions,
  type StoreErrorMode,
} from '@bulwark/service';
import {
  ConfigError,
  bool,
  describeTable,
  envVar,
  int,
  oneOf,
  rate,
  readEnv,
  text,
  trustProxy,
  url,
  type ConfigIssue,
  type Env,
  type EnvVar,
  type VariableInfo,
} from './env.js';
import { MAX_OPEN_DURATION_MS, VALIDATOR_DEFAULTS, type ValidatorOptions } from './validator-client.js';

export { ConfigError } from './env.js';
export type { ConfigIssue, VariableInfo } from './env.js';

export type Mode = 'gcd' | 'validator';
type LogLevel = NonNullable<ServiceOptions['logLevel']>;
type ShedAlgorithm = Extract<NonNullable<SheddingOptions['algorithm']>, string>;

/**
 * This service's own defaults: the settings the kit and core have no default for, and the few where gcd
 * differs from the kit on purpose (said why). Every other default is the kit's or core's, read in {@link ENV}.
 */
export const DEFAULTS = Object.freeze({
  mode: 'gcd' as Mode,
  /** The Node convention for a development server, above 1024 so no privilege is needed. */
  port: 3000,
  /**
   * Loopback, so a developer's `npm start` is not reachable from the network; containers set
   * `HOST=0.0.0.0` (probes from outside the pod cannot reach loopback).
   */
  host: '127.0.0.1',
  maxDigits: 1000,
  /** Inputs up to this many digits are computed on the event loop; longer ones in the worker pool. */
  inlineMaxDigits: 100,
  /** Deadline of a pool computation (queue wait included); past it the worker thread is terminated. */
  computeTimeoutMs: 1000,
  /** Worker threads: the CPU count minus one (one core stays with the event loop), at least 1. */
  poolMaxThreads: Math.max(1, availableParallelism() - 1),
  /**
   * Computations allowed to wait for a worker, per thread: a hard bound behind `poolMaxWaitMs` (which
   * sizes the queue by time). A queue of 4 per thread refused 3–14 % of pool requests at a quarter to half
   * of capacity (bursts), and each refusal from the pool costs a full pass through Fastify, where the
   * kit's concurrency limit refuses before routing.
   */
  poolQueuePerThread: 64,
  /**
   * A computation is refused (503) when its expected wait for a worker — the computations ahead of it ×
   * the mean computation time measured so far ÷ threads — exceeds this (0 = only the queue bound). Half
   * the default compute deadline: a computation expected to wait longer would mostly time out.
   */
  poolMaxWaitMs: 500,
  /** The form holds two numbers: 4 KB, not the kit's 1 MB (more when MAX_DIGITS needs it). */
  bodyLimitBytes: 4096,
  /** Whole request: 10 s, not the kit's 30 s — a form of two numbers arrives in well under a second. */
  requestTimeoutMs: 10_000,
  /** Request head (slowloris): 5 s, not the kit's 10 s, for the same reason. */
  headersTimeoutMs: 5_000,
  /** A request that waits (validator, pool) and is still running then gets a 503 (routes.ts). */
  handlerTimeoutMs: 5_000,
});

export interface TlsConfig {
  readonly certFile: string;
  readonly keyFile: string;
  readonly watch: boolean;
}

/** The validator client's options (core's words) with its URL. */
export type ValidatorConfig = ValidatorOptions;

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

/** The kit's rate-limit options this service sets (`redisUrl` is added from {@link GcdConfig.redisUrl}). */
export type RateLimitConfig = Readonly<
  Required<Pick<RateLimitOptions, 'ratePerSecond' | 'burst' | 'onStoreError'>> &
    Pick<RateLimitOptions, 'keyHeader'>
>;

/**
 * The typed configuration. Names are the kit's (`ServiceOptions`, `ShutdownOptions`, `rateLimit`,
 * `shedding`) and the validator client's (core's `circuitBreaker` and `retry`), so they pass through unrenamed.
 */
export interface GcdConfig {
  readonly mode: Mode;
  readonly port: number;
  readonly host: string;
  readonly maxDigits: number;
  readonly inlineMaxDigits: number;
  readonly computeTimeoutMs: number;
  readonly poolMaxThreads: number;
  readonly poolMaxQueue: number;
  /** Expected wait for a worker past which a computation is refused (ms; 0 = `poolMaxQueue` only). */
  readonly poolMaxWaitMs: number;
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
  /** The kit's load shedding, or `false`. */
  readonly shedding: Readonly<{ algorithm: ShedAlgorithm; initialLimit?: number }> | false;
  readonly trustProxy: boolean | readonly string[];
  /** Redis for the shared rate limit; unset = in-memory limit. Contains a secret: log {@link redactUrl} only. */
  readonly redisUrl: string | undefined;
  /** Callers sending `Authorization: Bearer <token>` see the details of /healthz and /readyz. A secret. */
  readonly healthDetailsToken: string | undefined;
  /** VALIDATOR_FLEET_BREAKER_SECRET: signs and checks the fleet's trip messages (HMAC-SHA256). A secret. */
  readonly fleetBreakerSecret: string | undefined;
  readonly tls: TlsConfig | undefined;
  readonly validator: ValidatorConfig | undefined;
  /** Game-day fault injection (`CHAOS_*`); undefined = off (the default). */
  readonly chaos: ChaosConfig | undefined;
  /** Every `OTEL_*` variable, passed to the tracing setup unchanged. */
  readonly otel: Readonly<Record<string, string>>;
}

const MS = int(1, 3_600_000);
const LOG_LEVELS = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
] as const satisfies readonly LogLevel[];
const STORE_ERROR_MODES = ['local', 'allow', 'deny'] as const satisfies readonly StoreErrorMode[];
const SHED_ALGORITHMS = ['gradient2', 'aimd', 'fixed'] as const satisfies readonly ShedAlgorithm[];
const NOT_SPACE = (v: string): boolean => !/\s|\//u.test(v);
const PEM = text('a path to a PEM file (set TLS_CERT_FILE and TLS_KEY_FILE together)', 'a PEM file');
const n = (values: Readonly<Record<string, unknown>>, name: string): number => values[name] as number;

/**
 * Every variable, in the order of the docs table. A new variable is one row here (and one in the docs
 * table, which test/docs.test.ts checks); a rule across variables goes in {@link read}.
 */
export const ENV: readonly EnvVar[] = [
  envVar({
    name: 'GCD_MODE',
    parser: oneOf<Mode>(['gcd', 'validator']),
    target: 'mode',
    default: DEFAULTS.mode,
    doc: 'serve the gcd service, or the upstream validator',
  }),
  envVar({
    name: 'PORT',
    parser: int(0, 65535),
    target: 'port',
    default: DEFAULTS.port,
    doc: 'TCP port (0: any free port)',
  }),
  envVar({
    name: 'HOST',
    parser: text('an IP address or host name without spaces', 'an address or host name', NOT_SPACE),
    target: 'host',
    default: DEFAULTS.host,
    doc: 'interface to listen on — see below',
  }),
  envVar({
    name: 'MAX_DIGITS',
    parser: int(1, 1_000_000),
    target: 'maxDigits',
    default: DEFAULTS.maxDigits,
    doc: 'digits allowed per number',
  }),
  // Defaults that follow MAX_DIGITS never conflict with it; a value the operator set still must fit (read()).
  envVar({
    name: 'INLINE_MAX_DIGITS',
    parser: int(0, 1_000_000),
    allowed: '0–`MAX_DIGITS`',
    target: 'inlineMaxDigits',
    default: (v) => Math.min(DEFAULTS.inlineMaxDigits, n(v, 'MAX_DIGITS')),
    defaultText: `${DEFAULTS.inlineMaxDigits} (or MAX_DIGITS, when smaller)`,
    doc: 'up to this many digits, computed on the event loop; above, in the worker pool',
  }),
  envVar({
    name: 'COMPUTE_TIMEOUT_MS',
    parser: int(1, 600_000),
    target: 'computeTimeoutMs',
    default: DEFAULTS.computeTimeoutMs,
    doc: 'deadline of a pool computation, queue wait included; then the worker thread is terminated',
  }),
  envVar({
    name: 'POOL_MAX_THREADS',
    parser: int(1, 256),
    target: 'poolMaxThreads',
    default: DEFAULTS.poolMaxThreads,
    defaultText: 'CPU count − 1 (at least 1)',
    doc: 'worker threads (one core stays with the event loop)',
  }),
  envVar({
    name: 'POOL_MAX_QUEUE',
    parser: int(0, 100_000),
    target: 'poolMaxQueue',
    default: (v) => DEFAULTS.poolQueuePerThread * n(v, 'POOL_MAX_THREADS'),
    defaultText: `${DEFAULTS.poolQueuePerThread} × POOL_MAX_THREADS`,
    doc: 'computations that may wait for a worker, a hard bound behind `POOL_MAX_WAIT_MS`; more get 503 at once (a queue of 4 per thread refused 3–14 % of pool requests at a quarter to half of capacity)',
  }),
  envVar({
    name: 'POOL_MAX_WAIT_MS',
    parser: int(0, 600_000),
    target: 'poolMaxWaitMs',
    default: DEFAULTS.poolMaxWaitMs,
    doc: "a computation is refused with 503 at once when its expected wait for a worker — computations ahead × the mean computation time measured so far ÷ threads — exceeds this (0: only `POOL_MAX_QUEUE`); the queue is sized by time, so the kit's concurrency limit, which refuses before Fastify, sheds first",
  }),
  envVar({
    name: 'BODY_LIMIT_BYTES',
    parser: int(64, 10 * 1024 * 1024),
    allowed: '64–10485760, ≥ 2 × `MAX_DIGITS` + 64',
    target: 'bodyLimitBytes',
    default: (v) => Math.max(DEFAULTS.bodyLimitBytes, bodyNeeded(n(v, 'MAX_DIGITS'))),
    defaultText: `${DEFAULTS.bodyLimitBytes} (or 2 × MAX_DIGITS + 64, when larger)`,
    doc: 'largest request body (413 beyond)',
  }),
  envVar({
    name: 'MAX_HEADER_BYTES',
    parser: int(1024, 1024 * 1024),
    allowed: '1024–1048576, ≥ 2 × `MAX_DIGITS` + 2048',
    target: 'maxHeaderBytes',
    default: (v) => Math.max(SERVICE_DEFAULTS.maxHeaderBytes, headNeeded(n(v, 'MAX_DIGITS'))),
    defaultText: `${SERVICE_DEFAULTS.maxHeaderBytes} (or 2 × MAX_DIGITS + 2048, when larger)`,
    doc: 'largest request line + headers (431 beyond)',
  }),
  envVar({
    name: 'REQUEST_TIMEOUT_MS',
    parser: MS,
    target: 'requestTimeoutMs',
    default: DEFAULTS.requestTimeoutMs,
    doc: 'the whole request must arrive within this (slow bodies → 408)',
  }),
  envVar({
    name: 'HEADERS_TIMEOUT_MS',
    parser: MS,
    allowed: '1–`REQUEST_TIMEOUT_MS`',
    target: 'headersTimeoutMs',
    default: DEFAULTS.headersTimeoutMs,
    doc: 'the request head must arrive within this (slowloris → 408)',
  }),
  envVar({
    name: 'KEEP_ALIVE_TIMEOUT_MS',
    parser: MS,
    target: 'keepAliveTimeoutMs',
    default: SERVICE_DEFAULTS.keepAliveTimeoutMs,
    doc: "idle keep-alive sockets close after this; keep it above your load balancer's idle timeout",
  }),
  envVar({
    name: 'HANDLER_TIMEOUT_MS',
    parser: MS,
    target: 'handlerTimeoutMs',
    default: DEFAULTS.handlerTimeoutMs,
    doc: 'a request that waits (validator call, worker pool) and is still running then gets 503 `GCD_ERR_COMPUTE_TIMEOUT` (a backstop: compute and validator have their own deadlines); inline computations take microseconds and are not timed',
  }),
  envVar({
    name: 'SHUTDOWN_TIMEOUT_MS',
    parser: MS,
    target: 'shutdownTimeoutMs',
    default: SHUTDOWN_DEFAULTS.shutdownTimeoutMs,
    doc: 'hard deadline of the graceful shutdown; then exit 1',
  }),
  envVar({
    name: 'DRAIN_DELAY_MS',
    parser: int(0, 3_600_000),
    allowed: '0–less than `SHUTDOWN_TIMEOUT_MS`',
    target: 'drainDelayMs',
    default: SHUTDOWN_DEFAULTS.drainDelayMs,
    doc: 'after SIGTERM, keep serving this long with readiness failing (set it above the readiness probe period behind a load balancer)',
  }),
  envVar({
    name: 'LOG_LEVEL',
    parser: oneOf<LogLevel>(LOG_LEVELS),
    target: 'logLevel',
    default: SERVICE_DEFAULTS.logLevel,
    doc: 'JSON log level (stdout)',
  }),
  envVar({
    name: 'ACCESS_LOG',
    parser: bool,
    target: 'accessLog',
    default: SERVICE_DEFAULTS.accessLog,
    doc: 'a log line for every request (errors and slow requests are always logged)',
  }),
  // A validator's one client is the gcd fleet (a handful of addresses): a per-address limit there would
  // cap the whole fleet's validations and trip its breaker, so a validator has none unless one is set.
  envVar({
    name: 'RATE_LIMIT_PER_SECOND',
    parser: int(0, 1_000_000_000),
    target: 'rateLimit.ratePerSecond',
    default: (v) => (v.GCD_MODE === 'validator' ? 0 : RATE_LIMIT_DEFAULTS.ratePerSecond),
    defaultText: `${RATE_LIMIT_DEFAULTS.ratePerSecond} (0 when GCD_MODE=validator)`,
    doc: "requests per second per client, on average; 0 turns rate limiting off. A validator has none by default: its one client is the gcd fleet, a few addresses, which a per-address limit would throttle as a whole (and its 429s would open the gcd services' breakers)",
  }),
  envVar({
    name: 'RATE_LIMIT_BURST',
    parser: int(1, 1_000_000_000),
    target: 'rateLimit.burst',
    default: RATE_LIMIT_DEFAULTS.burst,
    doc: 'requests a client may make at once after being idle',
  }),
  envVar({
    name: 'RATE_LIMIT_ON_REDIS_ERROR',
    parser: oneOf<StoreErrorMode>(STORE_ERROR_MODES),
    target: 'rateLimit.onStoreError',
    default: RATE_LIMIT_DEFAULTS.onStoreError,
    doc: 'what the limit does while Redis is unreachable',
  }),
  envVar({
    name: 'RATE_LIMIT_KEY_HEADER',
    parser: text('an HTTP header name such as x-api-key', 'a header name', (v) =>
      /^[A-Za-z0-9-]{1,64}$/u.test(v),
    ),
    target: 'rateLimit.keyHeader',
    default: undefined,
    defaultText: '(unset: client address)',
    to: (v: string) => v.toLowerCase(),
    doc: 'key clients by this header (e.g. `x-api-key`, hashed) instead of by address',
  }),
  envVar({
    name: 'LOAD_SHEDDING',
    parser: bool,
    default: SERVICE_DEFAULTS.shedding !== false,
    doc: 'adaptive concurrency limit + event-loop pressure → 503 with `Retry-After`',
  }),
  envVar({
    name: 'SHED_ALGORITHM',
    parser: oneOf<ShedAlgorithm>(SHED_ALGORITHMS),
    target: 'shedding.algorithm',
    default: SHEDDING_DEFAULTS.algorithm as ShedAlgorithm,
    doc: 'the concurrency-limit algorithm (Netflix concurrency-limits); `fixed` holds `SHED_LIMIT` requests in flight',
  }),
  envVar({
    name: 'SHED_LIMIT',
    parser: int(1, 100_000),
    target: 'shedding.initialLimit',
    default: SHEDDING_DEFAULTS.initialLimit,
    doc: 'requests in flight at once: where gradient2 and aimd start, the whole limit for `fixed`',
  }),
  envVar({
    name: 'TRUST_PROXY',
    parser: trustProxy,
    target: 'trustProxy',
    default: SERVICE_DEFAULTS.trustProxy as boolean,
    doc: 'whose `X-Forwarded-For` to believe for the client address',
  }),
  envVar({
    name: 'REDIS_URL',
    parser: url(['redis:', 'rediss:']),
    target: 'redisUrl',
    default: undefined,
    defaultText: '(unset)',
    secret: '(hidden: it may contain a password)',
    doc: 'share the rate limit through Redis (secret: never logged); `rediss://` for TLS (see above)',
  }),
  envVar({
    name: 'HEALTH_DETAILS_TOKEN',
    parser: text(
      'a token of at least 16 printable ASCII characters, no spaces',
      'a token of at least 16 printable ASCII characters, no spaces',
      (v) => /^[\x21-\x7e]{16,}$/u.test(v),
    ),
    target: 'healthDetailsToken',
    default: undefined,
    defaultText: '(unset: no details)',
    secret: '(hidden: it is a secret)',
    doc: 'callers sending `Authorization: Bearer <token>` see the details of `/healthz` and `/readyz` (secret: never logged)',
  }),
  envVar({
    name: 'TLS_CERT_FILE',
    parser: PEM,
    target: 'tls.certFile',
    default: undefined,
    defaultText: '(unset)',
    doc: 'with `TLS_KEY_FILE`: serve HTTPS',
  }),
  envVar({
    name: 'TLS_KEY_FILE',
    parser: PEM,
    target: 'tls.keyFile',
    default: undefined,
    defaultText: '(unset)',
    doc: 'with `TLS_CERT_FILE`: serve HTTPS',
  }),
  envVar({
    name: 'TLS_WATCH',
    parser: bool,
    target: 'tls.watch',
    default: true,
    doc: 'reload the certificate when its files change (SIGHUP always reloads)',
  }),
  envVar({
    name: 'VALIDATOR_URL',
    parser: url(['http:', 'https:']),
    target: 'validator.url',
    default: undefined,
    defaultText: '(unset)',
    doc: 'the upstream validator (a gcd-service in validator mode)',
  }),
  envVar({
    name: 'VALIDATOR_TIMEOUT_MS',
    parser: int(1, 60_000),
    target: 'validator.attemptTimeoutMs',
    default: VALIDATOR_DEFAULTS.attemptTimeoutMs,
    doc: 'per-attempt timeout of a validator call',
  }),
  envVar({
    name: 'VALIDATOR_RETRIES',
    parser: int(0, 10),
    target: 'validator.retry.maxAttempts',
    default: VALIDATOR_DEFAULTS.retry.maxAttempts - 1,
    to: (retries: number) => retries + 1,
    doc: 'retries after a failed validator call',
  }),
  envVar({
    name: 'VALIDATOR_DEADLINE_MS',
    parser: int(1, 60_000),
    target: 'validator.timeoutMs',
    default: VALIDATOR_DEFAULTS.timeoutMs,
    doc: 'deadline of the whole validation step, retries included; then local validation',
  }),
  envVar({
    name: 'VALIDATOR_OPEN_MS',
    parser: int(1, MAX_OPEN_DURATION_MS),
    target: 'validator.circuitBreaker.openDurationMs',
    default: VALIDATOR_DEFAULTS.circuitBreaker.openDurationMs,
    doc: "how long the validator's breaker stays open before one probe (the same every time: it does not grow per failed probe)",
  }),
  envVar({
    name: 'VALIDATOR_FAILURE_THRESHOLD',
    parser: int(1, 1000),
    target: 'validator.circuitBreaker.strategy',
    default: VALIDATOR_DEFAULTS.circuitBreaker.strategy.threshold,
    to: (threshold: number) => Object.freeze({ type: 'consecutive', threshold }),
    doc: "failed validator calls in a row that open its breaker (the chapter's `failure_threshold`)",
  }),
  envVar({
    name: 'VALIDATOR_FLEET_BREAKER',
    parser: bool,
    target: 'validator.fleetBreaker',
    default: VALIDATOR_DEFAULTS.fleetBreaker,
    doc: "share the validator breaker's trips with every instance on the same `REDIS_URL` (needs `VALIDATOR_URL` and `REDIS_URL`): one instance's trip opens the others' breakers at once, each still probes on its own schedule; with Redis away each decides locally (see below)",
  }),
  envVar({
    name: 'VALIDATOR_FLEET_BREAKER_SECRET',
    parser: text(
      'a secret of at least 16 printable ASCII characters, no spaces, the same on every instance',
      'at least 16 printable ASCII characters, no spaces (needs `VALIDATOR_FLEET_BREAKER=true`)',
      (v) => /^[\x21-\x7e]{16,}$/u.test(v),
    ),
    target: 'fleetBreakerSecret',
    default: undefined,
    defaultText: '(unset: trips are not signed)',
    secret: '(hidden: it is a secret)',
    refuseEmpty: true,
    doc: "signs the fleet breaker's trip messages (HMAC-SHA256); a message without a valid signature is ignored and counted. Unset, whoever can `PUBLISH` on that Redis can open every instance's validator breaker (see below). Secret: never logged",
  }),
  envVar({
    name: 'CHAOS_VALIDATOR_FAULT_RATE',
    parser: rate,
    allowed: '0–1 (needs `VALIDATOR_URL`)',
    target: 'chaos.validatorFaultRate',
    default: 0,
    doc: "game day: the share of validator calls that fail (`ChaosFaultError`), injected inside the validator's breaker — the breaker counts them and opens, requests are validated locally (see [game-day.md](ops/game-day.md))",
  }),
  envVar({
    name: 'CHAOS_VALIDATOR_LATENCY_RATE',
    parser: rate,
    allowed: '0–1 (needs `VALIDATOR_URL` and `CHAOS_VALIDATOR_LATENCY_MS`)',
    target: 'chaos.validatorLatencyRate',
    default: 0,
    doc: 'game day: the share of validator calls delayed by `CHAOS_VALIDATOR_LATENCY_MS`, inside the per-attempt timeout (a delay over `VALIDATOR_TIMEOUT_MS` is a timeout)',
  }),
  envVar({
    name: 'CHAOS_VALIDATOR_LATENCY_MS',
    parser: int(0, 600_000),
    target: 'chaos.validatorLatencyMs',
    default: 0,
    doc: 'game day: the delay `CHAOS_VALIDATOR_LATENCY_RATE` adds',
  }),
  envVar({
    name: 'CHAOS_COMPUTE_FAULT_RATE',
    parser: rate,
    allowed: '0–1 (not with `GCD_MODE=validator`)',
    target: 'chaos.computeFaultRate',
    default: 0,
    doc: 'game day: the share of pool computations that fail as if their worker had crashed: 503 `GCD_ERR_WORKER_FAILED` with `Retry-After`',
  }),
  envVar({
    name: 'CHAOS_SEED',
    parser: int(0, 4_294_967_295),
    target: 'chaos.seed',
    default: undefined,
    defaultText: '(unset: Math.random)',
    doc: 'game day: replay the same injections (`seededRandom`; each policy gets its own stream)',
  }),
  envVar({
    name: 'CHAOS_ALLOW_IN_PRODUCTION',
    parser: bool,
    default: false,
    doc: 'with `NODE_ENV=production` (or `prod`, in any letter case) a `CHAOS_*` rate above 0 is refused (exit 78) unless this is true',
  }),
];

/**
 * Whether `NODE_ENV` names production for the chaos rail: `production` or `prod`, in any letter case,
 * surrounding spaces ignored (a variant must not silently drop the rail).
 */
export function isProduction(nodeEnv: string | undefined): boolean {
  const v = nodeEnv?.trim().toLowerCase();
  return v === 'production' || v === 'prod';
}

/** `OTEL_*`: passed to the tracing setup whole (not a row: a family of variables). */
const OTEL: VariableInfo = {
  name: 'OTEL_*',
  default: '(unset)',
  expected: 'the standard OpenTelemetry variables',
  allowed: 'the OpenTelemetry variables',
  doc: 'tracing, see above',
  target: 'otel',
};

function bodyNeeded(maxDigits: number): number {
  return 2 * maxDigits + 64;
}

function headNeeded(maxDigits: number): number {
  return 2 * maxDigits + 2048;
}

interface Read {
  readonly config: GcdConfig;
  readonly issues: readonly ConfigIssue[];
}

function read(env: Env): Read {
  const r = readEnv(env, ENV);
  const o = r.options as Record<string, Record<string, unknown> | undefined> & Record<string, unknown>;
  const v = r.values;

  // Rules across variables (the kit checks its own: see configErrorOf).
  const maxDigits = n(v, 'MAX_DIGITS');
  if (n(v, 'INLINE_MAX_DIGITS') > maxDigits) {
    r.fail('INLINE_MAX_DIGITS', v.INLINE_MAX_DIGITS, `at most MAX_DIGITS (${maxDigits})`);
  }
  if (n(v, 'BODY_LIMIT_BYTES') < bodyNeeded(maxDigits)) {
    r.fail(
      'BODY_LIMIT_BYTES',
      v.BODY_LIMIT_BYTES,
      `at least ${bodyNeeded(maxDigits)} (2 × MAX_DIGITS + 64), so a form with two numbers of MAX_DIGITS fits`,
    );
  }
  if (n(v, 'MAX_HEADER_BYTES') < headNeeded(maxDigits)) {
    r.fail(
      'MAX_HEADER_BYTES',
      v.MAX_HEADER_BYTES,
      `at least ${headNeeded(maxDigits)} (2 × MAX_DIGITS + 2048), so /api/gcd?n=…&m=… with two numbers of MAX_DIGITS fits`,
    );
  }
  if (n(v, 'DRAIN_DELAY_MS') >= n(v, 'SHUTDOWN_TIMEOUT_MS')) {
    r.fail(
      'DRAIN_DELAY_MS',
      v.DRAIN_DELAY_MS,
      `less than SHUTDOWN_TIMEOUT_MS (${String(v.SHUTDOWN_TIMEOUT_MS)})`,
    );
  }
  const certFile = v.TLS_CERT_FILE;
  const keyFile = v.TLS_KEY_FILE;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    const [missing, other, given] =
      certFile === undefined
        ? ['TLS_CERT_FILE', 'TLS_KEY_FILE', keyFile]
        : ['TLS_KEY_FILE', 'TLS_CERT_FILE', certFile];
    r.fail(missing, undefined, `a path too, since ${other} is set (${JSON.stringify(given)})`);
  }
  const validatorUrl = v.VALIDATOR_URL;
  if (v.VALIDATOR_FLEET_BREAKER === true && (validatorUrl === undefined || v.REDIS_URL === undefined)) {
    r.fail(
      'VALIDATOR_FLEET_BREAKER',
      'true',
      "false unless VALIDATOR_URL and REDIS_URL are both set (the breaker it shares is the validator's, through that Redis)",
    );
  }
  if (v.VALIDATOR_FLEET_BREAKER_SECRET !== undefined && v.VALIDATOR_FLEET_BREAKER !== true) {
    r.fail(
      'VALIDATOR_FLEET_BREAKER_SECRET',
      undefined,
      "unset unless VALIDATOR_FLEET_BREAKER=true (it signs the fleet breaker's messages)",
    );
  }
  if (v.GCD_MODE === 'validator' && validatorUrl !== undefined) {
    r.fail('VALIDATOR_URL', validatorUrl, 'unset when GCD_MODE=validator (a validator does not call one)');
  }
  const chaosRates = (
    ['CHAOS_VALIDATOR_FAULT_RATE', 'CHAOS_VALIDATOR_LATENCY_RATE', 'CHAOS_COMPUTE_FAULT_RATE'] as const
  ).map((name) => [name, n(v, name)] as const);
  const chaosOn = chaosRates.some(([, rate]) => rate > 0);
  if (validatorUrl === undefined) {
    for (const [name, rate] of chaosRates.slice(0, 2)) {
      if (rate > 0) {
        r.fail(name, rate, '0 unless VALIDATOR_URL is set (it injects into the calls to the validator)');
      }
    }
  }
  if (n(v, 'CHAOS_VALIDATOR_LATENCY_RATE') > 0 && n(v, 'CHAOS_VALIDATOR_LATENCY_MS') === 0) {
    r.fail(
      'CHAOS_VALIDATOR_LATENCY_MS',
      0,
      'a delay above 0, since CHAOS_VALIDATOR_LATENCY_RATE is above 0 (the delay it injects)',
    );
  }
  if (v.GCD_MODE === 'validator' && n(v, 'CHAOS_COMPUTE_FAULT_RATE') > 0) {
    r.fail(
      'CHAOS_COMPUTE_FAULT_RATE',
      v.CHAOS_COMPUTE_FAULT_RATE,
      '0 when GCD_MODE=validator (a validator has no worker pool)',
    );
  }
  if (chaosOn && isProduction(env.NODE_ENV) && v.CHAOS_ALLOW_IN_PRODUCTION !== true) {
    const set = chaosRates.filter(([, rate]) => rate > 0).map(([name, rate]) => `${name}=${rate}`);
    r.fail(
      'CHAOS_ALLOW_IN_PRODUCTION',
      env.CHAOS_ALLOW_IN_PRODUCTION || undefined,
      `true to inject faults with NODE_ENV=${env.NODE_ENV!.trim()} (${set.join(', ')} is set); or set the CHAOS_* rates to 0`,
    );
  }

  const otel: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith('OTEL_') && value !== undefined) otel[name] = value;
  }

  // Sections present only when turned on.
  const rateLimit = o.rateLimit as RateLimitConfig;
  const config = {
    ...o,
    rateLimit: rateLimit.ratePerSecond === 0 ? undefined : Object.freeze(rateLimit),
    shedding: v.LOAD_SHEDDING === true ? Object.freeze(o.shedding) : false,
    tls: certFile !== undefined && keyFile !== undefined ? Object.freeze(o.tls) : undefined,
    validator: validatorUrl !== undefined ? Object.freeze(o.validator) : undefined,
    chaos: chaosOn ? Object.freeze({ seed: undefined, ...o.chaos }) : undefined,
    redisUrl: o.redisUrl,
    healthDetailsToken: o.healthDetailsToken,
    fleetBreakerSecret: o.fleetBreakerSecret,
    otel: Object.freeze(otel),
  } as unknown as GcdConfig;
  return { config: Object.freeze(config), issues: r.issues };
}

/** The typed configuration, or a {@link ConfigError} listing every bad variable. */
export function loadConfig(env: Env): GcdConfig {
  const { config, issues } = read(env);
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}

/** Every variable the service reads, with its default, what it accepts and its doc line (docs and `--help`). */
export function listVariables(): readonly VariableInfo[] {
  return [...describeTable(ENV), OTEL];
}

/**
 * A kit option the kit refused (`InvalidOptionError('service.headersTimeoutMs', …)`), told in the
 * environment's words (`HEADERS_TIMEOUT_MS=20000: expected at most REQUEST_TIMEOUT_MS (10000)`), or
 * undefined when no variable sets that option.
 */
export function configErrorOf(error: unknown): ConfigError | undefined {
  if (!(error instanceof InvalidOptionError)) return undefined;
  const byOption = new Map(
    ENV.filter((row) => row.target !== undefined).map((row) => [`service.${row.target!}`, row.name]),
  );
  const variable = byOption.get(error.option);
  if (variable === undefined) return undefined;
  let expected = error.expected;
  for (const [option, name] of byOption) {
    expected = expected.replace(new RegExp(`\\b${option.slice('service.'.length)}\\b`, 'gu'), name);
  }
  return new ConfigError([{ variable, received: JSON.stringify(String(error.received)), expected }]);
}

/** The configuration as it is safe to log: the Redis password replaced by `***`. */
export function describeConfig(config: GcdConfig): Record<string, unknown> {
  return {
    ...config,
    redisUrl: config.redisUrl === undefined ? undefined : redactUrl(config.redisUrl),
    healthDetailsToken: config.healthDetailsToken === undefined ? undefined : '***',
    fleetBreakerSecret: config.fleetBreakerSecret === undefined ? undefined : '***',
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
