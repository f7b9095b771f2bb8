/**
 * Fleet-shared breaker state (issue 14, item 7), against real Redis: the suite's Redis (REDIS_URL) for
 * sharing, and a redis-server this file starts on a free loopback port for Redis going away and coming
 * back. Breakers run on fake clocks (each instance its own), so "each probes on its own schedule" is
 * checked by moving one clock and not the other. Every wait is on an event.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { circuitBreaker, type CircuitStateChangeEvent } from '@bulwark/core';
import { FakeClock } from '@bulwark/core/testing';
import { FleetBreaker, type FleetErrorEvent, type FleetTripEvent } from './fleet-breaker.js';
import { freePort, REDIS_URL, redisForTests } from './test-support.js';

const OPEN_MS = 1000;

function breaker(name: string, clock: FakeClock) {
  return circuitBreaker({
    name,
    clock,
    strategy: { type: 'consecutive', threshold: 2 },
    openDurationMs: OPEN_MS,
    openDurationBackoff: { multiplier: 1, maxOpenDurationMs: OPEN_MS },
    halfOpenPermits: 1,
  });
}

/** Trips a breaker with its own failures (two in a row). */
async function trip(b: ReturnType<typeof breaker>): Promise<void> {
  for (let i = 0; i < 2; i++) {
    await b
      .execute(() => {
        throw new Error('dependency down');
      })
      .catch(() => undefined);
  }
  assert.equal(b.state, 'open');
}

/** The next event of a subscription (with a filter). */
function next<T>(
  subscribe: (l: (e: T) => void) => { dispose(): void },
  test: (e: T) => boolean = () => true,
) {
  return new Promise<T>((resolve) => {
    const sub = subscribe((e) => {
      if (!test(e)) return;
      sub.dispose();
      resolve(e);
    });
  });
}

