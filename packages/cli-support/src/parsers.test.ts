import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from 'commander';
import { MAX_MS, certificates, decimal, header, integer, nonEmpty, seconds, userAgent } from './parsers.js';

const message = (parse: () => unknown): string => {
  try {
    parse();
  } catch (error) {
    assert.ok(error instanceof InvalidArgumentError);
    return error.message;
  }
  assert.fail('accepted');
};

test('integers, decimals and seconds: the value, or what is allowed', () => {
  assert.equal(integer(0, 100)(' 7 '), 7);
  assert.equal(
    message(() => integer(1, 10)('1.5')),
    'expected an integer from 1 to 10.',
  );
  assert.equal(
    message(() => integer(1, MAX_MS, 'milliseconds')('0')),
    'expected an integer number of milliseconds from 1 to 2147483647.',
  );
  assert.equal(decimal(0, 100)('.5'), 0.5);
  assert.equal(
    message(() => decimal(0, 100)('1e2')),
    'expected a decimal number from 0 to 100.',
  );
  assert.equal(
    message(() => decimal(0, 5, true)('0')),
    'expected a decimal number greater than 0 and at most 5.',
  );
  assert.equal(seconds()('2.5'), 2500);
  assert.equal(seconds(0)('0'), 0);
  assert.equal(
    message(() => seconds()('0.0004')),
    'expected a number of seconds, decimals allowed (e.g. 2.5), from 0.001 to 2147483.647.',
  );
  // the range holds for the value given, not for its rounding (red-team RT-3 F6)
  assert.match(
    message(() => seconds()('0.0005')),
    /from 0\.001 to/,
  );
  assert.match(
    message(() => seconds()('2147483.6474')),
    /to 2147483\.647/,
  );
  assert.equal(seconds()('2147483.647'), MAX_MS);
  assert.equal(
    message(() => seconds(0)('-1')),
    'expected a number of seconds, decimals allowed (e.g. 2.5), from 0 to 2147483.647.',
  );
});

test('headers, user agents, paths and certificates', () => {
  assert.deepEqual(header('x', true)('X-A:  b '), ['x-a', 'b']);
  assert.deepEqual(header('x', true)('Accept:'), ['accept', '']);
  assert.match(
    message(() => header('x', true)('nope')),
    /\(or "Name:" to remove a default header\)\.$/,
  );
  assert.match(
    message(() => header('x', false)('nope')),
    /\|~-\.$/,
  );
  assert.equal(
    message(() => header('many-requests', false)('Connection: close')),
    'expected a header many-requests does not manage itself; Connection is set by the HTTP client.',
  );
  assert.equal(
    message(() => userAgent('a\r\nb')),
    'expected a User-Agent without CR, LF or NUL.',
  );
  assert.equal(
    message(() => nonEmpty('file path')(' ')),
    'expected a file path, not an empty string.',
  );
  assert.match(
    message(() => certificates('/nonexistent/ca.pem')),
    /cannot read it \(ENOENT\)\.$/,
  );
  assert.match(
    message(() => certificates('/')),
    /cannot read it \(it is a directory\)\.$/,
  );
});
