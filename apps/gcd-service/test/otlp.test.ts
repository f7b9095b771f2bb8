/**
 * Tracing as an operator turns it on (issue 10, finding 3): the built program started with
 * `OTEL_TRACES_EXPORTER=otlp` at the default log level (the crash was a frozen log-mixin object at
 * info), a validator process too, both exporting over OTLP/HTTP to a small receiver on loopback that
 * decodes what they send. On SIGTERM each flushes its spans; the test then reads one trace across both.
 *
 * And a feature switched on without its optional package: the program stops with exit 78 and a message
 * naming the package to install (the package is hidden with a module resolution hook).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ask, fibonacciPair, hidePackages, q, spawnService, type Spawned } from './helpers.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean>;
  service: string;
}

/** An OTLP/HTTP receiver (JSON encoding) on 127.0.0.1: every span it was sent, with its service name. */
class Receiver {
  readonly spans: OtlpSpan[] = [];
  readonly requests: Array<{ path: string; type: string }> = [];
  readonly server: Server;
  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests.push({ path: req.url ?? '', type: String(req.headers['content-type']) });
        this.#decode(Buffer.concat(chunks).toString('utf8'));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
  }
  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  #decode(text: string): void {
    type Value = {
      stringValue?: string;
      intValue?: string | number;
      boolValue?: boolean;
      doubleValue?: number;
    };
    type Attr = { key: string; value: Value };
    const body = JSON.parse(text) as {
      resourceSpans: Array<{
        resource: { attributes: Attr[] };
        scopeSpans: Array<{
          spans: Array<Omit<OtlpSpan, 'attributes' | 'service'> & { attributes?: Attr[] }>;
        }>;
      }>;
    };
    const flat = (attrs: Attr[] = []) =>
      Object.fromEntries(
        attrs.map(({ key, value }) => [
          key,
          value.stringValue ??
            (value.intValue !== undefined
              ? Number(value.intValue)
              : (value.boolValue ?? value.doubleValue ?? '')),
        ]),
      );
    for (const rs of body.resourceSpans) {
      const service = String(flat(rs.resource.attributes)['service.name']);
      for (const ss of rs.scopeSpans) {
        for (const span of ss.spans) this.spans.push({ ...span, attributes: flat(span.attributes), service });
      }
    }
  }
}

/** The built program (with `nodeArgs` before it), started as {@link spawnService} does. */
function launch(env: Record<string, string>, nodeArgs: string[] = []): Promise<Spawned> {
  return spawnService(env, { args: [...nodeArgs, MAIN] });
}

describe('tracing on: the real service exports to an OTLP/HTTP receiver (finding 3)', () => {
  const receiver = new Receiver();
  let endpoint = '';
  let validator: Spawned;
  let gcd: Spawned;

  before(async () => {
    endpoint = await receiver.listen();
    const otel = { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint };
    // LOG_LEVEL unset: info, the level at which the frozen mixin object made startup fail.
    validator = await launch({ ...otel, GCD_MODE: 'validator', OTEL_SERVICE_NAME: 'gcd-validator' });
    gcd = await launch({ ...otel, VALIDATOR_URL: validator.url, OTEL_SERVICE_NAME: 'gcd-service' });
  });

  after(() => {
    for (const p of [gcd, validator]) if (p?.child.exitCode === null) p.child.kill('SIGKILL');
    receiver.server.close();
  });

  test('spans of both processes, one trace, with the chapter attributes', async () => {
    const traceId = 'a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5';
    const small = await ask(`${gcd.url}/api/gcd?n=1071&m=462`, {
      headers: { traceparent: `00-${traceId}-0102030405060708-01` },
    });
    assert.equal(small.status, 200);
    assert.equal(small.headers['x-gcd-validation'], 'remote');
    const [a, b] = fibonacciPair(300);
    const big = await ask(`${gcd.url}/api/gcd?${q({ n: a.toString(), m: b.toString() })}`);
    assert.equal(big.headers['x-gcd-compute'], 'pool');

    // SIGTERM: each process drains, flushes its spans to the receiver, and exits 0.
    gcd.child.kill('SIGTERM');
    validator.child.kill('SIGTERM');
    assert.equal((await gcd.exit).code, 0);
    assert.equal((await validator.exit).code, 0);
    for (const line of [...gcd.lines, ...validator.lines]) JSON.parse(line); // every log line is JSON
    assert.ok(receiver.requests.length > 0, 'something was exported');
    for (const r of receiver.requests) {
      assert.equal(r.path, '/v1/traces');
      assert.match(r.type, /application\/json/);
    }

    const trace = receiver.spans.filter((s) => s.traceId === traceId);
    const find = (name: string, service: string) =>
      trace.find((s) => s.name === name && s.service === service);
    const root = find('GET /api/gcd', 'gcd-service');
    const validate = find('gcd.validate', 'gcd-service');
    const attempt = trace.find((s) => s.name === 'POST /validate' && s.service === 'gcd-service');
    const remote = find('POST /validate', 'gcd-validator');
    const compute = find('gcd.compute', 'gcd-service');
    assert.ok(
      root && validate && attempt && remote && compute,
      trace.map((s) => `${s.service}:${s.name}`).join(', '),
    );
    assert.equal(root.parentSpanId, '0102030405060708');
    assert.equal(validate.parentSpanId, root.spanId);
    assert.equal(attempt.parentSpanId, validate.spanId);
    assert.equal(remote.parentSpanId, attempt.spanId, 'the trace crosses into the validator process');
    assert.equal(compute.parentSpanId, root.spanId);
    assert.equal(root.attributes['http.route'], '/api/gcd');
    assert.equal(root.attributes['http.response.status_code'], 200);
    assert.equal(root.attributes['gcd.n.digits'], 4);
    assert.equal(root.attributes['gcd.m.digits'], 3);
    assert.equal(attempt.attributes['bulwark.attempt'], 1);
    for (const s of trace) {
      for (const v of Object.values(s.attributes))
        assert.ok(!['1071', '462'].includes(String(v)), 'no input values');
    }

    const wait = receiver.spans.find((s) => s.name === 'gcd.pool.wait');
    const work = receiver.spans.find(
      (s) => s.name === 'gcd.compute' && s.attributes['gcd.compute.path'] === 'pool',
    );
    assert.ok(wait && work, 'the pool wait and the pool computation are spans');
    assert.equal(wait.traceId, work.traceId);
    assert.equal(work.attributes['gcd.digits'], 300);
  });
});

