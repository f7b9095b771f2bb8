import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { InvalidOptionError } from '@bulwark/core';
import Fastify from 'fastify';
import { bulwarkService, createService } from './service.js';
import { serverOptions } from './server-options.js';
import { SERVICE_DEFAULTS } from './options.js';
import {
  DEFAULT_API_SECURITY_HEADERS,
  DEFAULT_CONTENT_SECURITY_POLICY,
  DEFAULT_SECURITY_HEADERS,
} from './security-headers.js';
import { listen, LogSink, parsePrometheus, sampleValue, sleep } from './test-support.js';

const DETAILS_TOKEN = 'health-details-token-0123456789';
const WITH_DETAILS = { authorization: `Bearer ${DETAILS_TOKEN}` };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('createService: endpoints, request ids, headers, logs', () => {
  const logs = new LogSink();
  const app = createService({
    serviceName: 'svc-test',
    version: '1.2.3',
    logStream: logs,
    slowRequestMs: 150,
    shedding: false,
    health: { details: { token: DETAILS_TOKEN } },
  });
  let base = '';
  app.get('/hello', async () => ({ hello: 'world' }));
  app.get('/mark', async (req) => {
    req.log.info('mark');
    return {};
  });
  app.get('/users/:id', async (req) => ({ id: (req.params as { id: string }).id }));
  app.get('/boom', async () => {
    throw Object.assign(new Error('kaboom'), { code: 'APP_ERR_BOOM', statusCode: 502 });
  });
  app.get('/crash', async () => {
    throw new Error('unexpected');
  });
  app.get('/leak', async () => {
    throw new Error('secret db password in message');
  });
  app.get('/slow', async () => {
    await sleep(200);
    return { slow: true };
  });
  app.get('/log-headers', async (req) => {
    req.log.info({ headers: req.headers }, 'headers seen');
    return {};
  });
  app.post('/echo', async (req) => req.body);

  before(async () => {
    base = await listen(app);
  });
  after(() => app.close());

  it('/livez answers 200 {status: ok}, never cached', async () => {
    const res = await request(`${base}/livez`);
    assert.equal(res.statusCode, 200);
    assert.deepEqual(await res.body.json(), { status: 'ok' });
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  it('generates a request id and echoes it on every response', async () => {
    const res = await request(`${base}/hello`);
    await res.body.dump();
    assert.match(String(res.headers['x-request-id']), UUID);
    const missing = await request(`${base}/nope`);
    await missing.body.dump();
    assert.equal(missing.statusCode, 404);
    assert.match(String(missing.headers['x-request-id']), UUID);
  });

  it('accepts a safe x-request-id and replaces an unsafe or overlong one', async () => {
    const ok = await request(`${base}/hello`, { headers: { 'x-request-id': 'abc-123_trace:9/x.y' } });
    await ok.body.dump();
    assert.equal(ok.headers['x-request-id'], 'abc-123_trace:9/x.y');
    for (const bad of ['a'.repeat(129), 'has space', 'inj"ect', 'é', '']) {
      const res = await request(`${base}/hello`, { headers: { 'x-request-id': bad } });
      await res.body.dump();
      assert.match(String(res.headers['x-request-id']), UUID, `replaced ${JSON.stringify(bad)}`);
    }
    const edge = 'b'.repeat(128);
    const res = await request(`${base}/hello`, { headers: { 'x-request-id': edge } });
    await res.body.dump();
    assert.equal(res.headers['x-request-id'], edge);
  });

  it("sends helmet 8's default security headers on routes that do not choose (404 too), no HSTS over HTTP, no X-Powered-By", async () => {
    for (const path of ['/hello', '/nope']) {
      const res = await request(`${base}${path}`);
      await res.body.dump();
      for (const [name, value] of Object.entries(DEFAULT_SECURITY_HEADERS))
        assert.equal(res.headers[name], value, `${path} ${name}`);
      assert.equal(res.headers['content-security-policy'], DEFAULT_CONTENT_SECURITY_POLICY);
      assert.equal(res.headers['strict-transport-security'], undefined, 'no HSTS over plain HTTP');
      assert.equal(res.headers['x-powered-by'], undefined);
    }
  });

  it("sends OWASP's REST set, and nothing of the HTML set, on the kit's own routes (api profile)", async () => {
    for (const path of ['/metrics', '/livez', '/readyz', '/healthz']) {
      const res = await request(`${base}${path}`);
      await res.body.dump();
      for (const [name, value] of Object.entries(DEFAULT_API_SECURITY_HEADERS))
        assert.equal(res.headers[name], value, `${path} ${name}`);
      for (const name of [
        'referrer-policy',
        'cross-origin-opener-policy',
        'x-dns-prefetch-control',
        'x-xss-protection',
      ])
        assert.equal(res.headers[name], undefined, `${path} ${name}`);
      assert.match(String(res.headers['x-request-id']), UUID);
    }
  });

  it('/readyz reports per-check JSON: 200 when every critical check passes, 503 otherwise', async () => {
    let dbUp = true;
    app.bulwark.addCheck('db', () => {
      if (!dbUp) throw new Error('db unreachable');
      return { latencyMs: 1 };
    });
    app.bulwark.addCheck('cache', () => false, { critical: false });
    let res = await request(`${base}/readyz`, { headers: WITH_DETAILS });
    assert.equal(res.statusCode, 200);
    const body = (await res.body.json()) as {
      status: string;
      checks: Record<string, { status: string; details?: unknown }>;
    };
    assert.equal(body.status, 'ok');
    assert.equal(body.checks.db!.status, 'ok');
    assert.deepEqual(body.checks.db!.details, { latencyMs: 1 });
    assert.equal(body.checks.cache!.status, 'fail');
    dbUp = false;
    res = await request(`${base}/readyz`, { headers: WITH_DETAILS });
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers['retry-after'], '1', 'every 503 says when to retry');
    const failed = (await res.body.json()) as { status: string; checks: Record<string, { error?: string }> };
    assert.equal(failed.status, 'fail');
    assert.equal(failed.checks.db!.error, 'db unreachable');
    const health = await request(`${base}/healthz`);
    assert.equal(health.statusCode, 503, 'a failing critical check fails /healthz too');
    assert.equal(health.headers['retry-after'], '1');
    await health.body.dump();
    // Without the token: each check's status, never its error text or details.
    res = await request(`${base}/readyz`);
    assert.equal(res.statusCode, 503);
    assert.deepEqual(await res.body.json(), {
      status: 'fail',
      checks: { db: { status: 'fail', critical: true }, cache: { status: 'fail', critical: false } },
    });
    app.bulwark.health.removeCheck('db');
    app.bulwark.health.removeCheck('cache');
  });

  it('/readyz bounds each check by its timeout', async () => {
    app.bulwark.addCheck(
      'hang',
      (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      {
        timeoutMs: 50,
      },
    );
    const res = await request(`${base}/readyz`, { headers: WITH_DETAILS });
    const body = (await res.body.json()) as { checks: Record<string, { status: string; error?: string }> };
    assert.equal(res.statusCode, 503);
    assert.equal(body.checks.hang!.status, 'fail');
    assert.match(String(body.checks.hang!.error), /timed out after 50 ms/);
    app.bulwark.health.removeCheck('hang');
  });

  it('/healthz gives the detailed report only to a caller with the token (finding 10)', async () => {
    app.bulwark.addCheck('upstream', () => ({ url: 'redis://internal-host:6379' }));
    const open = await request(`${base}/healthz`);
    assert.equal(open.statusCode, 200);
    const summary = await open.body.text();
    assert.deepEqual(Object.keys(JSON.parse(summary)).sort(), [
      'checks',
      'service',
      'shuttingDown',
      'status',
      'uptimeSeconds',
      'version',
    ]);
    assert.doesNotMatch(summary, /internal-host/, 'no details, hosts or configuration without the token');
    const wrong = await request(`${base}/healthz`, { headers: { authorization: 'Bearer nope' } });
    assert.doesNotMatch(await wrong.body.text(), /internal-host/);
    // The scheme is case-insensitive (RFC 9110 §11.1).
    const lower = await request(`${base}/healthz`, {
      headers: { authorization: WITH_DETAILS.authorization.replace('Bearer', 'bearer') },
    });
    assert.match(await lower.body.text(), /internal-host/, 'bearer <token> is Bearer <token>');
    const res = await request(`${base}/healthz`, { headers: WITH_DETAILS });
    app.bulwark.health.removeCheck('upstream');
    assert.equal(res.statusCode, 200);
    const body = (await res.body.json()) as Record<string, unknown>;
    assert.match(JSON.stringify(body), /internal-host/);
    assert.equal(body.status, 'ok');
    assert.equal(body.service, 'svc-test');
    assert.equal(body.version, '1.2.3');
    assert.equal(typeof body.uptimeSeconds, 'number');
    assert.equal(body.shuttingDown, false);
    assert.deepEqual(body.rateLimit, { enabled: false });
    assert.deepEqual(body.shedding, { enabled: false });
    assert.deepEqual(body.tracing, { enabled: false, exporters: 'none', sampler: 'always_off' });
  });

  it('/metrics parses as Prometheus text, and counts match the requests sent', async () => {
    const before = parsePrometheus(await (await request(`${base}/metrics`)).body.text());
    const count = (route: string, status: string, method = 'GET') =>
      sampleValue(before, 'http_server_request_duration_seconds_count', {
        route,
        method,
        status_code: status,
      });
    const b = {
      hello: count('/hello', '200'),
      user: count('/users/:id', '200'),
      miss: count('unmatched', '404'),
      boom: count('/boom', '502'),
      crash: count('/crash', '500'),
      echo: count('/echo', '200', 'POST'),
    };
    const send = async (path: string, n: number, init: Parameters<typeof request>[1] = {}) => {
      for (let i = 0; i < n; i++) await (await request(`${base}${path}`, init)).body.dump();
    };
    await send('/hello', 7);
    await send('/users/1', 2);
    await send('/users/2', 3); // one series for the template, never the raw URL
    await send('/does/not/exist', 4);
    await send('/boom', 2);
    await send('/crash', 1);
    await send('/echo', 2, {
      method: 'POST',
      body: '{"a":1}',
      headers: { 'content-type': 'application/json' },
    });

    await (await request(`${base}/readyz`)).body.dump(); // bulwark_ready reflects the last evaluation
    const res = await request(`${base}/metrics`);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const m = parsePrometheus(await res.body.text());
    const now = (route: string, status: string, method = 'GET') =>
      sampleValue(m, 'http_server_request_duration_seconds_count', { route, method, status_code: status });
    assert.equal(now('/hello', '200') - b.hello, 7);
    assert.equal(now('/users/:id', '200') - b.user, 5);
    assert.equal(now('unmatched', '404') - b.miss, 4);
    assert.equal(now('/boom', '502') - b.boom, 2);
    assert.equal(now('/crash', '500') - b.crash, 1);
    assert.equal(now('/echo', '200', 'POST') - b.echo, 2);
    assert.ok(![...m.values()].some((f) => f.samples.some((s) => s.labels.route?.startsWith('/users/1'))));
    assert.equal(
      sampleValue(m, 'http_server_errors_total', { route: '/boom', code: 'APP_ERR_BOOM' }),
      2 + sampleValue(before, 'http_server_errors_total', { route: '/boom' }),
    );
    assert.ok(sampleValue(m, 'http_server_errors_total', { route: '/crash', code: 'ERR_UNKNOWN' }) >= 1);
    assert.equal(sampleValue(m, 'bulwark_service_info', { service: 'svc-test', version: '1.2.3' }), 1);
    assert.equal(m.get('http_server_request_duration_seconds')?.type, 'histogram');
    assert.ok(m.has('process_cpu_user_seconds_total'), 'default process metrics');
    assert.ok(m.has('nodejs_eventloop_lag_seconds'), 'event-loop metrics');
    assert.ok(m.has('bulwark_event_loop_utilization'));
    assert.equal(sampleValue(m, 'bulwark_ready'), 1);
    // the duration of /slow-like requests lands in the right bucket: /hello is fast
    assert.ok(
      sampleValue(m, 'http_server_request_duration_seconds_bucket', { route: '/hello', le: '0.25' }) >= 7,
    );
  });

  it('/metrics passes `promtool check metrics`, prom-client defaults included (finding 8)', async () => {
    const text = await (await request(`${base}/metrics`)).body.text();
    const families = parsePrometheus(text);
    for (const f of families.values()) {
      if (f.name.startsWith('bulwark_') || f.name.startsWith('http_')) {
        assert.ok(f.help.length > 0, `${f.name} has HELP`);
        if (f.type === 'counter') assert.match(f.name, /_total$/);
        else assert.doesNotMatch(f.name, /_total$/);
      }
    }
    assert.ok(families.has('nodejs_active_handles'), 'the per-type handle gauges stay');
    const run = spawnSync('promtool', ['check', 'metrics'], {
      input: text,
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(
      (run.error as NodeJS.ErrnoException | undefined)?.code,
      undefined,
      'promtool must be on PATH (Debian: apt-get install --no-install-recommends prometheus)',
    );
    assert.equal(run.status, 0, `promtool check metrics:\n${run.stdout}${run.stderr}`);
    assert.equal(`${run.stdout}${run.stderr}`.trim(), '', 'promtool has nothing to say');
  });

  it('logs JSON lines with service and version, no line per successful request, a warning for slow ones', async () => {
    const before = logs.lines.length;
    await (await request(`${base}/hello`)).body.dump();
    // /hello's line, if any, is written when its response closes: before the next request is read.
    await (await request(`${base}/mark`)).body.dump();
    await logs.waitFor('mark', () => true, before);
    assert.deepEqual(
      logs.lines.slice(before).map((l) => l.msg),
      ['mark'],
      'a fast successful request writes no log line',
    );
    const slow = await request(`${base}/slow?token=s3cret`, { headers: { 'x-request-id': 'slow-1' } });
    await slow.body.dump();
    const line = await logs.waitFor('slow request', (l) => l.reqId === 'slow-1');
    assert.equal(line.level, 40);
    assert.equal(line.reqId, 'slow-1');
    assert.equal(line.route, '/slow');
    assert.equal(line.path, '/slow');
    assert.equal(line.service, 'svc-test');
    assert.equal(line.version, '1.2.3');
    assert.ok((line.responseTimeMs as number) >= 150);
    assert.ok(!logs.raw.some((l) => l.includes('s3cret')), 'the query string is never logged');
  });

  it('an unhandled error is logged once with the request id and answered with a generic message (finding 9)', async () => {
    const before = logs.lines.length;
    const res = await request(`${base}/leak`, { headers: { 'x-request-id': 'leak-1' } });
    const text = await res.body.text();
    assert.equal(res.statusCode, 500);
    assert.doesNotMatch(text, /secret|password/, 'the exception text never reaches the client');
    const body = JSON.parse(text) as { code: string; message: string };
    assert.equal(body.code, 'BULWARK_ERR_INTERNAL');
    assert.match(body.message, /leak-1/, 'the answer quotes the request id');
    await (await request(`${base}/mark`)).body.dump();
    await logs.waitFor('mark', () => true, before);
    const lines = logs.lines.slice(before).filter((l) => JSON.stringify(l).includes('secret db password'));
    assert.equal(lines.length, 1, 'logged exactly once');
    assert.equal(lines[0]!.level, 50);
    assert.equal(lines[0]!.reqId, 'leak-1');
    // An error made for the client (it carries its status) keeps its message.
    const boom = await request(`${base}/boom`);
    assert.equal(boom.statusCode, 502);
    assert.equal(((await boom.body.json()) as { message: string }).message, 'kaboom');
  });

  it("the kit's error handler is a default an application replaces without a warning", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => warnings.push(String(w.code ?? w.name));
    process.on('warning', onWarning);
    const own = createService({ logLevel: 'silent', shedding: false });
    own.setErrorHandler((_error, _request, reply) => reply.code(418).send({ own: true }));
    own.get('/x', async () => {
      throw new Error('x');
    });
    try {
      const res = await own.inject('/x');
      assert.equal(res.statusCode, 418);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      assert.deepEqual(
        warnings.filter((c) => c === 'FSTWRN004'),
        [],
      );
    } finally {
      process.off('warning', onWarning);
      await own.close();
    }
  });

  it('redacts authorization, cookies and API keys in log lines', async () => {
    await (
      await request(`${base}/log-headers`, {
        headers: {
          authorization: 'Bearer top-secret-token',
          cookie: 'sid=cookie-secret',
          'x-api-key': 'key-secret',
        },
      })
    ).body.dump();
    const line = (await logs.waitFor('headers seen')) as { headers: Record<string, string> };
    assert.equal(line.headers.authorization, '[Redacted]');
    assert.equal(line.headers.cookie, '[Redacted]');
    assert.equal(line.headers['x-api-key'], '[Redacted]');
    for (const secret of ['top-secret-token', 'cookie-secret', 'key-secret']) {
      assert.ok(!logs.raw.some((l) => l.includes(secret)), `${secret} never logged`);
    }
  });
});

describe('createService: limits and timeouts', () => {
  it('answers 413 past bodyLimitBytes', async () => {
    const app = createService({ bodyLimitBytes: 100, logLevel: 'silent', shedding: false });
    app.post('/echo', async (req) => req.body);
    const base = await listen(app);
    try {
      const res = await request(`${base}/echo`, {
        method: 'POST',
        body: JSON.stringify({ x: 'y'.repeat(200) }),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.statusCode, 413);
      await res.body.dump();
    } finally {
      await app.close();
    }
  });

  it('stops a handler at handlerTimeoutMs with 503 and aborts its signal', async () => {
    const app = createService({ handlerTimeoutMs: 100, logLevel: 'silent', shedding: false });
    let aborted = false;
    let finished: () => void = () => {};
    const handlerDone = new Promise<void>((resolve) => (finished = resolve));
    app.get('/stuck', async (req) => {
      await new Promise<void>((resolve) => req.signal.addEventListener('abort', () => resolve()));
      aborted = true;
      finished();
      return 'late';
    });
    const base = await listen(app);
    try {
      const res = await request(`${base}/stuck`);
      assert.equal(res.statusCode, 503);
      const body = (await res.body.json()) as { code: string };
      assert.equal(body.code, 'FST_ERR_HANDLER_TIMEOUT');
      await handlerDone;
      assert.equal(aborted, true);
    } finally {
      await app.close();
    }
  });

  it('closes a connection whose headers trickle in past headersTimeoutMs (slowloris) with 408', async () => {
    const app = createService({
      headersTimeoutMs: 300,
      requestTimeoutMs: 1000,
      connectionsCheckingIntervalMs: 100,
      logLevel: 'silent',
      shedding: false,
    });
    const base = await listen(app);
    const port = Number(new URL(base).port);
    try {
      const result = await new Promise<{ data: string }>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1');
        let data = '';
        socket.on('data', (d) => (data += d.toString()));
        socket.on('error', reject);
        socket.on('close', () => {
          clearInterval(drip);
          resolve({ data });
        });
        socket.write('GET /livez HTTP/1.1\r\nHost: x\r\n');
        const drip = setInterval(() => socket.write('X-Drip: 1\r\n'), 50);
      });
      // The drip never ends by itself: the server closed the connection, with a 408 that says why.
      assert.match(result.data, /^HTTP\/1\.1 408/);
      assert.match(result.data, /"code":"BULWARK_ERR_REQUEST_TIMEOUT"/);
      assert.match(result.data, /\r\nx-request-id: [0-9a-f-]{36}\r\n/, 'a request id (finding 10)');
      assert.match(result.data, /\r\nx-content-type-options: nosniff\r\n/, 'security headers (finding 10)');
    } finally {
      await app.close();
    }
  });

  it('closes an idle keep-alive connection after keepAliveTimeoutMs', async () => {
    const app = createService({ keepAliveTimeoutMs: 200, logLevel: 'silent', shedding: false });
    const base = await listen(app);
    const port = Number(new URL(base).port);
    try {
      const result = await new Promise<{ data: string; idleMs: number }>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1');
        let data = '';
        let answeredAt = 0;
        socket.on('data', (d) => {
          data += d.toString();
          if (answeredAt === 0 && data.includes('"status":"ok"')) answeredAt = performance.now();
        });
        socket.on('error', reject);
        socket.on('close', () => resolve({ data, idleMs: performance.now() - answeredAt }));
        socket.write('GET /livez HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      // The client never closes: the server did, idle, and not before its keep-alive timeout.
      assert.match(result.data, /^HTTP\/1\.1 200/);
      assert.match(result.data, /keep-alive/i);
      assert.ok(result.idleMs >= 150, `closed ${Math.round(result.idleMs)} ms after the answer`);
    } finally {
      await app.close();
    }
  });

  it('answers 431 to a request head over maxHeaderBytes', async () => {
    const app = createService({ maxHeaderBytes: 1024, logLevel: 'silent', shedding: false });
    const base = await listen(app);
    try {
      const res = await request(`${base}/livez`, { headers: { 'x-big': 'a'.repeat(2000) } });
      assert.equal(res.statusCode, 431);
      assert.match(String(res.headers['x-request-id']), UUID, 'a request id (finding 10)');
      assert.equal(res.headers['x-content-type-options'], 'nosniff', 'security headers (finding 10)');
      assert.equal(((await res.body.json()) as { code: string }).code, 'BULWARK_ERR_HEADERS_TOO_LARGE');
    } finally {
      await app.close();
    }
  });
});

describe('bulwarkService plugin (an instance built elsewhere)', () => {
  it('Fastify(serverOptions(opts)) + await register(bulwarkService, opts) gives the same kit', async () => {
    const options = { logLevel: 'silent' as const, shedding: false as const, serviceName: 'plugged' };
    const app = Fastify(serverOptions(options));
    await app.register(bulwarkService, options);
    app.get('/hi', async () => 'hi');
    try {
      const res = await app.inject({ url: '/hi', headers: { 'x-request-id': 'plug-1' } });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['x-request-id'], 'plug-1');
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      const m = parsePrometheus((await app.inject('/metrics')).body);
      assert.equal(
        sampleValue(m, 'http_server_request_duration_seconds_count', { route: '/hi', status_code: '200' }),
        1,
      );
      assert.equal(sampleValue(m, 'bulwark_service_info', { service: 'plugged' }), 1);
      assert.equal((await app.inject('/readyz')).statusCode, 200);
    } finally {
      await app.close();
    }
  });
});

describe('security headers', () => {
  it('takes a CSP, extra headers and drops; a handler may still override one', async () => {
    const app = createService({
      logLevel: 'silent',
      shedding: false,
      securityHeaders: {
        contentSecurityPolicy: "default-src 'none'",
        headers: { 'X-Frame-Options': 'DENY', 'x-xss-protection': false, 'Permissions-Policy': 'camera=()' },
      },
    });
    app.get('/page', async (_req, reply) =>
      reply.header('content-security-policy', "default-src 'self'").send('page'),
    );
    app.get('/api', async () => ({}));
    try {
      const api = await app.inject('/api');
      assert.equal(api.headers['content-security-policy'], "default-src 'none'");
      assert.equal(api.headers['x-frame-options'], 'DENY');
      assert.equal(api.headers['permissions-policy'], 'camera=()');
      assert.equal(api.headers['x-xss-protection'], undefined);
      assert.equal(api.headers['x-content-type-options'], 'nosniff');
      const page = await app.inject('/page');
      assert.equal(page.headers['content-security-policy'], "default-src 'self'");
    } finally {
      await app.close();
    }
  });

  it('serves HTTPS (TLS >= 1.2) with the `https` option, and sends HSTS only there', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-tls-'));
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
      const app = createService({
        logLevel: 'silent',
        shedding: false,
        https: { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
      });
      app.get('/x', async () => 'x');
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      try {
        const agent = new Agent({ connect: { rejectUnauthorized: false } });
        const res = await request(`https://127.0.0.1:${port}/x`, { dispatcher: agent });
        assert.equal(res.statusCode, 200);
        assert.equal(res.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
        await res.body.dump();
        await agent.close();
        const old = new Agent({
          connect: { rejectUnauthorized: false, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' },
        });
        await assert.rejects(request(`https://127.0.0.1:${port}/x`, { dispatcher: old }));
        await old.close();
      } finally {
        await app.close();
      }
      // A client that connects and never starts the handshake is dropped at the headers timeout (Node's
      // own default would hold it for 120 s).
      const strict = createService({
        logLevel: 'silent',
        shedding: false,
        headersTimeoutMs: 300,
        requestTimeoutMs: 300,
        https: { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
      });
      await strict.listen({ port: 0, host: '127.0.0.1' });
      try {
        const tlsError = once(strict.server, 'tlsClientError');
        const silent = connect((strict.server.address() as AddressInfo).port, '127.0.0.1');
        silent.on('error', () => {});
        const [error] = (await tlsError) as [NodeJS.ErrnoException];
        assert.equal(error.code, 'ERR_TLS_HANDSHAKE_TIMEOUT');
        await once(silent, 'close');
      } finally {
        await strict.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lets each route choose its set: document (default), api or none; apiHeaders edits the api set', async () => {
    const app = createService({
      logLevel: 'silent',
      shedding: false,
      securityHeaders: { apiHeaders: { 'cache-control': false, 'x-api-version': '2' } },
    });
    app.get('/page', async () => 'page');
    app.get('/api', { config: { bulwark: { securityHeaders: 'api' } } }, async () => ({}));
    app.get('/bare', { config: { bulwark: { securityHeaders: 'none' } } }, async () => 'bare');
    try {
      const page = await app.inject('/page');
      assert.equal(page.headers['content-security-policy'], DEFAULT_CONTENT_SECURITY_POLICY);
      assert.equal(page.headers['x-frame-options'], 'SAMEORIGIN');
      const api = await app.inject('/api');
      assert.equal(api.headers['content-security-policy'], "frame-ancestors 'none'");
      assert.equal(api.headers['x-frame-options'], 'DENY');
      assert.equal(api.headers['x-content-type-options'], 'nosniff');
      assert.equal(api.headers['x-api-version'], '2');
      assert.equal(api.headers['cache-control'], undefined, 'dropped by apiHeaders');
      assert.equal(api.headers['referrer-policy'], undefined);
      const bare = await app.inject('/bare');
      assert.equal(bare.headers['x-content-type-options'], undefined);
      assert.equal(bare.headers['content-security-policy'], undefined);
      assert.match(String(bare.headers['x-request-id']), UUID, 'the request id is always sent');
    } finally {
      await app.close();
    }
  });

  it('names the route and the allowed sets when a route asks for an unknown one', () => {
    const app = createService({ logLevel: 'silent', shedding: false });
    assert.throws(
      () => app.get('/x', { config: { bulwark: { securityHeaders: 'html' as never } } }, async () => 'x'),
      (e: unknown) =>
        e instanceof InvalidOptionError &&
        /route \/x/.test(e.message) &&
        /'document', 'api' or 'none'/.test(e.message),
    );
    return app.close();
  });

  it('sends nothing with securityHeaders: false', async () => {
    const none = createService({ logLevel: 'silent', shedding: false, securityHeaders: false });
    none.get('/x', async () => 'x');
    const res = await none.inject('/x');
    assert.equal(res.headers['x-content-type-options'], undefined);
    await none.close();
  });
});

describe('options', () => {
  it('declares its defaults once, frozen', () => {
    assert.ok(Object.isFrozen(SERVICE_DEFAULTS));
    assert.equal(SERVICE_DEFAULTS.requestIdHeader, 'x-request-id');
    assert.equal(SERVICE_DEFAULTS.accessLog, false);
  });

  it('rejects bad options at construction, naming the option', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ bodyLimitBytes: 0 }, /service\.bodyLimitBytes/],
      [{ headersTimeoutMs: -1 }, /service\.headersTimeoutMs/],
      [{ headersTimeoutMs: 5000, requestTimeoutMs: 1000 }, /service\.headersTimeoutMs/],
      [{ logLevel: 'loud' }, /service\.logLevel/],
      [{ requestIdHeader: 'bad header' }, /service\.requestIdHeader/],
      [{ timeout: 5 }, /service\.timeout/],
      [{ metrics: 'yes' }, /service\.metrics/],
      [{ metrics: { path: 'metrics' } }, /metrics\.path/],
      [{ rateLimit: { ratePerSecond: 0 } }, /rateLimit\.ratePerSecond/],
      [{ rateLimit: { onStoreError: 'panic' } }, /rateLimit\.onStoreError/],
      [{ rateLimit: { redisUrl: 'http://x' } }, /redisStore\.url/],
      [{ shedding: { algorithm: 'vegas' } }, /shedding\.algorithm/],
      [{ shedding: { initialLimit: 5, minLimit: 10 } }, /shedding\.minLimit/],
      [{ shedding: { maxEventLoopUtilization: 1.5 } }, /shedding\.maxEventLoopUtilization/],
      [{ health: { checkTimeoutMs: 0 } }, /health\.checkTimeoutMs/],
      [{ tracing: {} }, /service\.tracing/],
      [{ securityHeaders: { headers: { 'bad header': 'x' } } }, /securityHeaders\.headers/],
      [{ securityHeaders: { contentSecurityPolicy: 'a\nb' } }, /securityHeaders\.contentSecurityPolicy/],
      [{ securityHeaders: { csp: 'x' } }, /securityHeaders\.csp/],
      [{ securityHeaders: { apiHeaders: { 'x-a': '' } } }, /securityHeaders\.apiHeaders\.x-a/],
      [{ securityHeaders: { apiHeaders: 'none' } }, /securityHeaders\.apiHeaders/],
    ];
    for (const [options, pattern] of cases) {
      assert.throws(
        () => createService({ logLevel: 'silent', ...options } as never),
        (e: unknown) => e instanceof InvalidOptionError && pattern.test(e.message),
        JSON.stringify(options),
      );
    }
  });
});
