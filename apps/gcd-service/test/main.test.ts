/**
 * The process as `npm start` runs it: scripts/start.mjs → dist/src/main.js on embedded defaults (no
 * Redis, no collector), JSON logs on stdout, a clean exit on SIGTERM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { askPolitely as ask } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const START = `${ROOT}scripts/start.mjs`;
const MAIN = `${ROOT}apps/gcd-service/dist/src/main.js`;

interface Started {
  readonly child: ChildProcess;
  readonly url: string;
  readonly lines: string[];
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns the program with a minimal environment and waits for its "listening" log line. */
function launch(script: string, env: Record<string, string>): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], {
      env: { PATH: process.env.PATH ?? '', PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let stderr = '';
    let buffered = '';
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
      child.on('exit', (code, signal) => done({ code, signal })),
    );
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no "listening" line within 20 s; stderr: ${stderr}`));
    }, 20_000);
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        lines.push(line);
        const match = /listening on (https?:\/\/[^"\s]+)/.exec(line);
        if (match !== null) {
          clearTimeout(timer);
          resolve({ child, url: match[1]!, lines, exit });
        }
      }
    });
    void exit.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before listening; stderr: ${stderr}`));
    });
  });
}

test('npm start (scripts/start.mjs) serves the form and the API on embedded defaults', async () => {
  const started = await launch(START, {});
  try {
    assert.match(started.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'loopback by default');
    const form = await ask(`${started.url}/`);
    assert.equal(form.status, 200);
    assert.match(form.text, /<form action="\/gcd"/);
    const api = await ask(`${started.url}/api/gcd?n=18446744073709551615&m=4294967295`);
    assert.deepEqual(api.json(), { n: '18446744073709551615', m: '4294967295', gcd: '4294967295' });
    const big = await ask(`${started.url}/api/gcd?n=${'9'.repeat(1000)}&m=${'3'.repeat(999)}`);
    assert.equal(big.status, 200, 'the worker file resolves from dist');
    assert.equal(big.headers['x-gcd-compute'], 'pool');
  } finally {
    started.child.kill('SIGTERM');
  }
  const { code, signal } = await started.exit;
  assert.ok(code === 0 || code === 143 || signal === 'SIGTERM', `exit ${code} ${signal}`);
});

test('main.js logs JSON, never the Redis password, and exits 0 on SIGTERM', async () => {
  const started = await launch(MAIN, {
    REDIS_URL: 'redis://:canary-s3cret@127.0.0.1:1/0',
    LOG_LEVEL: 'info',
  });
  await ask(`${started.url}/api/gcd?n=12&m=18`);
  started.child.kill('SIGTERM');
  const { code } = await started.exit;
  assert.equal(code, 0);
  assert.ok(started.lines.length > 0);
  for (const line of started.lines) {
    assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
    assert.doesNotMatch(line, /canary-s3cret/);
  }
});
