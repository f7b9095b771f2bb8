import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { request } from 'undici';
import { startFaultServer } from '@bulwark/fault-server';
import { HttpNetworkError, HttpStatusError, classifyNetworkError, isRetryableHttpError } from './errors.js';

test('HttpStatusError: code, fields, retryable statuses', () => {
  const e = new HttpStatusError(503, 'http://x/', 2000);
  assert.equal(e.code, 'BULWARK_ERR_HTTP_STATUS');
  assert.equal(e.name, 'HttpStatusError');
  assert.equal(e.status, 503);
  assert.equal(e.retryAfterMs, 2000);
  assert.equal(e.retryable, true);
  assert.equal(new HttpStatusError(404, 'http://x/').retryable, false);
  assert.equal(isRetryableHttpError(e), true);
  assert.equal(isRetryableHttpError(new Error('x')), false);
});

test('classifyNetworkError: the inner code wins', () => {
  const socket = Object.assign(new Error('other side closed'), {
    code: 'UND_ERR_SOCKET',
    cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
  });
  const e = classifyNetworkError(socket, 'http://x/');
  assert.ok(e instanceof HttpNetworkError);
  assert.equal(e.kind, 'connection-reset');
  assert.equal(e.errorCode, 'ECONNRESET');
  assert.equal(e.cause, socket);
  assert.equal(e.retryable, true);
  const parse = classifyNetworkError(Object.assign(new Error('bad'), { code: 'HPE_INVALID_CONSTANT' }), 'u');
  assert.equal((parse as HttpNetworkError).kind, 'protocol');
  assert.equal(parse.retryable, false);
  assert.equal((classifyNetworkError(new Error('?'), 'u') as HttpNetworkError).kind, 'other');
  // the dispatcher itself was closed or destroyed: local, so neither a connection failure nor retryable
  for (const code of ['UND_ERR_CLOSED', 'UND_ERR_DESTROYED']) {
    const closed = classifyNetworkError(
      Object.assign(new Error('closed'), { code }),
      'u',
    ) as HttpNetworkError;
    assert.equal(closed.kind, 'other', code);
    assert.equal(closed.retryable, false, code);
  }
  const status = new HttpStatusError(500, 'u');
  assert.equal(classifyNetworkError(status, 'u'), status);
});

test('classifyNetworkError: a real refused connection over loopback', async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const error = await request(`http://127.0.0.1:${port}/`).then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  const classified = classifyNetworkError(error, 'u') as HttpNetworkError;
  assert.equal(classified.kind, 'connection-refused');
});

test('classifyNetworkError: an error without a code is classified by its undici class name', () => {
  // undici 7's HTTPParserError has `code: undefined` (its llhttp error number maps to no name)
  const parser = Object.assign(new Error('Response does not match the HTTP/1.1 protocol'), {
    name: 'HTTPParserError',
    code: undefined,
  });
  const e = classifyNetworkError(parser, 'u') as HttpNetworkError;
  assert.equal(e.kind, 'protocol');
  assert.equal(e.retryable, false);
  assert.match(e.message, /^Malformed HTTP response for u/);
  // wrapped as a cause, too; a known code still wins over the name
  const wrapped = Object.assign(new Error('outer'), { cause: parser });
  assert.equal((classifyNetworkError(wrapped, 'u') as HttpNetworkError).kind, 'protocol');
  const timeout = Object.assign(new Error('t'), { name: 'SocketError', code: 'UND_ERR_HEADERS_TIMEOUT' });
  assert.equal((classifyNetworkError(timeout, 'u') as HttpNetworkError).kind, 'headers-timeout');
  // only undici's own class names count (not a key the lookup table inherits)
  const odd = Object.assign(new Error('x'), { name: 'toString' });
  assert.equal((classifyNetworkError(odd, 'u') as HttpNetworkError).kind, 'other');
});

test('classifyNetworkError: real malformed responses over loopback are protocol errors', async () => {
  const server = await startFaultServer();
  try {
    for (const kind of ['status-line', 'header', 'garbage', 'chunked', 'huge-header']) {
      // headers or body: the parse error surfaces where the bad bytes are
      const error = await (async () =>
        (await request(`${server.origin}/malformed/${kind}`)).body.text())().then(
        () => assert.fail(`${kind}: expected a parse error`),
        (e: unknown) => e,
      );
      const classified = classifyNetworkError(error, 'u') as HttpNetworkError;
      assert.equal(classified.kind, 'protocol', `${kind}: ${String(error)}`);
    }
  } finally {
    await server.close();
  }
});
