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
import { createHmac, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { circuitBreaker, type CircuitStateChangeEvent } from '@bulwark/core';
import { FakeClock } from '@bulwark/core/testing';
import {
  FleetBreaker,
  type FleetErrorEvent,
  type FleetMalformedEvent,
  type FleetTripEvent,
} from './fleet-breaker.js';
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

  it('every malformed message is counted and reported cheaply (no Error, no stack), and ignored', async () => {
    const b = breaker(`${name}-bad`, new FakeClock());
    const l = link(b, 'b');
    await l.ready();
    const errors: FleetErrorEvent[] = [];
    l.onError((e) => errors.push(e));
    const seen: FleetMalformedEvent[] = [];
    const all = new Promise<void>((resolve) => {
      l.onMalformed((e) => {
        seen.push(e);
        if (e.count === 50) resolve();
      });
    });
    await admin.publish(l.channel, '{"v":1,"instance":"x","reason":"r","openDurationMs":"soon"}');
    await admin.publish(l.channel, 'x'.repeat(10_000));
    const flood = admin.pipeline();
    for (let i = 0; i < 48; i++) flood.publish(l.channel, `garbage ${i}`);
    await flood.exec();
    await all;
    assert.equal(l.malformed, 50, 'every one counted');
    assert.deepEqual(
      seen.map((e) => e.count),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    assert.deepEqual(Object.keys(seen[0]!).sort(), ['count', 'reason', 'sample', 'via']);
    assert.equal(seen[0]!.reason, 'malformed');
    assert.equal(seen[0]!.via, 'message');
    assert.ok(seen[1]!.sample.length <= 201, 'a sample, not the whole message');
    assert.equal(seen[2]!.sample, 'garbage 0');
    assert.deepEqual(errors, [], 'a bad message is not a Redis failure');
    assert.equal(b.state, 'closed');
  });

  it('with a secret: signed trips are applied; unsigned, badly signed or stale ones are malformed', async () => {
    const secretName = `${name}-signed`;
    const secret = 'a-shared-secret-of-the-fleet';
    const a = breaker(secretName, new FakeClock());
    const b = breaker(secretName, new FakeClock());
    const linkA = new FleetBreaker({ breaker: a, url: REDIS_URL, instanceId: 'a', secret });
    const linkB = new FleetBreaker({ breaker: b, url: REDIS_URL, instanceId: 'b', secret });
    links.push(linkA, linkB);
    await Promise.all([linkA.ready(), linkB.ready()]);
    const rejected: FleetMalformedEvent[] = [];
    linkB.onMalformed((e) => rejected.push(e));
    const remote: FleetTripEvent[] = [];
    linkB.onRemoteTrip((e) => remote.push(e));
    const fake = { v: 1, instance: 'evil', reason: 'forged', openDurationMs: 1000 };
    const sign = (key: string, sentAt: number, channel = linkB.channel) =>
      createHmac('sha256', key)
        .update(JSON.stringify([1, channel, fake.instance, fake.reason, fake.openDurationMs, sentAt]))
        .digest('base64url');
    const now = Date.now();
    const forged = [
      JSON.stringify(fake), // unsigned, well-formed: what RT-14 F5 sent
      JSON.stringify({ ...fake, sentAt: now, mac: sign('not-the-fleet-secret', now) }),
      JSON.stringify({ ...fake, sentAt: now, mac: sign(secret, now, 'bulwark:breaker:another') }),
      JSON.stringify({ ...fake, sentAt: now + 1, mac: sign(secret, now) }), // the time changed
      JSON.stringify({ ...fake, sentAt: now - 120_000, mac: sign(secret, now - 120_000) }), // a replay
    ];
    const allRejected = next(linkB.onMalformed, (e) => e.count === forged.length);
    for (const message of forged) await admin.publish(linkB.channel, message);
    await allRejected;
    assert.deepEqual(
      rejected.map((e) => e.reason),
      ['unauthenticated', 'unauthenticated', 'unauthenticated', 'unauthenticated', 'stale'],
    );
    assert.deepEqual(remote, []);
    assert.equal(b.state, 'closed', 'no forged message opened it');

    // A genuine trip, signed by A, opens B.
    const learnt = next(linkB.onRemoteTrip);
    await trip(a);
    const got = await learnt;
    assert.equal(got.applied, true);
    assert.equal(got.trip.instance, 'a');
    assert.equal(b.state, 'open');
    await admin.del(linkB.channel);
  });

  it('a remote open disproved by its own probe mutes remote trips (renewed while they keep coming)', async () => {
    const muteName = `${name}-mute`;
    const clock = new FakeClock();
    const b = breaker(muteName, clock);
    const l = new FleetBreaker({ breaker: b, url: REDIS_URL, instanceId: 'b', clock, remoteMuteMs: 5_000 });
    links.push(l);
    await l.ready();
    const forged = JSON.stringify({ v: 1, instance: 'evil', reason: 'forged', openDurationMs: 1 });
    const forge = async () => {
      const heard = next(l.onRemoteTrip);
      await admin.publish(l.channel, forged);
      return heard;
    };
    // The first forged trip opens it (nothing tells it from a real one)...
    assert.equal((await forge()).applied, true);
    assert.equal(b.state, 'open');
    // ...its own probe then finds the dependency healthy: it closes and mutes remote trips.
    clock.advance(OPEN_MS);
    await b.execute(() => 'ok');
    assert.equal(b.state, 'closed');
    assert.equal(l.muted, true);
    for (let i = 0; i < 3; i++) {
      clock.advance(4_000); // within the mute, renewed by each trip ignored
      const e = await forge();
      assert.deepEqual({ applied: e.applied, muted: e.muted }, { applied: false, muted: true });
      assert.equal(b.state, 'closed', 'a healthy dependency stays closed while forged trips keep coming');
    }
    // Its own failures still open it (and are published).
    const published = next(l.onPublish);
    await trip(b);
    await published;
    clock.advance(OPEN_MS);
    await b.execute(() => 'ok');
    assert.equal(b.state, 'closed');
    // Quiet for the whole mute: remote trips apply again.
    clock.advance(5_000);
    assert.equal(l.muted, false);
    const e = await forge();
    assert.deepEqual({ applied: e.applied, muted: e.muted }, { applied: true, muted: false });
    assert.equal(b.state, 'open');
    // A remote open its own probe confirms (the probe fails) does not mute.
    clock.advance(OPEN_MS);
    await b
      .execute(() => {
        throw new Error('dependency down');
      })
      .catch(() => undefined);
    assert.equal(b.state, 'open');
    assert.equal(l.muted, false);
    await admin.del(l.channel);
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
    assert.throws(
      () => new FleetBreaker({ breaker: b, url: REDIS_URL, secret: 'short-secret' }),
      (e: Error) =>
        /fleetBreaker\.secret.*at least 16 characters/.test(e.message) && !e.message.includes('short-secret'),
    );
    assert.throws(() => new FleetBreaker({ breaker: b, url: REDIS_URL, remoteMuteMs: -1 }), /remoteMuteMs/);
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
