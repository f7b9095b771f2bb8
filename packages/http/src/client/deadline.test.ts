// The client sends each attempt's budget as `bulwark-timeout-ms` and never waits past the deadline
// (docs/http.md, "Deadlines across services"). A real server on loopback records what it received.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once, EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AllSourcesFailedError,
  DEADLINE_HEADER,
  DeadlineExceededError,
  InvalidOptionError,
  runWithDeadline,
} from '@bulwark/core';
import { FakeClock } from '@bulwark/core/testing';
import { createHttpClient, type HttpClient } from './client.js';
import type { HttpClientOptions } from './options.js';

let server: Server;
let url = '';
/** The `bulwark-timeout-ms` of every request received (undefined: not sent). */
let received: Array<string | undefined> = [];
/** When set, requests are held (never answered) and announced here. */
let hold = false;
const held = new EventEmitter();
const pending: ServerResponse[] = [];
const clients: HttpClient[] = [];

function client(options: HttpClientOptions = {}): HttpClient {
  const c = createHttpClient({ cache: false, retry: { maxAttempts: 1 }, ...options });
  clients.push(c);
  return c;
}

before(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    received.push(req.headers[DEADLINE_HEADER] as string | undefined);
    held.emit('received');
    if (req.url === '/swr') {
      res.setHeader('cache-control', 'max-age=1, stale-while-revalidate=600');
      res.end('swr');
      return;
    }
    if (hold) {
      pending.push(res);
      held.emit('request', req);
      return;
    }
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/doc`;
});

beforeEach(() => {
  received = [];
  hold = false;
});

after(async () => {
  for (const res of pending) res.destroy();
  await Promise.all(clients.map((c) => c.close()));
  server.closeAllConnections();
  server.close();
});

describe('the bulwark-timeout-ms header', () => {
  it('carries the call’s own budget: the total minus the 5 ms allowance (a clock that does not move)', async () => {
    const clock = new FakeClock();
    await client({ clock, totalTimeoutMs: 3_000 }).get(url);
    assert.deepEqual(received, ['2995']);
  });

  it('the attempt’s own limit applies when it is shorter', async () => {
    const clock = new FakeClock();
    await client({ clock, totalTimeoutMs: 3_000, attemptTimeoutMs: 1_000 }).get(url);
    assert.deepEqual(received, ['995']);
  });

  it('the ambient deadline (runWithDeadline) applies when it is shorter', async () => {
    const clock = new FakeClock();
    const c = client({ clock, totalTimeoutMs: 3_000 });
    await runWithDeadline({ deadline: clock.now() + 500, clock }, () => c.get(url));
    assert.deepEqual(received, ['495']);
  });

  it('on the system clock, the value is at most what was left', async () => {
    await runWithDeadline({ timeoutMs: 400 }, () => client().get(url));
    assert.equal(received.length, 1);
    assert.match(received[0]!, /^\d+$/);
    assert.ok(Number(received[0]) <= 395, received[0]);
  });

  it('allowanceMs is configurable; deadlineHeader: false sends none', async () => {
    const clock = new FakeClock();
    await client({ clock, totalTimeoutMs: 3_000, deadlineHeader: { allowanceMs: 50 } }).get(url);
    await client({ clock, totalTimeoutMs: 3_000, deadlineHeader: false }).get(url);
    assert.deepEqual(received, ['2950', undefined]);
  });

  it('no budget beyond the allowance: the request is not sent, and the call rejects with DeadlineExceededError', async () => {
    const clock = new FakeClock();
    const c = client({ clock, totalTimeoutMs: 3_000 });
    // with a mirror and a cache too: no later tier answers a caller whose budget is spent (a service
    // answers this 504, not 500 for an AllSourcesFailedError)
    const mirror = url.replace('/doc', '/mirror');
    for (const budgetMs of [0, 1, 4, 5]) {
      await assert.rejects(
        runWithDeadline({ deadline: clock.now() + budgetMs, clock }, () =>
          c.get(url, { fallbackUrls: [mirror] }),
        ),
        (e: unknown) => DeadlineExceededError.is(e) && !(e instanceof AllSourcesFailedError),
        `budget ${budgetMs} ms`,
      );
    }
    assert.deepEqual(received, []);
  });

  it('an attempt timeout shorter than the allowance is still sent, with the smallest budget (red-team RT-2 F1)', async () => {
    // a clock that does not move: the 3 ms never run out, so the answer is awaited whatever the machine
    const c = client({ clock: new FakeClock(), attemptTimeoutMs: 3, totalTimeoutMs: 10_000 });
    const res = await c.get(url);
    assert.equal(res.status, 200);
    assert.deepEqual(received, ['1']);
  });

  it('allowanceMs above 60 s is refused (it would make every attempt look spent)', () => {
    assert.throws(
      () => client({ deadlineHeader: { allowanceMs: 1e12 } }),
      (e: unknown) => e instanceof InvalidOptionError && /allowanceMs/.test(e.message),
    );
  });

  it('single-flight: a caller without a deadline never fails with a joined caller’s deadline', async () => {
    hold = true;
    // an injected clock: the short caller's deadline passes when the test says, after the other joined
    const clock = new FakeClock();
    const c = client({ clock, totalTimeoutMs: 10_000 });
    const first = once(held, 'request');
    const short = runWithDeadline({ deadline: clock.now() + 50, clock }, () => c.get(url)).then(
      () => 'answered',
      (e: unknown) => e,
    );
    await first;
    const patient = c.get(url); // joins the flight in progress
    const second = once(held, 'request');
    clock.advance(50);
    assert.ok(DeadlineExceededError.is(await short), String(await short));
    await second; // the patient caller went on with a request of its own
    assert.equal(received.length, 2);
    // its own total (what is left of 10 s, less the allowance), not what the short caller had left
    assert.deepEqual(received, ['45', '9945']); // 50 ms of its total had passed
    pending.at(-1)!.end('ok');
    assert.equal((await patient).body.toString(), 'ok');
  });

  it('a held server: the call ends with DeadlineExceededError at the ambient deadline', async () => {
    hold = true;
    const c = client({ totalTimeoutMs: 10_000 });
    const arrived = once(held, 'request');
    // its outcome is taken at once: on a loaded machine the deadline may pass before the request arrives
    const outcome = runWithDeadline({ timeoutMs: 60 }, () => c.get(url)).then(
      () => 'answered',
      (e: unknown) => e,
    );
    await Promise.race([arrived, outcome]);
    assert.ok((await outcome) instanceof DeadlineExceededError, String(await outcome));
    assert.ok(received.length <= 1);
    if (received.length === 1) assert.ok(Number(received[0]) <= 55, received[0]);
  });

  it('a background refresh (stale-while-revalidate) does not inherit the request’s deadline', async () => {
    const clock = new FakeClock();
    let wall = Date.parse('2026-01-01T00:00:00Z');
    const c = createHttpClient({ clock, now: () => wall, totalTimeoutMs: 3_000, retry: { maxAttempts: 1 } });
    clients.push(c);
    const swr = url.replace('/doc', '/swr');
    await c.get(swr); // stored, fresh for 1 s
    wall += 2_000; // stale, within stale-while-revalidate
    const refreshed = once(held, 'received');
    const res = await runWithDeadline({ deadline: clock.now() + 500, clock }, () => c.get(swr));
    assert.equal(res.tier, 'fresh-cache');
    await refreshed;
    assert.deepEqual(received, ['2995', '2995'], 'the refresh has its own budget, not the 500 ms left');
  });

  it('bad options are refused naming the option', () => {
    for (const deadlineHeader of ['yes', 1, null, { allowanceMs: -1 }, { allowance: 5 }]) {
      assert.throws(
        () => createHttpClient({ deadlineHeader: deadlineHeader as never }),
        (e: unknown) => e instanceof InvalidOptionError && /httpClient\.deadlineHeader/.test(e.message),
        JSON.stringify(deadlineHeader),
      );
    }
  });
});
