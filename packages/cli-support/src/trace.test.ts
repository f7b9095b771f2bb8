import { it } from 'node:test';
import assert from 'node:assert/strict';
import { traceFromEnv, withTrace } from './trace.js';

const CALLER = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

it('continues the caller’s trace: same trace id and flags, a new span id for the run', () => {
  const t = traceFromEnv({ TRACEPARENT: CALLER, TRACESTATE: 'vendor=x' }, () => '1234567890abcdef');
  assert.ok(t !== undefined && 'traceId' in t);
  assert.equal(t.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.deepEqual(t.headers, {
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-1234567890abcdef-01',
    tracestate: 'vendor=x',
  });
});

it('unset or empty: nothing; invalid: a problem and no header', () => {
  assert.equal(traceFromEnv({}), undefined);
  assert.equal(traceFromEnv({ TRACEPARENT: '' }), undefined);
  for (const bad of [
    'x',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
  ]) {
    const t = traceFromEnv({ TRACEPARENT: bad });
    assert.ok(t !== undefined && 'problem' in t, bad);
    assert.match(t.problem, /TRACEPARENT is not a W3C traceparent/);
  }
  // a later version may carry more fields: the first four are read
  const later = traceFromEnv({ TRACEPARENT: `01-${CALLER.slice(3)}-more` }, () => 'aaaaaaaaaaaaaaaa');
  assert.ok(later !== undefined && 'traceId' in later);
});

it('a traceparent the user sets with -H wins; others are merged', () => {
  const t = traceFromEnv({ TRACEPARENT: CALLER }, () => '1234567890abcdef');
  assert.ok(t !== undefined && 'traceId' in t);
  assert.deepEqual(withTrace({ TraceParent: 'mine' }, t), { TraceParent: 'mine' });
  assert.deepEqual(withTrace({ a: '1' }, t), { a: '1', traceparent: t.headers['traceparent'] });
  assert.equal(withTrace(undefined, undefined), undefined);
});
