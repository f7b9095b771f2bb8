/**
 * Configuration: defaults, every kind of bad value (named, shown, explained), secrets never shown,
 * and the built `main.js` exiting non-zero on a bad environment.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CIRCUIT_BREAKER_DEFAULTS, RETRY_DEFAULTS } from '@bulwark/core';
import {
  RATE_LIMIT_DEFAULTS,
  SERVICE_DEFAULTS,
  SHEDDING_DEFAULTS,
  SHUTDOWN_DEFAULTS,
} from '@bulwark/service';
import {
  ConfigError,
  DEFAULTS,
  describeConfig,
  listVariables,
  loadConfig,
  redactUrl,
} from '../src/config.js';
import { VALIDATOR_DEFAULTS } from '../src/validator-client.js';
import { createGcdServer } from '../src/server.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

function issuesOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error;
  }
  assert.fail(`expected ${JSON.stringify(env)} to be rejected`);
}

describe('loadConfig', () => {
  test('defaults follow MAX_DIGITS, so they never conflict with it (finding 5)', () => {
    const small = loadConfig({ MAX_DIGITS: '50' });
    assert.equal(small.inlineMaxDigits, 50);
    const large = loadConfig({ MAX_DIGITS: '20000' });
    assert.equal(large.bodyLimitBytes, 2 * 20000 + 64);
    assert.equal(large.maxHeaderBytes, 2 * 20000 + 2048);
    assert.equal(large.inlineMaxDigits, 100);
    assert.equal(loadConfig({}).bodyLimitBytes, 4096);
    assert.equal(loadConfig({}).maxHeaderBytes, 16384);
  });

  test('an empty environment gives the defaults', () => {
    const config = loadConfig({});
    assert.equal(config.port, 3000);
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.mode, 'gcd');
    assert.equal(config.maxDigits, DEFAULTS.maxDigits);
    assert.equal(config.redisUrl, undefined);
    assert.equal(config.tls, undefined);
    assert.equal(config.validator, undefined);
    assert.ok(Object.isFrozen(DEFAULTS));
    assert.ok(Object.isFrozen(config));
  });

  test('values are read and typed', () => {
    const config = loadConfig({
      PORT: '8080',
      HOST: '0.0.0.0',
      GCD_MODE: 'validator',
      MAX_DIGITS: '50',
      INLINE_MAX_DIGITS: '20',
      LOG_LEVEL: 'warn',
      REDIS_URL: 'redis://:s3cret@127.0.0.1:6379/0',
      TLS_CERT_FILE: '/etc/tls/cert.pem',
      TLS_KEY_FILE: '/etc/tls/key.pem',
      TLS_WATCH: 'off',
      OTEL_SERVICE_NAME: 'gcd',
      OTEL_TRACES_EXPORTER: 'none',
    });
    assert.equal(config.port, 8080);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.mode, 'validator');
    assert.equal(config.maxDigits, 50);
    assert.equal(config.inlineMaxDigits, 20);
    assert.equal(config.logLevel, 'warn');
    assert.deepEqual(config.tls, {
      certFile: '/etc/tls/cert.pem',
      keyFile: '/etc/tls/key.pem',
      watch: false,
    });
    assert.deepEqual(config.otel, { OTEL_SERVICE_NAME: 'gcd', OTEL_TRACES_EXPORTER: 'none' });
  });

  test('an empty value counts as unset', () => {
    assert.equal(loadConfig({ PORT: '', REDIS_URL: '' }).port, 3000);
  });

  test('validator settings: core option objects, defaults from the validator client (and so from core)', () => {
    const config = loadConfig({ VALIDATOR_URL: 'http://127.0.0.1:4000', VALIDATOR_RETRIES: '0' });
    assert.deepEqual(config.validator, {
      url: 'http://127.0.0.1:4000',
      attemptTimeoutMs: VALIDATOR_DEFAULTS.attemptTimeoutMs,
      retry: { maxAttempts: 1 },
      timeoutMs: VALIDATOR_DEFAULTS.timeoutMs,
      circuitBreaker: {
        openDurationMs: CIRCUIT_BREAKER_DEFAULTS.openDurationMs,
        strategy: { type: 'consecutive', threshold: VALIDATOR_DEFAULTS.circuitBreaker.strategy.threshold },
      },
      fleetBreaker: false,
    });
    const set = loadConfig({
      VALIDATOR_URL: 'http://127.0.0.1:4000',
      VALIDATOR_OPEN_MS: '1234',
      VALIDATOR_FAILURE_THRESHOLD: '7',
      VALIDATOR_TIMEOUT_MS: '50',
      VALIDATOR_DEADLINE_MS: '500',
    }).validator;
    assert.equal(set?.circuitBreaker?.openDurationMs, 1234);
    assert.deepEqual(set?.circuitBreaker?.strategy, { type: 'consecutive', threshold: 7 });
    assert.equal(set?.attemptTimeoutMs, 50);
    assert.equal(set?.timeoutMs, 500);
    assert.equal(
      loadConfig({ VALIDATOR_URL: 'http://x' }).validator?.retry?.maxAttempts,
      RETRY_DEFAULTS.maxAttempts,
    );
  });

  test("defaults the kit declares are the kit's", () => {
    const config = loadConfig({});
    assert.equal(config.keepAliveTimeoutMs, SERVICE_DEFAULTS.keepAliveTimeoutMs);
    assert.equal(config.maxHeaderBytes, SERVICE_DEFAULTS.maxHeaderBytes);
    assert.equal(config.logLevel, SERVICE_DEFAULTS.logLevel);
    assert.equal(config.shutdownTimeoutMs, SHUTDOWN_DEFAULTS.shutdownTimeoutMs);
    assert.deepEqual(config.rateLimit, {
      ratePerSecond: RATE_LIMIT_DEFAULTS.ratePerSecond,
      burst: RATE_LIMIT_DEFAULTS.burst,
      onStoreError: RATE_LIMIT_DEFAULTS.onStoreError,
    });
    assert.deepEqual(config.shedding, {
      algorithm: SHEDDING_DEFAULTS.algorithm,
      initialLimit: SHEDDING_DEFAULTS.initialLimit,
    });
    assert.equal(loadConfig({ LOAD_SHEDDING: 'off' }).shedding, false);
    assert.equal(loadConfig({ RATE_LIMIT_KEY_HEADER: 'X-Api-Key' }).rateLimit?.keyHeader, 'x-api-key');
  });

  test('a validator has no rate limit unless one is set; the gcd service has one by default', () => {
    assert.equal(loadConfig({ GCD_MODE: 'validator' }).rateLimit, undefined);
    assert.equal(
      loadConfig({ GCD_MODE: 'validator', RATE_LIMIT_PER_SECOND: '50' }).rateLimit?.ratePerSecond,
      50,
    );
    assert.equal(loadConfig({}).rateLimit?.ratePerSecond, RATE_LIMIT_DEFAULTS.ratePerSecond);
  });

  test('VALIDATOR_FLEET_BREAKER needs VALIDATOR_URL and REDIS_URL', () => {
    const both = { VALIDATOR_URL: 'http://127.0.0.1:4000', REDIS_URL: 'redis://127.0.0.1:6379' };
    assert.equal(loadConfig({ ...both, VALIDATOR_FLEET_BREAKER: 'true' }).validator?.fleetBreaker, true);
    assert.throws(
      () => loadConfig({ VALIDATOR_URL: both.VALIDATOR_URL, VALIDATOR_FLEET_BREAKER: 'true' }),
      /VALIDATOR_FLEET_BREAKER="true": expected false unless VALIDATOR_URL and REDIS_URL are both set/,
    );
    assert.throws(
      () => loadConfig({ REDIS_URL: both.REDIS_URL, VALIDATOR_FLEET_BREAKER: 'on' }),
      /VALIDATOR_FLEET_BREAKER/,
    );
  });

  const BAD: readonly [Record<string, string>, string, RegExp][] = [
    [{ PORT: 'abc' }, 'PORT', /PORT="abc": expected a whole number from 0 to 65535/],
    [{ PORT: '70000' }, 'PORT', /PORT="70000": expected a whole number from 0 to 65535/],
    [{ PORT: '-1' }, 'PORT', /PORT="-1"/],
    [{ PORT: '80.5' }, 'PORT', /PORT="80.5"/],
    [{ HOST: 'a b' }, 'HOST', /HOST="a b": expected an IP address or host name/],
    [{ GCD_MODE: 'both' }, 'GCD_MODE', /GCD_MODE="both": expected one of gcd, validator/],
    [{ MAX_DIGITS: '0' }, 'MAX_DIGITS', /MAX_DIGITS="0": expected a whole number from 1 to 1000000/],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /LOG_LEVEL="loud": expected one of fatal, error, warn, info/],
    [{ TLS_WATCH: 'maybe' }, 'TLS_WATCH', /TLS_WATCH="maybe": expected one of true, false, on, off/],
    [{ COMPUTE_TIMEOUT_MS: '1s' }, 'COMPUTE_TIMEOUT_MS', /COMPUTE_TIMEOUT_MS="1s"/],
    [{ INLINE_MAX_DIGITS: '200', MAX_DIGITS: '100' }, 'INLINE_MAX_DIGITS', /at most MAX_DIGITS \(100\)/],
    // A value the operator set must fit MAX_DIGITS (an unset one follows it: see below).
    [
      { MAX_DIGITS: '5000', BODY_LIMIT_BYTES: '4096' },
      'BODY_LIMIT_BYTES',
      /BODY_LIMIT_BYTES="4096": expected at least 10064/,
    ],
    [
      { MAX_DIGITS: '8000', BODY_LIMIT_BYTES: '20000', MAX_HEADER_BYTES: '16384' },
      'MAX_HEADER_BYTES',
      /at least 18048/,
    ],
    [
      { TLS_CERT_FILE: '/x.pem' },
      'TLS_KEY_FILE',
      /TLS_KEY_FILE=\(unset\): expected a path too, since TLS_CERT_FILE is set/,
    ],
    [{ TLS_KEY_FILE: '/k.pem' }, 'TLS_CERT_FILE', /TLS_CERT_FILE=\(unset\)/],
    [
      { VALIDATOR_URL: 'ftp://x' },
      'VALIDATOR_URL',
      /VALIDATOR_URL="ftp:\/\/x": expected a URL starting with http:\/\/ or https:\/\//,
    ],
    [{ VALIDATOR_URL: 'http://x', GCD_MODE: 'validator' }, 'VALIDATOR_URL', /unset when GCD_MODE=validator/],
    [
      { REDIS_URL: 'http://:pw@x' },
      'REDIS_URL',
      /REDIS_URL=\(hidden: it may contain a password\): expected a URL starting with redis:\/\/ or rediss:\/\//,
    ],
  ];
  for (const [env, variable, message] of BAD) {
    test(`rejects ${JSON.stringify(env)} naming ${variable}`, () => {
      const error = issuesOf(env);
      assert.ok(
        error.issues.some((i) => i.variable === variable),
        `issues: ${JSON.stringify(error.issues)}`,
      );
      assert.match(error.message, message);
    });
  }

  test('HEADERS_TIMEOUT_MS above REQUEST_TIMEOUT_MS: checked once, by the kit, and told in variables', async () => {
    const config = { ...loadConfig({ HEADERS_TIMEOUT_MS: '20000' }), port: 0, logLevel: 'silent' as const };
    await assert.rejects(createGcdServer(config), (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.issues[0]?.variable, 'HEADERS_TIMEOUT_MS');
      assert.match(
        error.message,
        /HEADERS_TIMEOUT_MS="20000": expected at most REQUEST_TIMEOUT_MS \(10000\)/,
      );
      return true;
    });
  });

  test('reports every problem at once', () => {
    const error = issuesOf({ PORT: 'x', LOG_LEVEL: 'y', MAX_DIGITS: 'z' });
    assert.equal(error.issues.length, 3);
    assert.match(error.message, /^Invalid configuration \(3 problems\):\n/);
  });
});

describe('secrets', () => {
  test('the Redis password is never shown', () => {
    assert.equal(redactUrl('redis://:s3cret@127.0.0.1:6379/0'), 'redis://:***@127.0.0.1:6379/0');
    assert.equal(redactUrl('redis://user:s3cret@h:1'), 'redis://user:***@h:1');
    assert.equal(redactUrl('redis://tokenonly@h:1'), 'redis://***@h:1');
    const described = JSON.stringify(describeConfig(loadConfig({ REDIS_URL: 'redis://u:s3cret@h:6379' })));
    assert.doesNotMatch(described, /s3cret/);
    const error = issuesOf({ REDIS_URL: 'redis//:s3cret@h', PORT: 'x' });
    assert.doesNotMatch(error.message, /s3cret/);
  });
  test('VALIDATOR_FLEET_BREAKER_SECRET: read, never shown, and only with the fleet breaker on', () => {
    const fleet = {
      VALIDATOR_URL: 'http://127.0.0.1:3001',
      REDIS_URL: 'redis://127.0.0.1:6379',
      VALIDATOR_FLEET_BREAKER: 'true',
    };
    const secret = 'fleet-s3cret-0123456789';
    const config = loadConfig({ ...fleet, VALIDATOR_FLEET_BREAKER_SECRET: secret });
    assert.equal(config.fleetBreakerSecret, secret);
    assert.equal(loadConfig(fleet).fleetBreakerSecret, undefined);
    assert.doesNotMatch(JSON.stringify(describeConfig(config)), /s3cret/);
    const short = issuesOf({ ...fleet, VALIDATOR_FLEET_BREAKER_SECRET: 's3cret-short' });
    assert.match(
      short.message,
      /VALIDATOR_FLEET_BREAKER_SECRET=\(hidden: it is a secret\): expected a secret of at least 16/,
    );
    assert.doesNotMatch(short.message, /s3cret/);
    // set but empty (a secret that did not reach the environment) is refused, not taken as unset
    assert.match(
      issuesOf({ ...fleet, VALIDATOR_FLEET_BREAKER_SECRET: '' }).message,
      /VALIDATOR_FLEET_BREAKER_SECRET=\(hidden: it is a secret\): expected a secret of at least 16/,
    );
    const unused = issuesOf({ VALIDATOR_FLEET_BREAKER_SECRET: secret });
    assert.match(
      unused.message,
      /VALIDATOR_FLEET_BREAKER_SECRET=\(hidden: it is a secret\): expected unset unless VALIDATOR_FLEET_BREAKER=true/,
    );
    assert.doesNotMatch(unused.message, /s3cret/);
  });
});

describe('listVariables', () => {
  test('lists every variable with its default', () => {
    const names = listVariables().map((v) => v.name);
    for (const name of [
      'PORT',
      'HOST',
      'MAX_DIGITS',
      'REDIS_URL',
      'TLS_CERT_FILE',
      'VALIDATOR_URL',
      'OTEL_*',
    ]) {
      assert.ok(names.includes(name), name);
    }
    assert.equal(new Set(names).size, names.length, 'each variable once');
    assert.equal(listVariables().find((v) => v.name === 'PORT')?.default, '3000');
  });
});

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runMain(env: Record<string, string>): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('main.js with a bad environment', () => {
  test('exits 78 with a message naming the variable, what it got and what is allowed', async () => {
    const exit = await runMain({ PORT: 'eighty', MAX_DIGITS: '-3', REDIS_URL: 'redis://:hunter2@:bad' });
    assert.equal(exit.code, 78, exit.stderr);
    assert.match(exit.stderr, /PORT="eighty": expected a whole number from 0 to 65535/);
    assert.match(exit.stderr, /MAX_DIGITS="-3": expected a whole number from 1 to 1000000/);
    assert.match(exit.stderr, /docs\/gcd-service\.md/);
    assert.doesNotMatch(exit.stderr + exit.stdout, /hunter2/);
    assert.equal(exit.stdout, '', 'nothing starts');
  });

  test('exits 78 when the kit refuses a value, naming the variable (HEADERS_TIMEOUT_MS)', async () => {
    const exit = await runMain({ PORT: '0', HEADERS_TIMEOUT_MS: '20000', REQUEST_TIMEOUT_MS: '15000' });
    assert.equal(exit.code, 78, exit.stderr);
    assert.match(exit.stderr, /HEADERS_TIMEOUT_MS="20000": expected at most REQUEST_TIMEOUT_MS \(15000\)/);
    assert.equal(exit.stdout, '', 'nothing starts');
  });

  test('exits 1 when the certificate cannot be read', async () => {
    const exit = await runMain({
      PORT: '0',
      TLS_CERT_FILE: '/nonexistent/c.pem',
      TLS_KEY_FILE: '/nonexistent/k.pem',
    });
    assert.equal(exit.code, 1);
    assert.match(exit.stderr, /cannot start: TLS_CERT_FILE: cannot read \/nonexistent\/c\.pem: ENOENT/);
  });
});
