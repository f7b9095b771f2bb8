/**
 * A client that hangs up, or whose budget runs out, while its request waits is not an error (red-team F3, F6):
 * no error-level log line, nothing in `http_server_errors_total`, one aborted request — over real sockets.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { createGcdServer } from '../src/server.js';
import { ask, fibonacciPair, HeldValidator, q, start, testConfig, type Running } from './helpers.js';

const HANGUPS = 5;
// Euclid's worst case at 30 000 digits: seconds of CPU, far beyond a 50 ms budget. Built before any
// server runs (building it blocks this process's event loop).
const [RUNAWAY_N, RUNAWAY_M] = fibonacciPair(30_000);
const lines: Array<{ level: number; msg: string }> = [];
const logged = new EventEmitter();
const logStream = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const text of chunk.toString().split('\n')) {
      if (text === '') continue;
      const line = JSON.parse(text) as { level: number; msg: string };
      lines.push(line);
      logged.emit('line', line);
    }
    done();
  },
});
let validator: HeldValidator;
let s: Running;

before(async () => {
  validator = new HeldValidator();
  const vUrl = await validator.listen();
  const gcd = await createGcdServer(
    testConfig({
      logLevel: 'debug',
      validator: {
        url: vUrl,
        attemptTimeoutMs: 60_000,
        retry: { maxAttempts: 1 },
        timeoutMs: 60_000,
        circuitBreaker: { openDurationMs: 5_000, strategy: { type: 'consecutive', threshold: 100 } },
      },
    }),
    { logStream },
  );
  s = { server: gcd, url: await gcd.listen(), close: () => gcd.close() };
});

after(async () => {
  await s.close();
  await validator.close();
});

it(`${HANGUPS} clients hanging up while the validator holds their requests: no error logged or counted`, async () => {
  const { port } = new URL(s.url);
  // the line that says how the server took each hang-up: the quiet one, or (before the fix) an error
  const told = () =>
    lines.filter((l) => l.msg === 'the client closed the connection before the answer' || l.level >= 50)
      .length;
  for (let i = 1; i <= HANGUPS; i++) {
    const socket = connect(Number(port), '127.0.0.1');
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    socket.write(`GET /api/gcd?n=${12 * i}&m=18 HTTP/1.1\r\nhost: x\r\n\r\n`);
    await validator.reached(i);
    const seen = told();
    socket.destroy();
    while (told() === seen) await once(logged, 'line');
  }
  assert.deepEqual(
    lines.filter((l) => l.level >= 50),
    [],
  );
  const metrics = (await ask(`${s.url}/metrics`)).text;
  assert.doesNotMatch(metrics, /^http_server_errors_total\{/m);
  const aborted = /^http_server_aborted_requests_total\{[^}]*route="\/api\/gcd"[^}]*\} (\d+)/m.exec(metrics);
  assert.equal(
    Number(aborted?.[1]),
    HANGUPS,
    metrics
      .split('\n')
      .filter((l) => l.includes('aborted'))
      .join('\n'),
  );
});

it('a pool computation outlived by its caller’s budget (bulwark-timeout-ms) counts as aborted, not as an error', async () => {
  const p = await start({ maxDigits: 40_000, maxHeaderBytes: 100_000, computeTimeoutMs: 60_000 });
  try {
    const outcome = new Promise<string>((resolve) => {
      const sub = p.server.computer!.onCompute((e) => {
        sub.dispose();
        resolve(e.outcome);
      });
    });
    const res = await ask(`${p.url}/api/gcd?${q({ n: RUNAWAY_N.toString(), m: RUNAWAY_M.toString() })}`, {
      headers: { 'bulwark-timeout-ms': '50' },
    });
    assert.equal(res.status, 504, res.text);
    assert.equal(await outcome, 'aborted');
  } finally {
    await p.close();
  }
});
