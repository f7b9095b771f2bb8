/**
 * Graceful shutdown of the real process (dist/src/main.js): on SIGTERM readiness fails while 20
 * in-flight requests all complete, then the process exits 0; a second signal exits at once. The requests
 * are held in flight by a stand-in validator that answers only when the test says so — no latency, no
 * timing. (The drain phase itself, on an injected clock, is tested in @bulwark/service's shutdown tests.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ask, HeldValidator, spawnService, type Answer, type Spawned } from './helpers.js';

let validator: HeldValidator;
let validatorUrl = '';
const started: Spawned[] = [];

before(async () => {
  validator = new HeldValidator();
  validatorUrl = await validator.listen();
});
after(async () => {
  for (const p of started)
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await validator.close();
});

async function launch(env: Record<string, string>): Promise<Spawned> {
  const p = await spawnService({
    LOG_LEVEL: 'info',
    VALIDATOR_URL: validatorUrl,
    VALIDATOR_TIMEOUT_MS: '60000',
    VALIDATOR_DEADLINE_MS: '60000',
    VALIDATOR_RETRIES: '0',
    RATE_LIMIT_PER_SECOND: '0',
    // Off here: on a saturated shared machine its event-loop gate may shed some of the 20 requests,
    // and this test is about the drain.
    LOAD_SHEDDING: 'off',
    ...env,
  });
  started.push(p);
  return p;
}

test('SIGTERM: readiness fails at once, 20 in-flight requests complete, exit 0', async () => {
  const p = await launch({ SHUTDOWN_TIMEOUT_MS: '60000' });
  const before = validator.count;
  const requests: Promise<Answer>[] = [];
  for (let i = 0; i < 20; i++) requests.push(ask(`${p.url}/api/gcd?n=${12 + i}&m=18`));
  await validator.reached(before + 20); // all 20 are in flight, waiting for their validation
  assert.equal((await ask(`${p.url}/readyz`)).status, 200);

  p.child.kill('SIGTERM');
  await p.logged('shutdown started: readiness failing, draining');
  validator.release();
  const answers = await Promise.all(requests);
  for (const res of answers) {
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-gcd-validation'], 'remote', 'they were validated while the server closed');
  }
  const { code } = await p.exit;
  assert.equal(code, 0);
  await p.logged('shutdown complete');
});

test('a second signal exits at once', async () => {
  const fresh = new HeldValidator();
  const url = await fresh.listen();
  const p = await spawnService({
    VALIDATOR_URL: url,
    VALIDATOR_TIMEOUT_MS: '60000',
    VALIDATOR_DEADLINE_MS: '60000',
    SHUTDOWN_TIMEOUT_MS: '60000',
    // as in launch(): on a saturated machine the event-loop gate could shed the one request this
    // test holds, and it would then wait for a validator call that never comes
    LOAD_SHEDDING: 'off',
  });
  started.push(p);
  try {
    const slow = ask(`${p.url}/api/gcd?n=4&m=6`).catch((error: unknown) => error);
    // the request reaches the validator, or it was answered without it: say so instead of hanging
    const answeredFirst = slow.then((answer) =>
      assert.fail(`the request was answered before it reached the validator: ${JSON.stringify(answer)}`),
    );
    await Promise.race([fresh.reached(1), answeredFirst]);
    p.child.kill('SIGTERM');
    await p.logged('shutdown started: readiness failing, draining');
    // Not the first signal delivered twice (those are one): a second one, later. Longer is fine.
    await new Promise((r) => setTimeout(r, 300));
    p.child.kill('SIGTERM');
    const { code } = await p.exit; // long before the held request or the 60 s deadline
    assert.equal(code, 143, 'exit code 128 + SIGTERM');
    await slow;
  } finally {
    await fresh.close();
  }
});
