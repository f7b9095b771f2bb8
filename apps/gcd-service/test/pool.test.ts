/**
 * The worker pool: large inputs leave the event loop, a runaway computation is really stopped (its
 * thread is terminated and replaced) and the server stays responsive; a full pool refuses with 503.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { Worker } from 'node:worker_threads';
import { gcd } from '../src/gcd.js';
import type { GcdComputer } from '../src/compute.js';
import { ask, fibonacciPair, q, start } from './helpers.js';
import { loadConfig } from '../src/config.js';

// Euclid's worst case, ~30 000 digits: seconds of CPU. Built once, before any server runs: building it
// blocks this process's event loop, which a server's load shedder would rightly see as pressure.
const [RUNAWAY_N, RUNAWAY_M] = fibonacciPair(30_000);
const RUNAWAY = q({ n: RUNAWAY_N.toString(), m: RUNAWAY_M.toString() });

/** One pool computation that succeeds: the worker thread is up (its start counts against the deadline). */
async function warmUp(url: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const res = await ask(`${url}/api/gcd?${q({ n: '7'.repeat(500), m: '21' })}`);
    if (res.status === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail('the pool never answered');
}

/** Checks `check` every 10 ms until it holds (at most 3 000 times: a guard, not a time bound). */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; !check(); i++) {
    if (i === 3000) assert.fail(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The outcome of the next computation that finishes. */
function nextOutcome(computer: GcdComputer): Promise<string> {
  return new Promise((resolve) => {
    const sub = computer.onCompute((e) => {
      sub.dispose();
      resolve(e.outcome);
    });
  });
}

test('inputs over INLINE_MAX_DIGITS are computed in the pool, exactly', async () => {
  const s = await start({ inlineMaxDigits: 100 });
  try {
    const [a, b] = fibonacciPair(990);
    const res = await ask(`${s.url}/api/gcd?${q({ n: (a * 7919n).toString(), m: (b * 7919n).toString() })}`);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-gcd-compute'], 'pool');
    assert.equal(res.json().gcd, '7919');

    const small = await ask(`${s.url}/api/gcd?${q({ n: '9'.repeat(100), m: '3'.repeat(100) })}`);
    assert.equal(small.headers['x-gcd-compute'], undefined, '100 digits stay inline (no header)');
    const big = await ask(`${s.url}/api/gcd?${q({ n: '9'.repeat(101), m: '3' })}`);
    assert.equal(big.headers['x-gcd-compute'], 'pool', '101 digits go to the pool');
    assert.equal(big.json().gcd, '3');
  } finally {
    await s.close();
  }
});

test('a runaway computation is stopped: its worker thread is terminated and replaced, the server stays responsive', async () => {
  // Long enough for a fresh worker thread to start on a busy machine (its start counts against the
  // deadline: at 150 ms the replacement's first task timed out under load), far below the runaway's
  // tens of seconds of CPU.
  const timeoutMs = 2000;
  const s = await start({
    maxDigits: 40_000,
    maxHeaderBytes: 100_000,
    bodyLimitBytes: 100_000,
    computeTimeoutMs: timeoutMs,
    poolMaxThreads: 1,
  });
  const computer = s.server.computer!;
  try {
    await warmUp(s.url);
    assert.equal(computer.threads, 1);
    const victim: Worker = computer.pool.threads[0]!;
    const victimId = victim.threadId;
    const exited = once(victim, 'exit');

    const runaway = ask(`${s.url}/api/gcd?${RUNAWAY}`);
    await until(() => computer.inFlight === 1, 'the runaway task to be submitted');

    // While the worker spins, the event loop still answers cheap requests (the runaway is still running).
    for (let i = 0; i < 5; i++) {
      const res = await ask(`${s.url}/api/gcd?n=${12 + i}&m=18`);
      assert.equal(res.status, 200, res.text);
      assert.equal(computer.inFlight, 1, 'answered while the pool was busy');
    }

    const res = await runaway;
    assert.equal(res.status, 503, res.text);
    assert.equal(res.headers['retry-after'], '1');
    const body = res.json<{ code: string; message: string }>();
    assert.equal(body.code, 'GCD_ERR_COMPUTE_TIMEOUT');
    assert.match(body.message, new RegExp(`time limit of ${timeoutMs} ms and was stopped`));

    // The thread that ran it is gone (terminated, not abandoned)…
    const [exitCode] = (await exited) as [number];
    assert.equal(typeof exitCode, 'number');
    // …and the pool is back to its size, with a fresh thread.
    await until(() => computer.threads === 1, 'the pool to start a replacement thread');
    assert.notEqual(computer.pool.threads[0]!.threadId, victimId);
    assert.equal(computer.inFlight, 0);

    // The pool works after the kill.
    const after = await ask(`${s.url}/api/gcd?${q({ n: '9'.repeat(800), m: '3'.repeat(400) })}`);
    assert.equal(after.status, 200);
    assert.equal(after.headers['x-gcd-compute'], 'pool');
    assert.equal(after.json().gcd, gcd(BigInt('9'.repeat(800)), BigInt('3'.repeat(400))).toString());
  } finally {
    await s.close();
  }
});

test('HANDLER_TIMEOUT_MS stops a waiting request whose compute deadline is longer (503, worker terminated)', async () => {
  const handlerTimeoutMs = 200;
  const s = await start({
    maxDigits: 40_000,
    maxHeaderBytes: 100_000,
    bodyLimitBytes: 100_000,
    computeTimeoutMs: 60_000,
    handlerTimeoutMs,
    poolMaxThreads: 1,
  });
  const computer = s.server.computer!;
  try {
    await warmUp(s.url);
    const victim: Worker = computer.pool.threads[0]!;
    const exited = once(victim, 'exit');
    const res = await ask(`${s.url}/api/gcd?${RUNAWAY}`);
    assert.equal(res.status, 503, res.text);
    assert.equal(res.headers['retry-after'], '1');
    const body = res.json<{ code: string; message: string }>();
    assert.equal(body.code, 'GCD_ERR_COMPUTE_TIMEOUT');
    assert.match(body.message, new RegExp(`did not complete within ${handlerTimeoutMs} ms`));
    await exited; // long before its 60 s compute deadline
    await until(() => computer.inFlight === 0, 'the computation to settle');
    // Inline requests are not timed at all (no timer, no signal) and still answer.
    const small = await ask(`${s.url}/api/gcd?n=12&m=18`);
    assert.equal(small.status, 200);
  } finally {
    await s.close();
  }
});

test('a full pool refuses at once with 503 GCD_ERR_BUSY and Retry-After', async () => {
  const s = await start({
    maxDigits: 40_000,
    maxHeaderBytes: 100_000,
    computeTimeoutMs: 600_000, // the two runaways stay in the pool until their clients give up
    poolMaxThreads: 1,
    poolMaxQueue: 1,
  });
  const computer = s.server.computer!;
  const sockets: Socket[] = [];
  try {
    await warmUp(s.url);
    /** A runaway request on its own connection; the test hangs up (TCP reset) at the end. */
    const runaway = () => {
      const socket = connect(Number(new URL(s.url).port), '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(`GET /api/gcd?${RUNAWAY} HTTP/1.1\r\nHost: x\r\n\r\n`);
      sockets.push(socket);
    };
    runaway(); // runs
    await until(() => computer.inFlight === 1, 'the first task');
    runaway(); // waits in the queue
    await until(() => computer.inFlight === 2, 'the second task');
    const third = await ask(`${s.url}/api/gcd?${q({ n: '9'.repeat(200), m: '3' })}`);
    assert.equal(third.status, 503, third.text);
    assert.equal(third.headers['retry-after'], '1');
    assert.equal(third.json().code, 'GCD_ERR_BUSY');
    assert.equal(computer.inFlight, 2, 'refused while the two before it still run and wait: not queued');
    // Too large for inline work while the pool is full: refused before it is parsed — even though it is
    // invalid (an 'x' at the end), which parsing would have found.
    const [a, b] = fibonacciPair(1000);
    const fourth = await ask(`${s.url}/api/gcd?${q({ n: `${a}x`, m: b.toString() })}`);
    assert.equal(fourth.status, 503, fourth.text);
    assert.equal(fourth.json().code, 'GCD_ERR_BUSY');
    assert.equal(fourth.headers['retry-after'], '1');
    const scrape = (await ask(`${s.url}/metrics`)).text;
    assert.match(scrape, /gcd_computations_total\{path="pool",outcome="busy"\} 2\n/, 'both refusals counted');
    // The two clients hang up: both computations are stopped.
    const outcome = nextOutcome(computer);
    for (const socket of sockets) socket.resetAndDestroy();
    assert.equal(await outcome, 'aborted');
    await until(() => computer.inFlight === 0, 'both computations to stop');
  } finally {
    for (const socket of sockets) socket.destroy();
    await s.close();
  }
});

test('a client that hangs up stops its computation (the thread is terminated before the deadline)', async () => {
  const s = await start({
    maxDigits: 40_000,
    maxHeaderBytes: 100_000,
    computeTimeoutMs: 60_000,
    poolMaxThreads: 1,
  });
  const computer = s.server.computer!;
  try {
    await warmUp(s.url);
    const victim = computer.pool.threads[0]!;
    const exited = once(victim, 'exit');
    const { port } = new URL(s.url);
    const socket = connect(Number(port), '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`GET /api/gcd?${RUNAWAY} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await until(() => computer.inFlight === 1, 'the task to start');
    const outcome = nextOutcome(computer);
    socket.destroy();
    await exited;
    assert.equal(await outcome, 'aborted', 'stopped by the hang-up, not by its 60 s deadline');
    await until(() => computer.inFlight === 0, 'the slot to be released');
    const res = await ask(`${s.url}/api/gcd?${q({ n: '9'.repeat(300), m: '3' })}`);
    assert.equal(res.status, 200);
  } finally {
    await s.close();
  }
});

test('close() stops the pool threads', async () => {
  const s = await start();
  const computer = s.server.computer!;
  await warmUp(s.url);
  const worker = computer.pool.threads[0]!;
  const exited = once(worker, 'exit');
  await s.close();
  await exited;
  assert.equal(computer.threads, 0);
});

test('the default queue holds 64 computations per thread: a burst of 5 on one thread is served, not refused (finding 10)', async () => {
  assert.equal(loadConfig({ POOL_MAX_THREADS: '1' }).poolMaxQueue, 64);
  assert.equal(loadConfig({ POOL_MAX_THREADS: '3' }).poolMaxQueue, 192);
  const s = await start({
    ...loadConfig({
      POOL_MAX_THREADS: '1',
      MAX_DIGITS: '20000',
      COMPUTE_TIMEOUT_MS: '600000',
      HANDLER_TIMEOUT_MS: '600000',
      // the expected-wait bound is out of the way too: on a busy machine the first computation may end
      // (seconds) before the fifth arrives, and four of those ahead is rightly more than 500 ms
      POOL_MAX_WAIT_MS: '0',
    }),
    port: 0,
    logLevel: 'silent',
    shedding: false,
    rateLimit: undefined,
  });
  try {
    await warmUp(s.url);
    // Each takes a while on the one thread: all five are in the pool (1 running, 4 waiting) at once. (The
    // compute and handler deadlines are out of the way: this is about the queue, on however busy a
    // machine, where the fifth waits for four computations of seconds each.)
    const [a, b] = fibonacciPair(8000);
    const burst = await Promise.all(
      Array.from({ length: 5 }, () => ask(`${s.url}/api/gcd?${q({ n: a.toString(), m: b.toString() })}`)),
    );
    assert.deepEqual(
      burst.map((r) => r.status),
      [200, 200, 200, 200, 200],
      burst.map((r) => r.text.slice(0, 80)).join('\n'),
    );
  } finally {
    await s.close();
  }
});
