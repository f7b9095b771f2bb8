// The HTTP classification (classify.ts): retryable statuses, host failures, Retry-After.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CircuitOpenError, type CallContext, type Outcome } from '@bulwark/core';
import {
  HOST_FAILURE_CLASSIFY,
  isHostFailureStatus,
  isRetryableStatus,
  parseRetryAfter,
} from './classify.js';
import { HttpBodyTooLargeError, HttpNetworkError, HttpStatusError } from './errors.js';

test('parseRetryAfter: delay-seconds', () => {
  assert.equal(parseRetryAfter('0'), 0);
  assert.equal(parseRetryAfter('120'), 120_000);
  assert.equal(parseRetryAfter(' 3 '), 3000);
  assert.equal(parseRetryAfter(['7', '9']), 7000);
});

test('parseRetryAfter: HTTP-date relative to now, never negative', () => {
  const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now), 0);
});

test('parseRetryAfter: absent or unparsable → undefined', () => {
  for (const bad of [undefined, '', '  ', '-1', '1.5', 'soon', '12abc', '2015-10-21'])
    assert.equal(parseRetryAfter(bad, 0), undefined, String(bad));
});

test('statuses: retryable ones, and the host failures (every 5xx, 408/425/429)', () => {
  for (const s of [408, 425, 429, 500, 502, 503, 504]) assert.ok(isRetryableStatus(s), String(s));
  for (const s of [200, 304, 400, 404, 501, 505]) assert.ok(!isRetryableStatus(s), String(s));
  for (const s of [408, 425, 429, 500, 501, 502, 503, 504, 505, 599])
    assert.ok(isHostFailureStatus(s), String(s));
  for (const s of [200, 301, 400, 401, 403, 404, 410, 422]) assert.ok(!isHostFailureStatus(s), String(s));
});

test('HOST_FAILURE_CLASSIFY: what counts against a host', () => {
  const ctx = {} as CallContext;
  const of = (error: unknown) => HOST_FAILURE_CLASSIFY({ ok: false, error } as Outcome, ctx);
  assert.equal(of(new HttpStatusError(503, 'http://x/')), 'failure');
  assert.equal(of(new HttpStatusError(501, 'http://x/')), 'failure');
  assert.equal(of(new HttpStatusError(429, 'http://x/')), 'failure');
  assert.equal(of(new HttpStatusError(404, 'http://x/')), 'success');
  assert.equal(of(new HttpNetworkError('connection-reset', 'http://x/', 'ECONNRESET')), 'failure');
  assert.equal(of(new HttpNetworkError('protocol', 'http://x/', undefined)), 'failure');
  assert.equal(of(new HttpBodyTooLargeError(10, 'http://x/')), 'success');
  assert.equal(of(new CircuitOpenError(1)), 'ignore');
  assert.equal(HOST_FAILURE_CLASSIFY({ ok: true, value: 1 } as Outcome, ctx), 'success');
});
