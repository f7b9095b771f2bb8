/**
 * Every endpoint and error path over a real loopback socket.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { ask, q, start, type Running } from './helpers.js';

let s: Running;
before(async () => {
  s = await start();
});
after(() => s.close());

function assertSecurityHeaders(headers: Record<string, string | string[] | undefined>): void {
  assert.equal(headers['x-content-type-options'], 'nosniff');
  assert.equal(headers['referrer-policy'], 'no-referrer');
  assert.equal(headers['cross-origin-resource-policy'], 'same-origin');
  assert.equal(headers['x-powered-by'], undefined);
  const csp = String(headers['content-security-policy']);
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /style-src 'self'(;|$)/, 'no unsafe-inline for styles');
  assert.doesNotMatch(csp, /upgrade-insecure-requests/, 'plain HTTP must not ask browsers to upgrade');
  assert.equal(headers['strict-transport-security'], undefined, 'no HSTS over plain HTTP');
}

/** OWASP's REST set (the kit's `api` profile), and none of the HTML document headers. */
function assertApiSecurityHeaders(headers: Record<string, string | string[] | undefined>): void {
  assert.equal(headers['cache-control'], 'no-store');
  assert.equal(headers['content-security-policy'], "frame-ancestors 'none'");
  assert.equal(headers['x-content-type-options'], 'nosniff');
  assert.equal(headers['x-frame-options'], 'DENY');
  assert.equal(headers['x-powered-by'], undefined);
  assert.equal(headers['strict-transport-security'], undefined, 'no HSTS over plain HTTP');
  for (const name of ['referrer-policy', 'cross-origin-opener-policy', 'x-dns-prefetch-control'])
    assert.equal(headers[name], undefined, name);
}

describe('GET /', () => {
  test('serves the form, with no inline script or style', async () => {
    const res = await ask(`${s.url}/`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/html; charset=utf-8/);
    assertSecurityHeaders(res.headers);
    assert.match(res.text, /<form action="\/gcd" method="post"/);
    assert.match(res.text, /<input type="text" id="n" name="n"/);
    assert.match(res.text, /<input type="text" id="m" name="m"/);
    assert.match(res.text, /<link rel="stylesheet" href="\/static\/gcd.css">/);
    assert.doesNotMatch(res.text, /<script|<style|style=|\son[a-z]+=/i);
  });

  test('HEAD answers the headers without a body', async () => {
    const res = await ask(`${s.url}/`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.equal(res.text, '');
  });

  test('the stylesheet is served as CSS', async () => {
    const res = await ask(`${s.url}/static/gcd.css`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/css/);
    assert.match(res.text, /\.error \{/);
  });
});

describe('GET /api/gcd', () => {
  test('answers JSON with decimal strings', async () => {
    const res = await ask(`${s.url}/api/gcd?${q({ n: '48', m: '180' })}`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.equal(res.headers['cache-control'], 'no-store');
    // Debug headers only where they carry information (issue 10): no validator, computed inline.
    assert.equal(res.headers['x-gcd-validation'], undefined);
    assert.equal(res.headers['x-gcd-compute'], undefined);
    assertApiSecurityHeaders(res.headers);
    assert.deepEqual(res.json(), { n: '48', m: '180', gcd: '12' });
  });

  test('HEAD works too', async () => {
    const res = await ask(`${s.url}/api/gcd?n=4&m=6`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.text, '');
  });

  test('a wrong method gets 405 with Allow', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH'] as const) {
      const res = await ask(`${s.url}/api/gcd?n=4&m=6`, {
        method,
        body: method === 'POST' ? 'x' : undefined,
      });
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.allow, 'GET, HEAD');
      assert.equal(res.json().code, 'GCD_ERR_METHOD_NOT_ALLOWED');
      assertSecurityHeaders(res.headers);
    }
  });
});