describe('tracing on, and no collector listening', () => {
  test('SIGTERM still drains and exits 0; the spans it could not export are a warning naming the endpoint', async () => {
    // a loopback port where nothing listens (it was free a moment ago)
    const free = createServer();
    await new Promise<void>((resolve) => free.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(free.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => free.close(() => resolve()));

    const p = await launch({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint });
    assert.equal((await ask(`${p.url}/api/gcd?n=12&m=18`)).status, 200); // a span to export
    p.child.kill('SIGTERM');
    const { code, stderr } = await p.exit;
    const lines = p.lines.map((l) => JSON.parse(l) as { level: number; msg: string });
    assert.equal(code, 0, `${p.lines.join('\n')}\n${stderr}`);
    const warning = lines.find((l) => /^tracing: the last spans/.test(l.msg));
    assert.ok(warning, p.lines.join('\n'));
    assert.equal(warning.level, 40, 'a warning');
    assert.ok(warning.msg.includes(endpoint), warning.msg);
    assert.ok(lines.some((l) => l.msg === 'shutdown complete'));
    assert.ok(!lines.some((l) => l.level >= 50), 'no error logged');
  });
});

describe('a feature turned on without its optional package', () => {
  for (const [feature, env, missing] of [
    ['tracing', { OTEL_TRACES_EXPORTER: 'otlp' }, '@opentelemetry/sdk-trace'],
    ['tracing (the exporter)', { OTEL_TRACES_EXPORTER: 'otlp' }, '@opentelemetry/exporter-trace-otlp-http'],
    ['a Redis rate limit', { REDIS_URL: 'redis://127.0.0.1:6379' }, 'ioredis'],
  ] as const) {
    test(`${feature} without ${missing}: exit 78, naming the package to install`, async () => {
      const failed = await launch(env, ['--import', hidePackages([missing])]).then(
        (p) => {
          p.child.kill('SIGKILL');
          assert.fail('the program started without the package');
        },
        (error: { code: number; stderr: string }) => error,
      );
      assert.equal(failed.code, 78);
      assert.match(
        failed.stderr,
        new RegExp(`needs the package ${missing.replace(/[/.]/g, '\\$&')}, which is not installed`),
      );
      assert.match(failed.stderr, /run `npm install [^`]*`/);
    });
  }

  test('several features without their packages: one message names every missing package, with one npm install', async () => {
    const hidden = [
      '@opentelemetry/sdk-trace',
      '@opentelemetry/resources',
      '@opentelemetry/core',
      '@opentelemetry/context-async-hooks',
      '@opentelemetry/exporter-trace-otlp-http',
      'ioredis',
    ];
    const env = { OTEL_TRACES_EXPORTER: 'otlp', REDIS_URL: 'redis://127.0.0.1:6379' };
    const failed = await launch(env, ['--import', hidePackages(hidden)]).then(
      (p) => {
        p.child.kill('SIGKILL');
        assert.fail('the program started without the packages');
      },
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(failed.code, 78);
    const message = failed.stderr.split('\n')[0]!;
    assert.match(
      message,
      /tracing \(OTEL_TRACES_EXPORTER=otlp\) and a Redis rate-limit store .* need the packages /,
    );
    for (const name of hidden) assert.ok(message.includes(name), `${name} is not named: ${message}`);
    const installs = [...failed.stderr.matchAll(/npm install ([^`]*)`/g)];
    assert.equal(installs.length, 1, 'one npm install command');
    assert.deepEqual(installs[0]![1]!.split(' ').sort(), [...hidden].sort());
  });

  test('with the package present and the feature off, nothing optional is loaded', async () => {
    // Every optional package hidden at once: a plain start (no OTEL_*, no REDIS_URL) must not notice.
    const p = await launch({}, ['--import', hidePackages(['ioredis', /^@opentelemetry\/(?!api$)/])]);
    const res = await ask(`${p.url}/api/gcd?n=12&m=18`);
    assert.equal(res.status, 200);
    p.child.kill('SIGTERM');
    assert.equal((await p.exit).code, 0);
  });
});
