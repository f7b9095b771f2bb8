/**
 * Game days (docs/ops/game-day.md): the CHAOS_* settings, refused where they make no sense or in
 * production, injecting where the reactions are real (the validator's breaker and fallback, the pool's
 * 503), counted in /metrics, and switched off and on at run time (SIGUSR2).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, type ChaosConfig, type ValidatorConfig } from '../src/config.js';
import { createGameDay } from '../src/chaos.js';
import { ask, q, spawnService, start, type Running } from './helpers.js';

/** The value of one sample in a Prometheus scrape (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.indexOf('}'));
    if (Object.entries(labels).every(([k, v]) => body.includes(`${k}="${v}"`))) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return 0;
}

const NO_CHAOS: ChaosConfig = {
  validatorFaultRate: 0,
  validatorLatencyRate: 0,
  validatorLatencyMs: 0,
  computeFaultRate: 0,
  seed: undefined,
};

describe('CHAOS_* configuration', () => {
  const WITH_VALIDATOR = { VALIDATOR_URL: 'http://127.0.0.1:3001' };

  test('off by default', () => {
    assert.equal(loadConfig({}).chaos, undefined);
    assert.equal(loadConfig({ ...WITH_VALIDATOR, CHAOS_VALIDATOR_FAULT_RATE: '0' }).chaos, undefined);
  });

  test('rates, latency and seed are read', () => {
    const config = loadConfig({
      ...WITH_VALIDATOR,
      CHAOS_VALIDATOR_FAULT_RATE: '0.25',
      CHAOS_VALIDATOR_LATENCY_RATE: '1',
      CHAOS_VALIDATOR_LATENCY_MS: '200',
      CHAOS_COMPUTE_FAULT_RATE: '.5',
      CHAOS_SEED: '7',
    });
    assert.deepEqual(config.chaos, {
      validatorFaultRate: 0.25,
      validatorLatencyRate: 1,
      validatorLatencyMs: 200,
      computeFaultRate: 0.5,
      seed: 7,
    });
  });

  test('a bad rate or seed is refused, saying what is allowed', () => {
    for (const bad of ['1.5', '-0.1', '5%', 'half', '1e-3']) {
      assert.throws(
        () => loadConfig({ CHAOS_COMPUTE_FAULT_RATE: bad }),
        (e: Error) =>
          e.message.includes(`CHAOS_COMPUTE_FAULT_RATE=${JSON.stringify(bad)}`) &&
          e.message.includes('a number from 0 to 1'),
        bad,
      );
    }
    assert.throws(
      () => loadConfig({ CHAOS_COMPUTE_FAULT_RATE: '0.1', CHAOS_SEED: '-3' }),
      /CHAOS_SEED="-3": expected a whole number from 0 to 4294967295/,
    );
  });

  test('validator chaos without VALIDATOR_URL is refused, saying why', () => {
    assert.throws(
      () => loadConfig({ CHAOS_VALIDATOR_FAULT_RATE: '0.5' }),
      /CHAOS_VALIDATOR_FAULT_RATE="0.5": expected 0 unless VALIDATOR_URL is set/,
    );
    assert.throws(
      () => loadConfig({ CHAOS_VALIDATOR_LATENCY_RATE: '0.5', CHAOS_VALIDATOR_LATENCY_MS: '100' }),
      /CHAOS_VALIDATOR_LATENCY_RATE="0.5": expected 0 unless VALIDATOR_URL is set/,
    );
    assert.throws(
      () => loadConfig({ ...WITH_VALIDATOR, CHAOS_VALIDATOR_LATENCY_RATE: '0.5' }),
      /CHAOS_VALIDATOR_LATENCY_MS="0": expected a delay above 0/,
    );
    assert.throws(
      () => loadConfig({ GCD_MODE: 'validator', CHAOS_COMPUTE_FAULT_RATE: '0.5' }),
      /CHAOS_COMPUTE_FAULT_RATE="0.5": expected 0 when GCD_MODE=validator/,
    );
  });

  test('refused with NODE_ENV=production unless CHAOS_ALLOW_IN_PRODUCTION=true', () => {
    const env = { NODE_ENV: 'production', CHAOS_COMPUTE_FAULT_RATE: '0.01' };
    assert.throws(
      () => loadConfig(env),
      /CHAOS_ALLOW_IN_PRODUCTION=\(unset\): expected true to inject faults with NODE_ENV=production \(CHAOS_COMPUTE_FAULT_RATE=0.01 is set\)/,
    );
    assert.throws(
      () => loadConfig({ ...env, CHAOS_ALLOW_IN_PRODUCTION: 'false' }),
      /CHAOS_ALLOW_IN_PRODUCTION="false"/,
    );
    assert.equal(loadConfig({ ...env, CHAOS_ALLOW_IN_PRODUCTION: 'true' }).chaos?.computeFaultRate, 0.01);
    // production without chaos needs nothing
    assert.equal(loadConfig({ NODE_ENV: 'production' }).chaos, undefined);
  });

  test('production in any letter case, or `prod`, is production for the rail', () => {
    for (const NODE_ENV of ['Production', 'PRODUCTION', 'prod', 'Prod', ' production ']) {
      assert.throws(
        () => loadConfig({ NODE_ENV, CHAOS_COMPUTE_FAULT_RATE: '0.1' }),
        /CHAOS_ALLOW_IN_PRODUCTION=\(unset\): expected true to inject faults with NODE_ENV=/,
        `NODE_ENV=${JSON.stringify(NODE_ENV)}`,
      );
    }
    for (const NODE_ENV of ['development', 'staging', 'test', 'preprod', 'production-like']) {
      assert.equal(loadConfig({ NODE_ENV, CHAOS_COMPUTE_FAULT_RATE: '0.1' }).chaos?.computeFaultRate, 0.1);
    }
  });

  test('the real process exits 78 naming CHAOS_ALLOW_IN_PRODUCTION', async () => {
    await assert.rejects(
      spawnService({ NODE_ENV: 'production', CHAOS_COMPUTE_FAULT_RATE: '0.5' }),
      (e: Error & { code?: number; stderr?: string }) =>
        e.code === 78 && /CHAOS_ALLOW_IN_PRODUCTION/.test(e.stderr ?? ''),
    );
  });
});

test('CHAOS_SEED replays the same injections', async () => {
  const run = async () => {
    const day = createGameDay({ ...NO_CHAOS, validatorFaultRate: 0.5, seed: 42 }, () => undefined);
    const [fault] = day.validator;
    const outcomes: boolean[] = [];
    for (let i = 0; i < 32; i++) {
      outcomes.push(await fault!.execute(async () => true).catch(() => false));
    }
    return outcomes;
  };
  const first = await run();
  assert.deepEqual(await run(), first);
  assert.ok(first.includes(true) && first.includes(false), 'some injected, some not');
});

describe('a game day against the validator (CHAOS_VALIDATOR_FAULT_RATE=1)', () => {
  let v: Running;
  let s: Running;
  const validatorConfig = (url: string): ValidatorConfig => ({
    url,
    attemptTimeoutMs: 5000,
    retry: { maxAttempts: 1 },
    timeoutMs: 10_000,
    circuitBreaker: { openDurationMs: 100, strategy: { type: 'consecutive', threshold: 3 } },
  });
  before(async () => {
    v = await start({ mode: 'validator' }); // a working validator: every failure is injected
    s = await start({
      validator: validatorConfig(v.url),
      chaos: { ...NO_CHAOS, validatorFaultRate: 1 },
    });
  });
  after(async () => {
    await s.close();
    await v.close();
  });

  test('requests fall back locally, the breaker opens after its threshold, injections are counted; switched off, remote validation returns', async () => {
    const breaker = s.server.validator!.breaker;
    const fault = s.server.gameDay!.policies.get('chaos-validator-fault')!;
    let injected = 0;
    fault.onInject(() => injected++);
    let injectedWhenOpened: number | undefined;
    breaker.onStateChange((e) => {
      if (e.to === 'open') injectedWhenOpened ??= injected;
    });
    const injections = async () =>
      sample((await ask(`${s.url}/metrics`)).text, 'bulwark_chaos_injections_total', {
        name: 'chaos-validator-fault',
        kind: 'fault',
      });
    for (let i = 0; i < 4; i++) {
      const res = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-gcd-validation'], 'local-fallback', `request ${i + 1}`);
    }
    // VALIDATOR_FAILURE_THRESHOLD (3) injected failures opened it (a busy machine may let the 4th request
    // probe after VALIDATOR_OPEN_MS, which is injected into too)
    assert.equal(injectedWhenOpened, 3);
    const metrics = (await ask(`${s.url}/metrics`)).text;
    assert.equal(await injections(), injected);
    assert.equal(
      sample(metrics, 'gcd_validator_fallbacks_total', { reason: 'ChaosFaultError' }) +
        sample(metrics, 'gcd_validator_fallbacks_total', { reason: 'CircuitOpenError' }),
      4,
    );

    assert.equal(s.server.switchChaos('test', false), false);
    assert.equal(s.server.gameDay!.enabled, false);
    if (breaker.state === 'open') {
      // the breaker's own schedule (VALIDATOR_OPEN_MS) lets a probe through
      await new Promise<void>((resolve) => {
        const stop = breaker.onStateChange((e) => {
          if (e.to !== 'half-open') return;
          stop.dispose();
          resolve();
        });
      });
    }
    const before = injected;
    const res = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`);
    assert.equal(res.headers['x-gcd-validation'], 'remote');
    assert.equal(breaker.state, 'closed');
    assert.equal(injected, before, 'no injection while switched off');
    assert.equal(await injections(), before);

    // switched back on: injected again
    assert.equal(s.server.switchChaos('test'), true);
    const again = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`);
    assert.equal(again.headers['x-gcd-validation'], 'local-fallback');
    assert.equal(await injections(), before + 1);
  });
});

test('CHAOS_COMPUTE_FAULT_RATE=1: a pool computation fails with 503 GCD_ERR_WORKER_FAILED; inline ones do not', async () => {
  const s = await start({
    maxDigits: 50,
    inlineMaxDigits: 5,
    poolMaxThreads: 1,
    chaos: { ...NO_CHAOS, computeFaultRate: 1 },
  });
  try {
    const res = await ask(`${s.url}/api/gcd?${q({ n: '123456789012', m: '18' })}`);
    assert.equal(res.status, 503);
    assert.equal(res.json().code, 'GCD_ERR_WORKER_FAILED');
    assert.equal(res.headers['retry-after'], '1');
    const inline = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`);
    assert.equal(inline.status, 200);
    const metrics = (await ask(`${s.url}/metrics`)).text;
    assert.equal(
      sample(metrics, 'bulwark_chaos_injections_total', { name: 'chaos-compute-fault', kind: 'fault' }),
      1,
    );
    assert.equal(sample(metrics, 'gcd_computations_total', { path: 'pool', outcome: 'error' }), 1);

    s.server.switchChaos('test', false);
    const healed = await ask(`${s.url}/api/gcd?${q({ n: '123456789012', m: '18' })}`);
    assert.equal(healed.status, 200);
    assert.equal(healed.json().gcd, '6');
  } finally {
    await s.close();
  }
});

test('the real process: a warn line lists the chaos in force; SIGUSR2 switches it off and on', async () => {
  const p = await spawnService({
    VALIDATOR_URL: 'http://127.0.0.1:9',
    CHAOS_VALIDATOR_FAULT_RATE: '0.5',
    CHAOS_SEED: '7',
  });
  try {
    const on = await p.logged(/^chaos injection is ON/);
    assert.equal(on.level, 40);
    assert.deepEqual((on.chaos as ChaosConfig).validatorFaultRate, 0.5);
    p.child.kill('SIGUSR2');
    const off = await p.logged('chaos injection switched off by SIGUSR2');
    assert.equal(off.level, 40);
    assert.equal(off.by, 'SIGUSR2');
    p.child.kill('SIGUSR2');
    await p.logged('chaos injection switched on by SIGUSR2');
  } finally {
    p.child.kill('SIGTERM');
    await p.exit;
  }
});

test('CHAOS_VALIDATOR_LATENCY_*: the delay is inside the per-attempt timeout (a long one is a timeout, answered locally)', async () => {
  const v = await start({ mode: 'validator' });
  const s = await start({
    validator: {
      url: v.url,
      attemptTimeoutMs: 50,
      retry: { maxAttempts: 1 },
      timeoutMs: 10_000,
      circuitBreaker: { openDurationMs: 5000, strategy: { type: 'consecutive', threshold: 5 } },
    },
    chaos: { ...NO_CHAOS, validatorLatencyRate: 1, validatorLatencyMs: 600_000 },
  });
  try {
    const res = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-gcd-validation'], 'local-fallback');
    const metrics = (await ask(`${s.url}/metrics`)).text;
    assert.equal(
      sample(metrics, 'bulwark_chaos_injections_total', { name: 'chaos-validator-latency', kind: 'latency' }),
      1,
    );
    assert.equal(sample(metrics, 'gcd_validator_fallbacks_total', { reason: 'TimeoutError' }), 1);
  } finally {
    await s.close();
    await v.close();
  }
});