describe('POST /gcd', () => {
  test('answers an HTML page with the result', async () => {
    const res = await ask(`${s.url}/gcd`, { form: { n: '1071', m: '462' } });
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assertSecurityHeaders(res.headers);
    assert.match(res.text, /<strong class="number" id="gcd">21<\/strong>/);
    assert.doesNotMatch(res.text, /<script|<style|style=/i);
  });

  test('answers an HTML page with the explanation and 400 for a bad number', async () => {
    const res = await ask(`${s.url}/gcd`, { form: { n: '12', m: '0' } });
    assert.equal(res.status, 400);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.match(res.text, /GCD_ERR_ZERO/);
    assert.match(res.text, /m is zero/);
    assert.match(res.text, /value="12"/, 'the form keeps what was typed');
  });

  test('escapes every echoed input (no XSS)', async () => {
    const evil = `"><script>alert(1)</script><img src=x onerror='alert(2)'>&amp;\``;
    const res = await ask(`${s.url}/gcd`, { form: { n: evil, m: '6' } });
    assert.equal(res.status, 400);
    assert.doesNotMatch(res.text, /<script>|<img|onerror='/);
    assert.ok(res.text.includes('&lt;script&gt;'), 'the message shows the input, escaped');
    assert.ok(res.text.includes('value="&quot;&gt;&lt;script&gt;'), 'the form value is escaped');
    assert.ok(res.text.includes('&amp;amp;'), '& is escaped');
    assert.ok(res.text.includes('&#96;'), 'backtick is escaped');
  });

  test('also escapes input echoed in the JSON error of the API', async () => {
    const res = await ask(`${s.url}/api/gcd?${q({ n: '<b>x</b>', m: '1' })}`);
    assert.equal(res.status, 400);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
  });

  test('a wrong content type gets 415, before the body is parsed', async () => {
    const json = await ask(`${s.url}/gcd`, {
      method: 'POST',
      body: '{"n":"4","m":"6"}',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(json.status, 415);
    assert.match(json.text, /GCD_ERR_UNSUPPORTED_MEDIA_TYPE/);
    assert.match(json.text, /application\/x-www-form-urlencoded/);
    const none = await ask(`${s.url}/gcd`, { method: 'POST', body: 'n=4&m=6' });
    assert.equal(none.status, 415);
    const text = await ask(`${s.url}/gcd`, {
      method: 'POST',
      body: 'n=4&m=6',
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(text.status, 415);
  });

  test('a form with a charset parameter is accepted', async () => {
    const res = await ask(`${s.url}/gcd`, {
      method: 'POST',
      body: 'n=4&m=6',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' },
    });
    assert.equal(res.status, 200);
  });

  test('a compressed body, or one in another charset, gets 415 saying what is accepted', async () => {
    const form = 'application/x-www-form-urlencoded';
    const gzipped = await ask(`${s.url}/gcd`, {
      method: 'POST',
      body: gzipSync('n=4&m=6'),
      headers: { 'content-type': form, 'content-encoding': 'gzip' },
    });
    assert.equal(gzipped.status, 415);
    assert.match(gzipped.text, /GCD_ERR_UNSUPPORTED_MEDIA_TYPE/);
    assert.match(
      gzipped.text,
      /uncompressed body; received Content-Encoding &quot;gzip&quot;|uncompressed body; received Content-Encoding "gzip"/,
    );
    const utf16 = await ask(`${s.url}/gcd`, {
      method: 'POST',
      body: Buffer.from('n=4&m=6', 'utf16le'),
      headers: { 'content-type': `${form}; charset=UTF-16` },
    });
    assert.equal(utf16.status, 415);
    assert.match(utf16.text, /takes UTF-8 text/);
    const identity = await ask(`${s.url}/gcd`, {
      method: 'POST',
      body: 'n=4&m=6',
      headers: { 'content-type': form, 'content-encoding': 'identity' },
    });
    assert.equal(identity.status, 200);
  });

  test('a body over the limit gets 413', async () => {
    const res = await ask(`${s.url}/gcd`, {
      method: 'POST',
      body: `n=${'1'.repeat(5000)}&m=1`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(res.status, 413);
    assert.match(res.text, /GCD_ERR_BODY_TOO_LARGE/);
    assert.match(res.text, /larger than 4096 bytes/);
  });

  test('GET /gcd gets 405 with Allow: POST', async () => {
    const res = await ask(`${s.url}/gcd`);
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, 'POST');
  });
});

describe('unknown routes', () => {
  test('404 with an explanation of what exists', async () => {
    const res = await ask(`${s.url}/nope?x=1`);
    assert.equal(res.status, 404);
    const body = res.json<{ code: string; message: string }>();
    assert.equal(body.code, 'GCD_ERR_NOT_FOUND');
    assert.match(body.message, /GET \/api\/gcd\?n=12&m=18/);
    assertSecurityHeaders(res.headers);
  });

  test('a trailing slash is a different route', async () => {
    const res = await ask(`${s.url}/api/gcd/?n=1&m=2`);
    assert.equal(res.status, 404);
  });

  test('no stack traces, paths or versions in error bodies', async () => {
    for (const path of ['/nope', '/api/gcd?n=x&m=1', '/%']) {
      const res = await ask(`${s.url}${path}`);
      assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status}`);
      assert.doesNotMatch(res.text, /node_modules|\/work\/|at .*\.js:\d+|fastify@|v20\./);
    }
  });
});

describe('request limits', () => {
  test('a request head over MAX_HEADER_BYTES gets 431', async () => {
    const res = await ask(`${s.url}/`, { headers: { 'x-big': 'a'.repeat(20_000) } });
    assert.equal(res.status, 431);
  });
});
