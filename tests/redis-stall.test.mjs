// A Redis that stops answering in the middle of a run (paused, overloaded, or a listener that accepts
// and says nothing) must fail the Redis test files that were using it, each on its own and with a clear
// message — never hang the run (it used to, for as long as the test runner's hang guard: ten minutes a
// test) or fill it with ioredis' "Unhandled error event" lines.
// Each Redis test file runs as node's test runner would run it, against REDIS_URL pointed at a proxy in
// front of the real Redis; the proxy passes everything until the first rate-limit script (EVAL/EVALSHA)
// is sent, and from then on passes no reply, on any connection: the connections stay up, silent.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import { ROOT, cleanEnv, describeRun, run } from './support.mjs';

const UPSTREAM = new URL(process.env.REDIS_URL || 'redis://127.0.0.1:6379');

/** A TCP proxy to the real Redis that goes silent (replies dropped, connections kept) at the first EVAL. */
async function stallingProxy() {
  const state = { silent: false, sockets: new Set() };
  const server = createServer((client) => {
    const upstream = connect({ host: UPSTREAM.hostname, port: Number(UPSTREAM.port || 6379) });
    state.sockets.add(client).add(upstream);
    client.on('data', (chunk) => {
      if (/EVAL/i.test(chunk.toString('latin1'))) state.silent = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!state.silent) client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    state,
    url: `redis://127.0.0.1:${server.address().port}`,
    close: () => {
      for (const s of state.sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('a Redis that stops answering mid-run (REDIS_URL)', { concurrency: true }, () => {
  for (const file of [
    'packages/service/dist/rate-limit/limiter.test.js',
    'packages/service/dist/rate-limit/redis-store.test.js',
    'apps/gcd-service/dist/test/kit.test.js',
  ]) {
    it(`fails ${file} by itself, saying so, instead of hanging`, async (t) => {
      const proxy = await stallingProxy();
      t.after(() => proxy.close());
      // no --test-timeout: the file's own bounds must end it (the hang guard below only reports a hang)
      const r = await run(process.execPath, ['--test', '--test-reporter=spec', file], {
        cwd: ROOT,
        env: cleanEnv({ REDIS_URL: proxy.url, NODE_TEST_CONTEXT: undefined }),
        timeoutMs: 120_000,
      });
      const output = r.stdout + r.stderr;
      assert.equal(proxy.state.silent, true, `the proxy never went silent\n${describeRun(file, r)}`);
      assert.equal(r.timedOut, false, `it hung\n${describeRun(file, r)}`);
      assert.equal(r.code, 1, describeRun(file, r));
      assert.doesNotMatch(output, /Unhandled error event/);
      assert.match(output, /stopped answering|timed out/i, describeRun(file, r));
    });
  }
});
