// The kit reads `bulwark-timeout-ms` and runs handlers under that deadline (docs/service.md, "Deadlines").
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { request } from 'undici';
import { currentDeadline, currentSignal, DEADLINE_HEADER, InvalidOptionError, timeout } from '@bulwark/core';
import { createService } from './service.js';
import { listen } from './test-support.js';

async function get(
  url: string,
  headers: Record<string, string | string[]> = {},
  method: 'GET' | 'POST' = 'GET',
  body?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(url, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.body.text();
  return { status: res.statusCode, body: JSON.parse(text) as Record<string, unknown> };
}

/** What a handler sees: the budget left (ms; null for none) and whether a signal is there. */
function seen(): { remainingMs: number | null; signal: boolean } {
  const d = currentDeadline();
  return {
    remainingMs: d === Infinity ? null : d - performance.now(),
    signal: currentSignal() !== undefined,
  };
}

describe('deadlines: the bulwark-timeout-ms header', () => {
  const app = createService({ logLevel: 'silent', shedding: false, deadlines: { maxMs: 1_000 } });
  let base = '';
  let ran = 0;
  const entered = new EventTarget();
  let lastAbort: unknown;
  app.get('/seen', async () => {
    ran++;
    return seen();
  });
  app.post('/seen', async () => {
    ran++;
    return seen();
  });
  // a dependency that never answers, called through a Bulwark policy: the request's deadline ends it
  const perCall = timeout({ timeoutMs: 60_000 });
  app.get('/hang', async () => perCall.execute(() => new Promise<never>(() => {})));
  // waits until the request's ambient signal aborts (the client goes away)
  app.get('/wait-for-abort', async () => {
    const signal = currentSignal()!;
    entered.dispatchEvent(new Event('entered'));
    await once(signal, 'abort');
    lastAbort = signal.reason;
    entered.dispatchEvent(new Event('aborted'));
    return {};
  });
  app.get('/quiet', { config: { bulwark: { deadline: false } } }, async () => seen());
  before(async () => {
    base = await listen(app);
  });
  after(() => app.close());

  it('the handler runs under the caller budget: currentDeadline() and a signal', async () => {
    const res = await get(`${base}/seen`, { [DEADLINE_HEADER]: '800' });
    assert.equal(res.status, 200);
    const remaining = res.body.remainingMs as number;
    assert.ok(remaining > 0 && remaining <= 800, `remaining ${remaining}`);
    assert.equal(res.body.signal, true);
  });

  it('a budget above deadlines.maxMs is cut to it', async () => {
    const res = await get(`${base}/seen`, { [DEADLINE_HEADER]: '9999999' });
    assert.equal(res.status, 200);
    const remaining = res.body.remainingMs as number;
    assert.ok(remaining > 0 && remaining <= 1_000, `remaining ${remaining}`);
  });

  it('without the header (and no handlerTimeoutMs) there is no ambient deadline', async () => {
    const res = await get(`${base}/seen`);
    assert.deepEqual(res.body, { remainingMs: null, signal: false });
  });

  it('a malformed value: 400 saying what is allowed, the handler does not run', async () => {
    const before = ran;
    for (const value of ['100m', '-5', '1.5', '7 7', '12345678901', '']) {
      const res = await get(`${base}/seen`, { [DEADLINE_HEADER]: value });
      assert.equal(res.status, 400, JSON.stringify(value));
      assert.equal(res.body.code, 'BULWARK_ERR_INVALID_DEADLINE_HEADER');
      assert.match(res.body.message as string, /whole number of milliseconds/);
      assert.match(res.body.message as string, /1 to 10 digits 0-9/);
    }
    const twice = await get(`${base}/seen`, { [DEADLINE_HEADER]: ['100', '200'] });
    assert.equal(twice.status, 400);
    assert.match(twice.body.message as string, /more than once with different values/);
    const same = await get(`${base}/seen`, { [DEADLINE_HEADER]: ['300', '300'] });
    assert.equal(same.status, 200);
    assert.ok((same.body.remainingMs as number) <= 300);
    assert.equal(ran, before + 1, 'only the accepted request ran');
  });

  it('a budget of 0: 504 at once, the handler does not run (a POST body is not waited for)', async () => {
    const before = ran;
    const res = await get(`${base}/seen`, { [DEADLINE_HEADER]: '0' });
    assert.equal(res.status, 504);
    assert.equal(res.body.code, 'BULWARK_ERR_DEADLINE_EXCEEDED');
    const post = await get(
      `${base}/seen`,
      { [DEADLINE_HEADER]: '0', 'content-type': 'application/json' },
      'POST',
      '{}',
    );
    assert.equal(post.status, 504);
    assert.equal(ran, before);
  });

  it('a call through a Bulwark policy ends at the deadline: 504 BULWARK_ERR_DEADLINE_EXCEEDED', async () => {
    const res = await get(`${base}/hang`, { [DEADLINE_HEADER]: '30' });
    assert.equal(res.status, 504);
    assert.equal(res.body.code, 'BULWARK_ERR_DEADLINE_EXCEEDED');
  });

  it('the ambient signal aborts when the client goes away', async () => {
    const port = new URL(base).port;
    const socket = connect(Number(port), '127.0.0.1');
    const enteredP = once(entered, 'entered');
    socket.write(`GET /wait-for-abort HTTP/1.1\r\nhost: x\r\n${DEADLINE_HEADER}: 900\r\n\r\n`);
    await enteredP;
    const abortedP = once(entered, 'aborted');
    socket.destroy();
    await abortedP;
    assert.equal((lastAbort as { code?: string }).code, 'BULWARK_ERR_CLIENT_CLOSED');
  });

  it('routes with deadline: false and the kit routes ignore the header', async () => {
    const quiet = await get(`${base}/quiet`, { [DEADLINE_HEADER]: 'bad' });
    assert.equal(quiet.status, 200);
    assert.deepEqual(quiet.body, { remainingMs: null, signal: false });
    const live = await get(`${base}/livez`, { [DEADLINE_HEADER]: 'bad' });
    assert.equal(live.status, 200);
  });
});

describe('deadlines: options', () => {
  it('deadlines: false ignores the header', async () => {
    const app = createService({ logLevel: 'silent', shedding: false, deadlines: false });
    app.get('/seen', async () => seen());
    const base = await listen(app);
    try {
      const res = await get(`${base}/seen`, { [DEADLINE_HEADER]: 'bad' });
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { remainingMs: null, signal: false });
    } finally {
      await app.close();
    }
  });

  it('with handlerTimeoutMs, it is the cap and the bound of a request without the header', async () => {
    const app = createService({ logLevel: 'silent', shedding: false, handlerTimeoutMs: 700 });
    assert.deepEqual(app.bulwark.options.deadlines, { maxMs: 700, defaultMs: 700 });
    app.get('/seen', async () => seen());
    const base = await listen(app);
    try {
      for (const headers of [{}, { [DEADLINE_HEADER]: '5000' }] as Record<string, string>[]) {
        const res = await get(`${base}/seen`, headers);
        const remaining = res.body.remainingMs as number;
        assert.ok(remaining > 0 && remaining <= 700, `remaining ${remaining}`);
      }
    } finally {
      await app.close();
    }
  });

  it('the default cap is core’s 60 s; bad values are refused naming the option', () => {
    assert.deepEqual(createService({ logLevel: 'silent' }).bulwark.options.deadlines, {
      maxMs: 60_000,
      defaultMs: 0,
    });
    for (const deadlines of [{ maxMs: 0 }, { maxMs: -1 }, { maxMs: 1.5 }, { maxMs: 'x' }, { max: 1 }, true]) {
      assert.throws(
        () => createService({ logLevel: 'silent', deadlines: deadlines as never }),
        (e: unknown) => e instanceof InvalidOptionError && /service\.deadlines/.test(e.message),
        JSON.stringify(deadlines),
      );
    }
  });
});
