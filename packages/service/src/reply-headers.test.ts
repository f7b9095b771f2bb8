import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Fastify, { type FastifyReply } from 'fastify';
import { directHeadersInUse, FixedHeaders, setHeader } from './reply-headers.js';

/** A reply without Fastify's header object: records `header()` calls (the fallback path). */
function fakeReply(): { reply: FastifyReply; headers: Record<string, unknown>; calls: string[] } {
  const headers: Record<string, unknown> = {};
  const calls: string[] = [];
  const reply = {
    header(name: string, value: unknown) {
      calls.push(name);
      headers[name.toLowerCase()] = value;
      return reply;
    },
  } as unknown as FastifyReply;
  return { reply, headers, calls };
}

const PAIRS = [
  ['x-frame-options', 'SAMEORIGIN'],
  ['referrer-policy', 'no-referrer'],
] as const;

describe('FixedHeaders', () => {
  it("writes into Fastify's own header object: same headers, same order, later writers still win", async () => {
    const fixed = new FixedHeaders('X-Request-Id', PAIRS);
    const app = Fastify();
    let direct: boolean | undefined;
    app.addHook('onRequest', (_request, reply, done) => {
      reply.header('referrer-policy', 'earlier'); // set before the fixed headers: replaced
      reply.header('x-earlier', '1');
      done();
    });
    app.get(
      '/',
      { onRequest: (request, reply, done) => (fixed.apply(reply, request.id), done()) },
      (_q, reply) => {
        direct = directHeadersInUse(reply);
        setHeader(reply, 'ratelimit-remaining', 7);
        reply.header('x-frame-options', 'DENY'); // the handler overrides a fixed header
        return 'ok';
      },
    );
    const res = await app.inject({ method: 'GET', url: '/' });
    assert.equal(direct, true, "the kit finds Fastify's header object (else it is only slower)");
    assert.match(String(res.headers['x-request-id']), /^req-/);
    assert.equal(res.headers['referrer-policy'], 'no-referrer');
    assert.equal(res.headers['x-earlier'], '1');
    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.equal(res.headers['ratelimit-remaining'], '7');
    const names = Object.keys(res.headers);
    assert.ok(names.indexOf('x-request-id') < names.indexOf('x-frame-options'));
    await app.close();
  });

  it('falls back to reply.header() where the header object is missing, in the same order', () => {
    const { reply, headers, calls } = fakeReply();
    new FixedHeaders('x-request-id', PAIRS).apply(reply, 'id-1');
    setHeader(reply, 'ratelimit-limit', 40);
    assert.deepEqual(calls, ['x-request-id', 'x-frame-options', 'referrer-policy', 'ratelimit-limit']);
    assert.deepEqual(headers, {
      'x-request-id': 'id-1',
      'x-frame-options': 'SAMEORIGIN',
      'referrer-policy': 'no-referrer',
      'ratelimit-limit': 40,
    });
  });

  it('a fixed header named like the variable one replaces it; set-cookie goes through reply.header()', async () => {
    const app = Fastify();
    const replaced = new FixedHeaders('x-request-id', [['x-request-id', 'fixed']]);
    const cookies = new FixedHeaders('x-request-id', [['set-cookie', 'a=1']]);
    app.get(
      '/replaced',
      { onRequest: (_q, reply, done) => (replaced.apply(reply, 'dynamic'), done()) },
      () => 'ok',
    );
    app.get(
      '/cookies',
      {
        onRequest: (_q, reply, done) => {
          reply.header('set-cookie', 'b=2');
          cookies.apply(reply, 'dynamic');
          done();
        },
      },
      () => 'ok',
    );
    assert.equal((await app.inject('/replaced')).headers['x-request-id'], 'fixed');
    const res = await app.inject('/cookies');
    assert.deepEqual(res.headers['set-cookie'], ['b=2', 'a=1']);
    assert.equal(res.headers['x-request-id'], 'dynamic');
    await app.close();
  });
});
