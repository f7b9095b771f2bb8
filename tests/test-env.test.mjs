// scripts/test-env.mjs through its real interfaces: the pretest command as a process, and the Redis it
// starts for a run (a real redis-server, pinged over a real socket). Where the machine has everything, the
// "missing" cases are made with BULWARK_TEST_ASSUME_MISSING (the tools are never uninstalled) and the
// default Redis address is pointed at a closed loopback port (the shared Redis is never stopped).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT, cleanEnv, describeRun, run } from './support.mjs';
import { needsOf, prepareTestEnv, redisAnswers, testSources } from '../scripts/test-env.mjs';

const SCRIPT = join(ROOT, 'scripts', 'test-env.mjs');

/** A loopback port where nothing listens (it was free a moment ago). */
async function closedPort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits (bounded by count, never by the clock) until `pid` is gone. */
async function gone(pid) {
  for (let i = 0; i < 300 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  return !isAlive(pid);
}

describe('the pretest check (node scripts/test-env.mjs)', () => {
  it('names every tool the suite needs from the test sources', () => {
    // the package and app tests only (this directory's tests name every tool themselves)
    const needs = needsOf(testSources().filter((f) => !f.startsWith(join(ROOT, 'tests'))));
    assert.deepEqual([...needs].sort(), ['chromium', 'openssl', 'promtool', 'redis']);
  });

  it('stops at once with one message naming what to install when it may not install (not root)', async () => {
    const port = await closedPort();
    const r = await run(process.execPath, [SCRIPT], {
      env: cleanEnv({
        BULWARK_TEST_ASSUME_MISSING: 'chromium,promtool,redis-server,root',
        BULWARK_TEST_REDIS_DEFAULT_URL: `redis://127.0.0.1:${port}`,
        REDIS_URL: undefined, // as the test runner may have set them
        CHROMIUM_PATH: undefined,
      }),
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 1, describeRun('test-env', r));
    assert.equal(r.stdout, '');
    const message = r.stderr.trim();
    assert.equal(
      message.split('\n')[0],
      'npm test cannot start: chromium, promtool and a Redis are missing, and this is not root, so npm test cannot install them.',
    );
    assert.match(
      message,
      /\n {2}Debian\/Ubuntu: {2}sudo apt-get install --no-install-recommends chromium prometheus redis-server\n/,
    );
    assert.match(message, /REDIS_URL is unset and nothing answers at redis:\/\/127\.0\.0\.1:\d+\.\)$/);
    assert.equal(message.match(/npm test cannot start/g).length, 1, 'one message, once');
  });

  it('says it cannot install where there is no apt-get (not Debian)', async () => {
    const r = await run(process.execPath, [SCRIPT], {
      env: cleanEnv({ BULWARK_TEST_ASSUME_MISSING: 'promtool,apt-get', CHROMIUM_PATH: undefined }),
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 1, describeRun('test-env', r));
    assert.match(
      r.stderr,
      /npm test cannot start: promtool is missing, and this is not Debian or Ubuntu \(no apt-get\), so npm test cannot install them\.\n {2}Debian\/Ubuntu: {2}sudo apt-get install --no-install-recommends prometheus\n {2}elsewhere: {6}promtool \(from Prometheus\)\n/,
    );
  });

  it('fails within its bound, naming REDIS_URL, when REDIS_URL does not answer', async () => {
    const port = await closedPort();
    const r = await run(process.execPath, [SCRIPT], {
      env: cleanEnv({ REDIS_URL: `redis://:secret@127.0.0.1:${port}/0` }),
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 1, describeRun('test-env', r));
    assert.match(
      r.stderr,
      new RegExp(`REDIS_URL=redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}/0 does not answer`),
    );
    assert.ok(!r.stderr.includes('secret'), 'the password is never printed');
  });

  it('names a CHROMIUM_PATH that does not exist', async () => {
    const r = await run(process.execPath, [SCRIPT], {
      env: cleanEnv({ CHROMIUM_PATH: join(ROOT, 'no-such-chromium') }),
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 1, describeRun('test-env', r));
    assert.match(r.stderr, /CHROMIUM_PATH=.*no-such-chromium does not exist/);
  });
});

describe('the scripts on a Node older than 22.19', () => {
  for (const [script, what] of [
    ['scripts/test-env.mjs', 'npm test'],
    ['scripts/run-tests.mjs', 'run-tests'],
    ['scripts/pretest.mjs', 'npm test'],
    ['scripts/start.mjs', 'npm start'],
    ['scripts/prepare.mjs', 'Bulwark'],
  ]) {
    it(`${script} says which Node it needs, and does nothing else`, async () => {
      const older = join(ROOT, 'tests', 'fixtures', 'node-22.18.mjs');
      const r = await run(process.execPath, ['--import', older, join(ROOT, script)], { timeoutMs: 60_000 });
      assert.equal(r.code, 1, describeRun(script, r));
      assert.equal(r.stdout, '');
      assert.match(
        r.stderr,
        new RegExp(`^${what} needs Node\\.js >= 22\\.19\\.0 \\(this is v22\\.18\\.0\\)\\. `),
      );
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    });
  }
});

describe('node scripts/run-tests.mjs on an older Node (the system Node 20, say)', () => {
  it("says how to run it with the repository's Node instead, the same arguments and all", async () => {
    const older = join(ROOT, 'tests', 'fixtures', 'node-22.18.mjs');
    const script = join(ROOT, 'scripts', 'run-tests.mjs');
    const r = await run(process.execPath, ['--import', older, script, 'packages/core'], {
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 1, describeRun('run-tests', r));
    assert.match(
      r.stderr,
      /`npm exec -- node scripts\/run-tests\.mjs packages\/core` \(or `npx node scripts\/run-tests\.mjs packages\/core`\)/,
    );
  });
});

describe('the install-time build (scripts/prepare.mjs)', () => {
  it('reports a build it cannot run, and leaves the install standing (exit 0)', async () => {
    const r = await run(process.execPath, [join(ROOT, 'scripts', 'prepare.mjs')], {
      env: cleanEnv({ PATH: '/nonexistent', npm_node_execpath: undefined }),
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, describeRun('prepare', r));
    assert.match(
      r.stderr,
      /warning: the install is complete, but the build failed \(tsc -b: spawnSync tsc ENOENT\)/,
    );
  });
});

describe('a Redis of its own, when REDIS_URL is unset and none answers at the default address', () => {
  it('starts one on a free loopback port, hands its URL to the tests, and stops it', async () => {
    const port = await closedPort();
    const logs = [];
    const prepared = await prepareTestEnv(new Set(['redis']), {
      env: { PATH: process.env.PATH, BULWARK_TEST_REDIS_DEFAULT_URL: `redis://127.0.0.1:${port}` },
      log: (line) => logs.push(line),
    });
    const pid = Number(prepared.env.BULWARK_TEST_REDIS_PID);
    try {
      assert.match(prepared.env.REDIS_URL, /^redis:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(prepared.env.REDIS_URL, `redis://127.0.0.1:${port}`);
      assert.equal(await redisAnswers(prepared.env.REDIS_URL), true);
      assert.match(logs.join('\n'), /started redis-server for this run at redis:\/\/127\.0\.0\.1:\d+/);
    } finally {
      await prepared.stop();
    }
    assert.equal(isAlive(pid), false, 'redis-server is stopped');
    assert.equal(await redisAnswers(prepared.env.REDIS_URL), false);
  });

  it('uses the Redis that answers at the default address instead of starting one', async (t) => {
    // a stand-in that answers PING like a Redis, at the "default" address
    const server = createServer((socket) => socket.on('data', () => socket.end('+PONG\r\n')));
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const url = `redis://127.0.0.1:${server.address().port}`;
    const prepared = await prepareTestEnv(new Set(['redis']), {
      env: { PATH: process.env.PATH, BULWARK_TEST_REDIS_DEFAULT_URL: url },
      log: () => {},
    });
    assert.equal(prepared.env.REDIS_URL, url);
    assert.equal(prepared.env.BULWARK_TEST_REDIS_PID, undefined);
    await prepared.stop();
  });

  it('is ended by the kernel when the process that started it is killed (SIGKILL)', async (t) => {
    const port = await closedPort();
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { prepareTestEnv } = await import(${JSON.stringify(join(ROOT, 'scripts', 'test-env.mjs'))});
         const p = await prepareTestEnv(new Set(['redis']), { log: () => {} });
         process.stdout.write(p.env.BULWARK_TEST_REDIS_PID + '\\n');
         setInterval(() => {}, 1000);`,
      ],
      {
        env: { PATH: process.env.PATH, BULWARK_TEST_REDIS_DEFAULT_URL: `redis://127.0.0.1:${port}` },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const pid = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c) => {
        out += c;
        if (out.includes('\n')) resolve(Number(out.trim()));
      });
      child.once('exit', (code) => reject(new Error(`the child exited (${code}) before starting Redis`)));
    });
    t.after(() => isAlive(pid) && process.kill(pid, 'SIGKILL')); // never leave one behind, even on failure
    assert.equal(isAlive(pid), true);
    child.kill('SIGKILL');
    assert.equal(await gone(pid), true, `redis-server ${pid} outlived the process that started it`);
  });
});
