/**
 * The chapter's multi-service example: a real validator on loopback (the same app in validator mode),
 * reached through @bulwark/fault-server's TCP proxy so the tests can make it hang or vanish. The gcd
 * service calls it through deadline → retry → breaker → per-attempt timeout, and degrades to local
 * validation (and says so) when it cannot answer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFaultProxy, type FaultProxy } from '@bulwark/fault-server';
import { ask, q, start, type Running } from './helpers.js';

describe('validator mode', () => {
  let v: Running;
  before(async () => {
    v = await start({ mode: 'validator', maxDigits: 10 });
  });
  after(() => v.close());

  test('POST /validate accepts a valid pair', async () => {
    const res = await ask(`${v.url}/validate`, {
      method: 'POST',
      body: JSON.stringify({ n: '0012', m: '18' }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { valid: true, n: '12', m: '18' });
  });

  test('POST /validate rejects with the same codes as the service', async () => {
    const cases: [unknown, string][] = [
      [{ n: '12345678901', m: '1' }, 'GCD_ERR_TOO_MANY_DIGITS'],
      [{ n: '0', m: '1' }, 'GCD_ERR_ZERO'],
      [{ n: 12, m: '1' }, 'GCD_ERR_INVALID_NUMBER'],
      [{ n: '1' }, 'GCD_ERR_MISSING_PARAMETER'],
      [[1, 2], 'GCD_ERR_INVALID_BODY'],
    ];
    for (const [body, code] of cases) {
      const res = await ask(`${v.url}/validate`, {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.json().code, code);
    }
  });

  test('POST /validate: malformed JSON is a 400, a form is a 415, other routes explain', async () => {
    const bad = await ask(`${v.url}/validate`, {
      method: 'POST',
      body: '{"n":',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json().code, 'GCD_ERR_INVALID_BODY');
    const form = await ask(`${v.url}/validate`, { form: { n: '1', m: '2' } });
    assert.equal(form.status, 415);
    const gcd = await ask(`${v.url}/api/gcd?n=1&m=2`);
    assert.equal(gcd.status, 404);
    assert.match(gcd.json<{ message: string }>().message, /This is the gcd validator/);
  });
});

describe('gcd service with a validator', () => {
  let v: Running;
  let proxy: FaultProxy;
  let s: Running;
  const OPEN_MS = 400;
  const DEADLINE_MS = 600;
  before(async () => {
    v = await start({ mode: 'validator', maxDigits: 10 });
    proxy = await startFaultProxy({ target: new URL(v.url).host });
    s = await start({
      validator: {
        url: proxy.url,
        timeoutMs: 150,
        retries: 1,
        deadlineMs: DEADLINE_MS,
        openMs: OPEN_MS,
        failureThreshold: 3,
      },
    });
  });
  after(async () => {
    await s.close();
    await proxy.close();
    await v.close();
  });

  test('a pair the validator accepts: 200, x-gcd-validation: remote', async () => {
    const res = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-gcd-validation'], 'remote');
    assert.deepEqual(res.json(), { n: '12', m: '18', gcd: '6' });
  });

  test('a pair the validator rejects (its MAX_DIGITS is 10): 400 with its reason', async () => {
    const res = await ask(`${s.url}/api/gcd?${q({ n: '123456789012', m: '18' })}`);
    assert.equal(res.status, 400);
    const body = res.json<{ code: string; message: string }>();
    assert.equal(body.code, 'GCD_ERR_REJECTED_BY_VALIDATOR');
    assert.match(
      body.message,
      /The validator rejected the numbers \(GCD_ERR_TOO_MANY_DIGITS\): n has 12 characters/,
    );
    assert.equal(s.server.validator!.breaker.state, 'closed', 'a verdict is not a failure');
  });

  test('input that fails local validation never reaches the validator', async () => {
    const before = proxy.bytesUpstream;
    const res = await ask(`${s.url}/api/gcd?n=abc&m=1`);
    assert.equal(res.status, 400);
    assert.equal(res.json().code, 'GCD_ERR_INVALID_NUMBER');
    assert.equal(proxy.bytesUpstream, before);
  });

  test('the form page works through the validator too', async () => {
    const res = await ask(`${s.url}/gcd`, { form: { n: '1234567890123', m: '5' } });
    assert.equal(res.status, 400);
    assert.match(res.text, /GCD_ERR_REJECTED_BY_VALIDATOR/);
  });

  test('validator black-holed: local fallback within the deadline, then the breaker opens and answers at once', async () => {
    const client = s.server.validator!;
    const fallbacksBefore = client.fallbacks;
    await proxy.setFault({ type: 'blackhole' });
    // Each request: attempt (150 ms timeout) + retry (150 ms) < deadline 600 ms.
    const first = await ask(`${s.url}/api/gcd?${q({ n: '123456789012', m: '18' })}`);
    assert.equal(
      first.status,
      200,
      'the validator would have refused this, but it cannot answer: local rules apply',
    );
    assert.equal(first.headers['x-gcd-validation'], 'local-fallback');
    assert.equal(first.json().gcd, '6');
    assert.ok(first.ms < DEADLINE_MS + 400, `fallback took ${first.ms} ms`);

    // 2 failed attempts per request, threshold 3: the second request opens the breaker.
    const second = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`);
    assert.equal(second.headers['x-gcd-validation'], 'local-fallback');
    assert.equal(client.breaker.state, 'open');

    // Open: no call leaves, the answer is immediate.
    const connections = proxy.totalConnections;
    const bytes = proxy.bytesUpstream;
    const third = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`);
    assert.equal(third.status, 200);
    assert.equal(third.headers['x-gcd-validation'], 'local-fallback');
    assert.ok(third.ms < 100, `open breaker answer took ${third.ms} ms`);
    assert.equal(proxy.totalConnections, connections);
    assert.equal(proxy.bytesUpstream, bytes);
    assert.equal(client.fallbacks - fallbacksBefore, 3);
    assert.equal(client.lastFailure?.reason, 'CircuitOpenError');
  });

  test('validator down (connection refused): still served, locally', async () => {
    await proxy.setFault({ type: 'down' });
    const res = await ask(`${s.url}/gcd`, { form: { n: '48', m: '180' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-gcd-validation'], 'local-fallback');
    assert.match(res.text, /id="gcd">12</);
  });

  test('validator back: after the open period a probe closes the breaker and remote validation resumes', async () => {
    const client = s.server.validator!;
    await proxy.setFault({ type: 'none' });
    await new Promise((r) => setTimeout(r, OPEN_MS + 50));
    let mode: unknown;
    const end = performance.now() + 5000;
    while (mode !== 'remote' && performance.now() < end) {
      const res = await ask(`${s.url}/api/gcd?n=12&m=18`);
      assert.equal(res.status, 200);
      mode = res.headers['x-gcd-validation'];
      if (mode !== 'remote') await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(mode, 'remote', 'remote validation resumes within 5 s');
    assert.equal(client.breaker.state, 'closed');
    const res = await ask(`${s.url}/api/gcd?${q({ n: '123456789012', m: '18' })}`);
    assert.equal(res.status, 400, 'the validator is in charge again');
  });
});
