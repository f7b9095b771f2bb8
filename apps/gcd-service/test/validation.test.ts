/**
 * The validation table, run three ways: on the parser, on `GET /api/gcd` (JSON) and on `POST /gcd`
 * (the form; its body uses the same encoding as a query string, so the same raw text is sent).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseGcdParams } from '../src/validation.js';
import { GcdError } from '../src/errors.js';
import { ask, start, type Running } from './helpers.js';

interface Bad {
  readonly name: string;
  /** Raw query string / form body. */
  readonly raw: string;
  readonly code: string;
  /** Words the explanation must contain. */
  readonly says: string;
}

const BAD: readonly Bad[] = [
  { name: 'zero', raw: 'n=0&m=5', code: 'GCD_ERR_ZERO', says: 'n is zero' },
  { name: 'zero written with several digits', raw: 'n=12&m=000', code: 'GCD_ERR_ZERO', says: 'm is zero' },
  { name: 'negative', raw: 'n=-4&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'negative numbers' },
  { name: 'letters', raw: 'n=abc&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'character 1 is not a digit' },
  { name: 'digits then letters', raw: 'n=12ab&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'character 3' },
  { name: 'hexadecimal', raw: 'n=0x1F&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'base 10' },
  { name: 'exponent', raw: 'n=1e5&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'exponent notation' },
  {
    name: 'exponent, capital E',
    raw: 'n=6&m=2E10',
    code: 'GCD_ERR_INVALID_NUMBER',
    says: 'exponent notation',
  },
  { name: 'decimal', raw: 'n=12.5&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'decimals' },
  { name: 'decimal point, no fraction', raw: 'n=12.&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'decimals' },
  { name: 'thousands separator', raw: 'n=1%2C000&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'separators' },
  { name: "leading '+'", raw: 'n=%2B12&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: "leading '+'" },
  {
    name: "a bare '+' (a space in a query)",
    raw: 'n=+12&m=6',
    code: 'GCD_ERR_INVALID_NUMBER',
    says: 'whitespace',
  },
  { name: 'leading space', raw: 'n=%2012&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'whitespace' },
  { name: 'trailing space', raw: 'n=12%20&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'whitespace' },
  { name: 'tab inside', raw: 'n=1%092&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'whitespace' },
  { name: 'newline', raw: 'n=12%0A&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'whitespace' },
  { name: 'NUL byte', raw: 'n=1%002&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'character 2' },
  {
    name: "Arabic-Indic digit '٣'",
    raw: 'n=%D9%A3&m=6',
    code: 'GCD_ERR_INVALID_NUMBER',
    says: 'U+0663',
  },
  {
    name: "fullwidth digit '３'",
    raw: 'n=1%EF%BC%93&m=6',
    code: 'GCD_ERR_INVALID_NUMBER',
    says: 'U+FF13',
  },
  { name: "Devanagari digit '७'", raw: 'n=6&m=%E0%A5%AD', code: 'GCD_ERR_INVALID_NUMBER', says: 'U+096D' },
  { name: "superscript '²'", raw: 'n=2%C2%B2&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'character 2' },
  { name: 'Infinity', raw: 'n=Infinity&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'not a digit' },
  { name: 'underscore separator', raw: 'n=1_000&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'character 2' },
  {
    name: 'over the digit cap',
    raw: `n=${'1'.repeat(1001)}&m=6`,
    code: 'GCD_ERR_TOO_MANY_DIGITS',
    says: '1001',
  },
  {
    name: 'over the cap and not a number',
    raw: `n=${'x'.repeat(1500)}&m=6`,
    code: 'GCD_ERR_TOO_MANY_DIGITS',
    says: 'at most 1000',
  },
  { name: 'n missing', raw: 'm=6', code: 'GCD_ERR_MISSING_PARAMETER', says: 'Parameter n is missing' },
  { name: 'm missing', raw: 'n=6', code: 'GCD_ERR_MISSING_PARAMETER', says: 'Parameter m is missing' },
  { name: 'both missing', raw: '', code: 'GCD_ERR_MISSING_PARAMETER', says: 'Parameter n' },
  { name: 'only other parameters', raw: 'a=1&b=2', code: 'GCD_ERR_MISSING_PARAMETER', says: 'Parameter n' },
  { name: 'repeated n', raw: 'n=1&n=2&m=3', code: 'GCD_ERR_REPEATED_PARAMETER', says: 'n was given 2 times' },
  {
    name: 'repeated m',
    raw: 'n=4&m=3&m=3&m=3',
    code: 'GCD_ERR_REPEATED_PARAMETER',
    says: 'm was given 3 times',
  },
  { name: 'empty n', raw: 'n=&m=6', code: 'GCD_ERR_INVALID_NUMBER', says: 'n is empty' },
  { name: 'empty m', raw: 'n=6&m=', code: 'GCD_ERR_INVALID_NUMBER', says: 'm is empty' },
  { name: 'prototype key', raw: '__proto__=1&n=2&m=4&constructor=x', code: '', says: '' },
];

interface Good {
  readonly raw: string;
  readonly n: string;
  readonly m: string;
  readonly gcd: string;
}

const U64_MAX = (2n ** 64n - 1n).toString();
const GOOD: readonly Good[] = [
  { raw: 'n=12&m=18', n: '12', m: '18', gcd: '6' },
  { raw: 'n=1&m=1', n: '1', m: '1', gcd: '1' },
  { raw: 'n=007&m=21', n: '7', m: '21', gcd: '7' },
  { raw: `n=${U64_MAX}&m=${U64_MAX}`, n: U64_MAX, m: U64_MAX, gcd: U64_MAX },
  // 2^64 − 1 = (2^32 − 1)(2^32 + 1)
  { raw: `n=${U64_MAX}&m=4294967295`, n: U64_MAX, m: '4294967295', gcd: '4294967295' },
  { raw: `n=${U64_MAX}&m=18446744073709551614`, n: U64_MAX, m: '18446744073709551614', gcd: '1' },
  // beyond u64: 10^30 and 10^20
  {
    raw: `n=1${'0'.repeat(30)}&m=1${'0'.repeat(20)}`,
    n: `1${'0'.repeat(30)}`,
    m: `1${'0'.repeat(20)}`,
    gcd: `1${'0'.repeat(20)}`,
  },
  // exactly at the digit cap (computed in the worker pool)
  {
    raw: `n=${'9'.repeat(1000)}&m=${'3'.repeat(1000)}`,
    n: '9'.repeat(1000),
    m: '3'.repeat(1000),
    gcd: '3'.repeat(1000),
  },
  // extra parameters are ignored
  { raw: 'n=10&m=4&x=1', n: '10', m: '4', gcd: '2' },
];

function paramsOf(raw: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null);
  for (const [k, v] of new URLSearchParams(raw)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

describe('parser', () => {
  for (const bad of BAD.filter((b) => b.code !== '')) {
    test(`rejects ${bad.name} with ${bad.code}`, () => {
      assert.throws(
        () => parseGcdParams(paramsOf(bad.raw), 1000),
        (error: unknown) => {
          assert.ok(error instanceof GcdError);
          assert.equal(error.code, bad.code);
          assert.equal(error.statusCode, 400);
          assert.ok(error.message.includes(bad.says), `"${error.message}" should say "${bad.says}"`);
          return true;
        },
      );
    });
  }

  for (const good of GOOD) {
    test(`accepts ${good.raw.slice(0, 40)}`, () => {
      const input = parseGcdParams(paramsOf(good.raw), 1000);
      assert.equal(input.n, good.n);
      assert.equal(input.m, good.m);
    });
  }

  test('an oversized input is refused before it is looked at (its length, not its characters)', () => {
    // 1 MB of characters that are not digits: refused as too long, so its content was never scanned.
    const junk = '٣'.repeat(1_000_000);
    assert.throws(() => parseGcdParams({ n: junk, m: '1' }, 1000), { code: 'GCD_ERR_TOO_MANY_DIGITS' });
  });

  test('a non-string value (JSON number) is refused', () => {
    assert.throws(() => parseGcdParams({ n: 12, m: '1' }, 1000), { code: 'GCD_ERR_INVALID_NUMBER' });
  });

  test('the received value is shown truncated', () => {
    assert.throws(
      () => parseGcdParams({ n: `a${'b'.repeat(200)}`, m: '1' }, 1000),
      (error: GcdError) =>
        error.message.includes('"abbbbbbbbbbbbbbbbbbbbbbb…"') && error.message.length < 200,
    );
  });
});

describe('over HTTP', () => {
  let s: Running;
  before(async () => {
    s = await start();
  });
  after(() => s.close());

  for (const bad of BAD) {
    test(`GET /api/gcd: ${bad.name}`, async () => {
      const res = await ask(`${s.url}/api/gcd?${bad.raw}`);
      if (bad.code === '') {
        assert.equal(res.status, 200);
        assert.deepEqual(res.json(), { n: '2', m: '4', gcd: '2' });
        return;
      }
      assert.equal(res.status, 400, res.text);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      const body = res.json<{ statusCode: number; code: string; error: string; message: string }>();
      assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode']);
      assert.equal(body.statusCode, 400);
      assert.equal(body.error, 'Bad Request');
      assert.equal(body.code, bad.code);
      assert.ok(body.message.includes(bad.says), body.message);
    });

    test(`POST /gcd: ${bad.name}`, async () => {
      const res = await ask(`${s.url}/gcd`, {
        method: 'POST',
        body: bad.raw,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      if (bad.code === '') {
        assert.equal(res.status, 200);
        assert.match(res.text, /<strong class="number" id="gcd">2<\/strong>/);
        return;
      }
      assert.equal(res.status, 400);
      assert.match(String(res.headers['content-type']), /^text\/html/);
      assert.match(
        res.text,
        new RegExp(`<div class="error" id="error" role="alert" data-code="${bad.code}" data-status="400">`),
        'the page carries the code for machines',
      );
    });
  }

  for (const good of GOOD) {
    test(`GET /api/gcd?${good.raw.slice(0, 40)} → ${good.gcd.slice(0, 20)}`, async () => {
      const res = await ask(`${s.url}/api/gcd?${good.raw}`);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json(), { n: good.n, m: good.m, gcd: good.gcd });
    });
  }
});
