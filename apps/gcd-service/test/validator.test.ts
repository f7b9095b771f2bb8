/**
 * The chapter's multi-service example: a real validator on loopback (the same app in validator mode),
 * reached through @bulwark/fault-server's TCP proxy so the tests can make it hang or vanish. The gcd
 * service calls it through deadline → retry → breaker → per-attempt timeout, and degrades to local
 * validation (and says so) when it cannot answer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFaultProxy, type FaultProxy } from '@bulwark/fault-server';
import { spawnService, ask, q, start, type Running } from './helpers.js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CircuitStateChangeEvent, RetryPolicy } from '@bulwark/core';
import { FakeClock } from '@bulwark/core/testing';
import { loadConfig } from '../src/config.js';
import { ValidatorClient } from '../src/validator-client.js';

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
        attemptTimeoutMs: 150,
        retry: { maxAttempts: 2 },
        timeoutMs: DEADLINE_MS,
        circuitBreaker: { openDurationMs: OPEN_MS, strategy: { type: 'consecutive', threshold: 3 } },
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

    // 2 failed attempts per request, threshold 3: the second request opens the breaker.
    const second = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`);
    assert.equal(second.headers['x-gcd-validation'], 'local-fallback');
    assert.equal(client.breaker.state, 'open');

    // Open: no call leaves, so nothing is waited for.
    const connections = proxy.totalConnections;
    const bytes = proxy.bytesUpstream;
    const third = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`);
    assert.equal(third.status, 200);
    assert.equal(third.headers['x-gcd-validation'], 'local-fallback');
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
    // The breaker's open period passes (at least OPEN_MS; longer changes nothing), then a probe goes out.
    await new Promise((r) => setTimeout(r, OPEN_MS + 50));
    let mode: unknown;
    for (let i = 0; i < 100 && mode !== 'remote'; i++) {
      const res = await ask(`${s.url}/api/gcd?n=12&m=18`);
      assert.equal(res.status, 200);
      mode = res.headers['x-gcd-validation'];
      if (mode !== 'remote') await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(mode, 'remote', 'remote validation resumes');
    assert.equal(client.breaker.state, 'closed');
    const res = await ask(`${s.url}/api/gcd?${q({ n: '123456789012', m: '18' })}`);
    assert.equal(res.status, 400, 'the validator is in charge again');
  });
});

describe('finding 5: the documented validator example, and what a validator answer means', () => {
  test('GCD_MODE=validator PORT=… MAX_DIGITS=50 starts (INLINE_MAX_DIGITS follows MAX_DIGITS down)', async () => {
    const p = await spawnService({ GCD_MODE: 'validator', MAX_DIGITS: '50' });
    try {
      const res = await ask(`${p.url}/validate`, {
        body: JSON.stringify({ n: '12', m: '18' }),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.status, 200);
    } finally {
      p.child.kill('SIGTERM');
      assert.equal((await p.exit).code, 0);
    }
    assert.equal(loadConfig({ MAX_DIGITS: '50' }).inlineMaxDigits, 50);
    assert.throws(
      () => loadConfig({ MAX_DIGITS: '50', INLINE_MAX_DIGITS: '100' }),
      /INLINE_MAX_DIGITS="100"/,
    );
  });

  /** A stand-in validator that answers every call with `status` and `body`. */
  async function stub(status: number, body: string): Promise<{ server: Server; url: string }> {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(status, { 'content-type': 'application/json' }).end(body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }
  const CONFIG = { attemptTimeoutMs: 1000, retry: { maxAttempts: 1 }, timeoutMs: 2000 };

  /** A stand-in validator that answers with `answers` in turn (the last one again), counting calls. */
  async function script(
    answers: readonly { status: number; headers?: Record<string, string>; body?: string }[],
  ): Promise<{ server: Server; url: string; calls: () => number }> {
    let calls = 0;
    const server = createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        const a = answers[Math.min(calls++, answers.length - 1)]!;
        const pair = JSON.parse(text) as { n: string; m: string };
        res
          .writeHead(a.status, { 'content-type': 'application/json', ...a.headers })
          .end(a.body ?? JSON.stringify({ valid: true, ...pair }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls: () => calls };
  }

  test("statuses are @bulwark/http's RETRYABLE_STATUSES: 425 is retried, 501 is not (issue 13)", async () => {
    for (const [status, attempts] of [
      [425, 2],
      [501, 1],
      [503, 2],
      [404, 1],
    ] as const) {
      const v = await script([{ status, body: '{}' }]);
      const client = new ValidatorClient({
        ...CONFIG,
        url: v.url,
        retry: { maxAttempts: 2, initialDelayMs: 1 },
      });
      try {
        assert.equal(await client.check({ n: '12', m: '18' }), 'local-fallback', String(status));
        assert.equal(v.calls(), attempts, `${status}: ${attempts} attempt(s)`);
      } finally {
        await client.close();
        v.server.close();
      }
    }
  });

  test('a 413 from the validator says what to fix: its MAX_DIGITS is lower (red-team RT-2 F9)', async () => {
    const v = await script([{ status: 413, body: '{}' }]);
    const client = new ValidatorClient({ ...CONFIG, url: v.url });
    const fallback = new Promise<string>((resolve) => client.onFallback((e) => resolve(e.message)));
    try {
      assert.equal(await client.check({ n: '12', m: '18' }), 'local-fallback');
      assert.match(await fallback, /answered 413: it refuses requests this large .*MAX_DIGITS/);
    } finally {
      await client.close();
      v.server.close();
    }
  });

  test('a Retry-After in the HTTP-date form is honoured (issue 13)', async () => {
    const clock = new FakeClock();
    // whole seconds: the HTTP-date form has no fraction, so the wait is 29–30 s
    const at = new Date(Date.now() + 30_000).toUTCString();
    const v = await script([{ status: 503, headers: { 'retry-after': at }, body: '{}' }, { status: 200 }]);
    const client = new ValidatorClient(
      { ...CONFIG, timeoutMs: 120_000, url: v.url, retry: { maxAttempts: 2 } },
      { clock },
    );
    const retryPolicy = client.policies['validator-retry'] as RetryPolicy;
    const waited = new Promise<number>((resolve) => retryPolicy.onRetry((e) => resolve(e.delayMs)));
    try {
      const checked = client.check({ n: '12', m: '18' });
      const delayMs = await waited;
      assert.ok(delayMs >= 28_000 && delayMs <= 30_000, `waits until the date (${delayMs} ms), not 25 ms`);
      await clock.advanceAsync(delayMs);
      assert.equal(await checked, 'remote');
      assert.equal(v.calls(), 2);
    } finally {
      await client.close();
      v.server.close();
    }
  });

  test('a 200 that says {"valid": false} is a rejection, not an acceptance', async () => {
    const v = await stub(200, JSON.stringify({ valid: false, code: 'NOPE', message: 'not today' }));
    const s = await start({ validator: { ...CONFIG, url: v.url } });
    try {
      const res = await ask(`${s.url}/api/gcd?n=12&m=18`);
      assert.equal(res.status, 400);
      assert.equal(res.json().code, 'GCD_ERR_REJECTED_BY_VALIDATOR');
      assert.match(String(res.json().message), /not today/);
    } finally {
      await s.close();
      v.server.close();
    }
  });

  test("a validator's rejection is passed on clipped and without control characters", async () => {
    const long = `bad\u0000\u001b[31m${'x'.repeat(9000)}`;
    const v = await stub(400, JSON.stringify({ code: 'TOO\u0000LONG', message: long }));
    const s = await start({ validator: { ...CONFIG, url: v.url } });
    try {
      const res = await ask(`${s.url}/api/gcd?n=12&m=18`);
      assert.equal(res.status, 400);
      const message = String(res.json().message);
      assert.ok(message.length < 500, `clipped (${message.length} characters)`);
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(message, /[\u0000-\u001f]/, 'no control characters');
      assert.match(message, /^The validator rejected the numbers \(TOO LONG\): bad \[31mx+…$/);
    } finally {
      await s.close();
      v.server.close();
    }
  });

  test('a 200 without a verdict about these numbers is no answer: local validation, said so', async () => {
    for (const body of ['ok', '{}', JSON.stringify({ valid: true, n: '1', m: '1' })]) {
      const v = await stub(200, body);
      const s = await start({ validator: { ...CONFIG, url: v.url } });
      try {
        const res = await ask(`${s.url}/api/gcd?n=12&m=18`);
        assert.equal(res.status, 200, body);
        assert.equal(res.headers['x-gcd-validation'], 'local-fallback', body);
      } finally {
        await s.close();
        v.server.close();
      }
    }
  });

  test('the breaker stays open VALIDATOR_OPEN_MS each time, however many probes fail (finding 10)', async () => {
    const v = await stub(500, '{}');
    const clock = new FakeClock();
    const client = new ValidatorClient(
      {
        ...CONFIG,
        url: v.url,
        circuitBreaker: { openDurationMs: 5000, strategy: { type: 'consecutive', threshold: 1 } },
      },
      { clock },
    );
    const opened: CircuitStateChangeEvent[] = [];
    client.breaker.onStateChange((e) => {
      if (e.to === 'open') opened.push(e);
    });
    try {
      assert.equal(await client.check({ n: '12', m: '18' }), 'local-fallback');
      for (let round = 0; round < 4; round++) {
        await clock.advanceAsync(5000); // the open period passes: the next call is a probe, and fails
        assert.equal(await client.check({ n: '12', m: '18' }), 'local-fallback');
      }
      assert.equal(opened.length, 5);
      assert.deepEqual(
        opened.map((e) => e.openDurationMs),
        [5000, 5000, 5000, 5000, 5000],
        'not doubled per failed probe',
      );
    } finally {
      await client.close();
      v.server.close();
    }
  });
});