describe('fleet-shared breaker through Redis (REDIS_URL)', () => {
  const name = `fleet-test-${randomUUID()}`;
  const links: FleetBreaker[] = [];
  let admin: Redis;

  before(async () => {
    admin = await redisForTests(); // a clear failure within seconds when there is no Redis
  });
  after(async () => {
    for (const l of links) await l.close();
    await admin?.del(`bulwark:breaker:${name}`);
    admin?.disconnect();
  });

  function link(b: ReturnType<typeof breaker>, instanceId: string): FleetBreaker {
    const l = new FleetBreaker({ breaker: b, url: REDIS_URL, instanceId });
    links.push(l);
    return l;
  }

  it('a trip on one instance opens the other; each probes on its own schedule; nothing echoes', async () => {
    const clockA = new FakeClock();
    const clockB = new FakeClock();
    const a = breaker(name, clockA);
    const b = breaker(name, clockB);
    const linkA = link(a, 'a');
    const linkB = link(b, 'b');
    await Promise.all([linkA.ready(), linkB.ready()]);
    const errors: FleetErrorEvent[] = [];
    for (const l of [linkA, linkB]) l.onError((e) => errors.push(e));
    const echoes: FleetTripEvent[] = [];
    linkA.onRemoteTrip((e) => echoes.push(e));
    const bPublished: unknown[] = [];
    linkB.onPublish((e) => bPublished.push(e));

    const learnt = next(linkB.onRemoteTrip);
    const bOpened = next<CircuitStateChangeEvent>(b.onStateChange, (e) => e.to === 'open');
    const published = next(linkA.onPublish);
    await trip(a);
    const sent = await published;
    assert.equal(sent.trip.instance, 'a');
    assert.equal(sent.trip.reason, 'consecutive-failures');
    assert.ok(sent.receivers >= 2, `delivered to both subscribers (${sent.receivers})`);

    const got = await learnt;
    assert.deepEqual(
      { via: got.via, applied: got.applied, instance: got.trip.instance },
      {
        via: 'message',
        applied: true,
        instance: 'a',
      },
    );
    const change = await bOpened;
    assert.equal(change.reason, 'manual-open');
    assert.equal(change.by, 'fleet:a');
    assert.match(change.note ?? '', /consecutive-failures on a/);
    assert.equal(b.state, 'open');

    // B's own schedule: its clock moves, A's does not.
    clockB.advance(OPEN_MS);
    assert.equal(b.state, 'half-open', 'B probes after its own open duration');
    assert.equal(a.state, 'open', 'A is on its own clock');
    // B's probe passes: B closes by itself, A is untouched.
    await b.execute(() => 'ok');
    assert.equal(b.state, 'closed');
    assert.equal(a.state, 'open');

    // The remote open was never published again (no echo back to A).
    assert.equal(bPublished.length, 0);
    assert.equal(echoes.length, 0);
    assert.deepEqual(errors, []);
  });

  it('an instance that starts while the dependency is tripped learns it from the key', async () => {
    const lateName = `${name}-late`;
    const a = breaker(lateName, new FakeClock());
    const linkA = new FleetBreaker({ breaker: a, url: REDIS_URL, instanceId: 'a' });
    links.push(linkA);
    await linkA.ready();
    const published = next(linkA.onPublish);
    await trip(a);
    await published;
    const c = breaker(lateName, new FakeClock());
    const linkC = new FleetBreaker({ breaker: c, url: REDIS_URL, instanceId: 'c' });
    links.push(linkC);
    const learnt = next(linkC.onRemoteTrip);
    await linkC.ready();
    const got = await learnt;
    assert.equal(got.via, 'key');
    assert.equal(got.applied, true);
    assert.equal(c.state, 'open');
    assert.ok(
      (await admin.pttl(`bulwark:breaker:${lateName}`)) <= OPEN_MS,
      'the key lives one open duration',
    );
    await admin.del(`bulwark:breaker:${lateName}`);
  });

  it('a malformed message is reported and ignored', async () => {
    const b = breaker(`${name}-bad`, new FakeClock());
    const l = link(b, 'b');
    await l.ready();
    const error = next(l.onError);
    await admin.publish(l.channel, '{"v":1,"instance":"x","reason":"r","openDurationMs":"soon"}');
    const e = await error;
    assert.equal(e.during, 'message');
    assert.equal(b.state, 'closed');
  });

  it('checks its options', () => {
    const b = breaker('x', new FakeClock());
    assert.throws(() => new FleetBreaker({ breaker: b }), /fleetBreaker\.url/);
    assert.throws(() => new FleetBreaker({ breaker: b, url: 'http://x' }), /redis:\/\/ or rediss:\/\//);
    assert.throws(
      () => new FleetBreaker({ breaker: {} as never, url: REDIS_URL }),
      /fleetBreaker\.breaker.*circuit breaker/,
    );
    assert.throws(() => new FleetBreaker({ breaker: b, url: REDIS_URL, oops: 1 } as never), /oops/);
  });
});

describe('fleet-shared breaker: Redis going away and coming back (a redis-server of this test)', () => {
  let dir: string;
  let port: number;
  let redis: ChildProcess | undefined;
  const links: FleetBreaker[] = [];

  async function startRedis(): Promise<void> {
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.once('error', () => {});
    let output = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (c: Buffer) => {
        output += c.toString();
        if (output.includes('Ready to accept connections')) resolve();
      });
      child.once('exit', (code) =>
        reject(new Error(`redis-server (Debian: apt-get install redis-server) exited ${code}:\n${output}`)),
      );
    });
    redis = child;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-fleet-'));
    port = await freePort();
    await startRedis();
  });
  after(async () => {
    for (const l of links) await l.close();
    if (redis?.exitCode === null) {
      redis.kill('SIGKILL');
      await once(redis, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('with Redis down each instance keeps its local breaker; once it is back, trips are shared again', async () => {
    const url = `redis://127.0.0.1:${port}`;
    const clockA = new FakeClock();
    const clockB = new FakeClock();
    const a = breaker('dep', clockA);
    const b = breaker('dep', clockB);
    const linkA = new FleetBreaker({ breaker: a, url, instanceId: 'a' });
    const linkB = new FleetBreaker({ breaker: b, url, instanceId: 'b' });
    links.push(linkA, linkB);
    await Promise.all([linkA.ready(), linkB.ready()]);

    // Redis dies.
    const lostA = next(linkA.onError, (e) => e.during === 'connection');
    const lostB = next(linkB.onError, (e) => e.during === 'connection');
    redis!.kill('SIGKILL');
    await once(redis!, 'exit');
    await Promise.all([lostA, lostB]);

    // A trips: its own breaker opens; the publish fails and is reported; B is not touched.
    const publishFailed = next(linkA.onError, (e) => e.during === 'publish');
    await trip(a);
    await publishFailed;
    assert.equal(b.state, 'closed', 'B did not hear of it');
    // B's breaker still decides on its own failures.
    await trip(b);
    assert.equal(b.state, 'open');
    // Both close on their own schedules.
    clockA.advance(OPEN_MS);
    clockB.advance(OPEN_MS);
    await a.execute(() => 'ok');
    await b.execute(() => 'ok');
    assert.equal(a.state, 'closed');
    assert.equal(b.state, 'closed');

    // Redis comes back (empty) on the same port: the links reconnect and subscribe again by themselves.
    const backB = next(linkB.onSubscribe);
    const backA = next(linkA.onSubscribe);
    await startRedis();
    await Promise.all([backA, backB]);

    const learnt = next(linkB.onRemoteTrip, (e) => e.via === 'message');
    await trip(a);
    const got = await learnt;
    assert.equal(got.applied, true);
    assert.equal(b.state, 'open');
  });
});
