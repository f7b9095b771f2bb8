import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { hidePasswords } from './passwords.js';

/** many-requests' expression before the package (any scheme, any case): quadratic on a long run of letters. */
const reference = (text: string): string =>
  text.replace(/([a-z][a-z0-9+.-]*:\/\/[^/?#@:\s"]*):[^/?#@\s"]*@/gi, '$1:***@');

test('hides the password of every user:pass@, any scheme, any case, where a URL starts', () => {
  assert.equal(
    hidePasswords('GET http://u:p@h/x failed; "HTTPS://a:b:c@m/" then ftp://x:y@z'),
    'GET http://u:***@h/x failed; "HTTPS://a:***@m/" then ftp://x:***@z',
  );
  assert.equal(hidePasswords('1http://u:p@h'), '1http://u:***@h');
  assert.equal(hidePasswords('123://u:p@h http://u@h http://h/@x'), '123://u:p@h http://u@h http://h/@x');
});

test('hides exactly what the plain expression hides', () => {
  const chars = fc.constantFrom(...'aH1+.-:/@?#" pZ'.split(''), '://', 'http://', 'u:p@');
  fc.assert(
    fc.property(fc.array(chars, { maxLength: 30 }), (parts) => {
      const text = parts.join('');
      assert.equal(hidePasswords(text), reference(text));
    }),
    { numRuns: 20_000 },
  );
});

test('a 100 KB URL is one pass over it, and its password is still hidden', () => {
  const url = `http://u:secret@127.0.0.1:1/${'a'.repeat(100_000)}`;
  assert.equal(hidePasswords(url), url.replace(':secret@', ':***@'));
});
