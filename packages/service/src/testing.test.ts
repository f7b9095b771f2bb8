// `@bulwark/service/testing` on its own: it loads without the optional peers (ioredis, the OpenTelemetry
// SDK), its span collector behaves as the SDK's in-memory exporter, and its Redis helpers say clearly
// when there is no Redis. (The helpers at work: tracing/tracing.test.ts, endings.test.ts, the Redis tests.)
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { ExportResult } from '@opentelemetry/core';
import {
  closeRedisForTests,
  freePort,
  hidePackages,
  redisForTests,
  requireRedis,
  SpanCollector,
} from './testing.js';

const span = (name: string) => ({ name }) as unknown as ReadableSpan;

/** Exports `spans` and resolves with the result the collector reports. */
function exportTo(collector: SpanCollector, spans: ReadableSpan[]): Promise<ExportResult> {
  return new Promise((resolve) => collector.export(spans, resolve));
}

describe('SpanCollector', () => {
  it('waitFor resolves with a span that already arrived, or with the first matching one that arrives', async () => {
    const collector = new SpanCollector();
    assert.deepEqual(await exportTo(collector, [span('a')]), { code: 0 });
    assert.equal((await collector.waitFor((s) => s.name === 'a')).name, 'a');
    const later = collector.waitFor((s) => s.name === 'c');
    await exportTo(collector, [span('b'), span('c')]);
    assert.equal((await later).name, 'c');
    assert.deepEqual(
      collector.getFinishedSpans().map((s) => s.name),
      ['a', 'b', 'c'],
    );
    collector.reset();
    assert.deepEqual(collector.getFinishedSpans(), []);
  });

  it('after shutdown keeps nothing and fails every export, as the SDK exporter does', async () => {
    const collector = new SpanCollector();
    await exportTo(collector, [span('a')]);
    await collector.shutdown();
    assert.deepEqual(collector.getFinishedSpans(), []);
    const result = await exportTo(collector, [span('b')]);
    assert.equal(result.code, 1);
    assert.match(String(result.error?.message), /stopped/);
    assert.deepEqual(collector.getFinishedSpans(), []);
  });
});

it('loads, and its span collector and freePort work, with no optional peer installed; redisForTests then names ioredis', async () => {
  // ioredis by name, and every OpenTelemetry package but the API (which the kit always loads) by pattern.
  const hide = hidePackages(['ioredis', /^@opentelemetry\/(?!api$)/]);
  const program = `
    const { SpanCollector, freePort, redisForTests } = await import(${JSON.stringify(new URL('./testing.js', import.meta.url).href)});
    const collector = new SpanCollector();
    collector.export([{ name: 'x' }], () => {});
    const port = await freePort();
    const missing = await redisForTests('redis://127.0.0.1:1').then(() => 'loaded', (e) => [e.name, e.packageName, e.message]);
    const loads = async (name) => import(name).then(() => true, (e) => e.code);
    const sdk = await loads('@opentelemetry/sdk-trace');
    const api = await loads('@opentelemetry/api');
    console.log(JSON.stringify({ spans: collector.getFinishedSpans().length, port: port > 0, missing, sdk, api }));
  `;
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) =>
    execFile(
      process.execPath,
      ['--import', hide, '--input-type=module', '--eval', program],
      { cwd: fileURLToPath(new URL('.', import.meta.url)), timeout: 60_000 },
      (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve({ stdout }),
    ),
  );
  const out = JSON.parse(stdout) as {
    spans: number;
    port: boolean;
    missing: string[];
    sdk: unknown;
    api: unknown;
  };
  assert.equal(out.sdk, 'MODULE_NOT_FOUND', 'the pattern hides the SDK');
  assert.equal(out.api, true, 'and not the API');
  assert.equal(out.spans, 1);
  assert.equal(out.port, true);
  assert.equal(out.missing[0], 'MissingDependencyError');
  assert.equal(out.missing[1], 'ioredis');
  assert.match(
    String(out.missing[2]),
    /redisForTests \(@bulwark\/service\/testing\) needs the package ioredis/,
  );
});

describe('Redis helpers', () => {
  it('requireRedis and redisForTests fail at once, with a clear message, where no Redis listens', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    await assert.rejects(requireRedis(url, 2000), (error: Error) => {
      assert.match(error.message, /^Redis is not reachable at redis:\/\/127\.0\.0\.1:\d+ \(.*ECONNREFUSED/);
      assert.match(error.message, /point REDIS_URL at one/);
      return true;
    });
    await assert.rejects(redisForTests('redis://user:secret@127.0.0.1:1', 2000), (error: Error) => {
      assert.ok(!error.message.includes('secret'), error.message);
      assert.match(error.message, /redis:\/\/\*\*\*@127\.0\.0\.1:1/);
      return true;
    });
  });

  it('requireRedis resolves, and redisForTests gives a ready client, where Redis answers (REDIS_URL)', async () => {
    await requireRedis();
    const client = await redisForTests();
    try {
      assert.equal(client.status, 'ready');
      assert.equal(await client.ping(), 'PONG');
    } finally {
      await closeRedisForTests(client);
    }
  });
});
