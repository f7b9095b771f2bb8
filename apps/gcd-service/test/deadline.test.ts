/**
 * Deadlines across the chapter's two services, over real sockets: a caller's `bulwark-timeout-ms`
 * reaches the gcd service (the kit makes it the request's ambient deadline), its validator call is
 * bounded by it (less the reserve for answering locally) and forwards what is left to the validator in
 * the same header. A validator that holds the request (until the test releases it: an event, not a
 * sleep) costs the caller its budget, not more: the answer is the documented degraded one
 * (`x-gcd-validation: local-fallback`), and the breaker does not count it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { DEADLINE_HEADER } from '@bulwark/core';
import { ask, q, testConfig, type Running } from './helpers.js';
import { createGcdServer } from '../src/server.js';
import { VALIDATOR_RESERVE_MS } from '../src/validator-client.js';

/** What the validator saw of one request. */
interface Seen {
  readonly header: string | undefined;
  /** Whether the kit gave the request a deadline (`request.bulwarkDeadline`). */
  readonly deadline: boolean;
}

describe('deadlines: caller → gcd service → validator', () => {
  let v: Running;
  let s: Running;
  const seen: Seen[] = [];
  const events = new EventEmitter();
  /** While set, the validator holds each request until `release` is emitted. */
  let holding = false;

  before(async () => {
    const validator = await createGcdServer(testConfig({ mode: 'validator', maxDigits: 10 }));
    validator.app.addHook('preHandler', async (request) => {
      seen.push({
        header: request.headers[DEADLINE_HEADER] as string | undefined,
        deadline: request.bulwarkDeadline > 0,
      });
      if (holding) {
        const released = once(events, 'release');
        events.emit('held');
        await released;
      }
    });
    const vUrl = await validator.listen();
    v = { server: validator, url: vUrl, close: () => validator.close() };
    const gcd = await createGcdServer(
      testConfig({
        validator: {
          url: v.url,
          attemptTimeoutMs: 5_000,
          retry: { maxAttempts: 1 },
          timeoutMs: 10_000,
          circuitBreaker: { openDurationMs: 5_000, strategy: { type: 'consecutive', threshold: 1 } },
        },
      }),
    );
    s = { server: gcd, url: await gcd.listen(), close: () => gcd.close() };
  });
  after(async () => {
    events.emit('release');
    await s.close();
    await v.close();
  });

  test('a fast validator: remote, and it received the budget left (≤ the caller’s, less reserve and allowance)', async () => {
    seen.length = 0;
    const res = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`, {
      headers: { [DEADLINE_HEADER]: '2000' },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-gcd-validation'], 'remote');
    assert.equal(seen.length, 1);
    assert.match(seen[0]!.header ?? '', /^\d+$/);
    assert.ok(Number(seen[0]!.header) <= 2000 - VALIDATOR_RESERVE_MS - 5, seen[0]!.header);
    assert.equal(seen[0]!.deadline, true, 'the validator runs under the deadline it received');
  });

  test('a held validator and a 50 ms budget: local-fallback within the budget; the breaker does not count it', async () => {
    seen.length = 0;
    holding = true;
    const client = s.server.validator!;
    const fallbacks = client.fallbacks;
    const held = once(events, 'held');
    const answer = ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`, {
      headers: { [DEADLINE_HEADER]: '50' },
    });
    // the validator holds the request; the caller's budget ends the wait (no hang if it never arrived)
    await Promise.race([held, answer]);
    const res = await answer;
    holding = false;
    events.emit('release');
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-gcd-validation'], 'local-fallback');
    assert.deepEqual(res.json(), { n: '12', m: '18', gcd: '6' });
    assert.equal(seen.length, 1, 'the validator received the request (and held it)');
    assert.match(seen[0]!.header ?? '', /^\d+$/);
    assert.ok(Number(seen[0]!.header) <= 50 - VALIDATOR_RESERVE_MS - 5, seen[0]!.header);
    assert.equal(client.fallbacks, fallbacks + 1);
    assert.equal(client.lastFailure?.reason, 'DeadlineExceededError');
    // failureThreshold is 1: one counted failure would have opened it
    assert.equal(client.breaker.state, 'closed', "the caller's budget is not the validator's failure");
  });

  test('a spent budget (0): 504 from the kit at once; the validator is not called', async () => {
    seen.length = 0;
    const res = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`, {
      headers: { [DEADLINE_HEADER]: '0' },
    });
    assert.equal(res.status, 504);
    assert.equal(res.json().code, 'BULWARK_ERR_DEADLINE_EXCEEDED');
    assert.equal(seen.length, 0);
  });

  test('a malformed budget: 400 saying what is allowed; the validator is not called', async () => {
    seen.length = 0;
    const res = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`, {
      headers: { [DEADLINE_HEADER]: '50ms' },
    });
    assert.equal(res.status, 400);
    const body = res.json<{ code: string; message: string }>();
    assert.equal(body.code, 'BULWARK_ERR_INVALID_DEADLINE_HEADER');
    assert.match(body.message, /whole number of milliseconds/);
    assert.equal(seen.length, 0);
  });

  test('without the header the validator still gets its own bound (VALIDATOR_TIMEOUT_MS less the allowance)', async () => {
    seen.length = 0;
    const res = await ask(`${s.url}/api/gcd?${q({ n: '12', m: '18' })}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-gcd-validation'], 'remote');
    assert.ok(Number(seen[0]!.header) <= 5_000 - 5, seen[0]!.header);
  });
});
