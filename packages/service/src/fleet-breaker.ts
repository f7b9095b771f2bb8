/**
 * Fleet-shared breaker state through Redis (issue 14, item 7): when one instance's breaker for a
 * dependency trips, every other instance sharing the link learns it at once and opens its own breaker
 * too — and each still probes on its own schedule (`breaker.open()` behaves as a trip: after its own open
 * duration it goes half-open and probes by itself).
 *
 * How:
 * - A trip of this instance's own (any `closed → open` whose reason is not `'manual-open'`) is published
 *   on the channel `<keyPrefix><name>` as a small JSON message, and written to the key `<keyPrefix><name>`
 *   with a TTL of the trip's open duration, so an instance that starts (or reconnects) while the
 *   dependency is tripped learns it from the key.
 * - A message (or the key) from another instance is applied with `breaker.open({ by: 'fleet:<id>' })`,
 *   which does nothing unless the breaker is closed. Remote opens are `'manual-open'` here, so they are
 *   never published again (no echo between instances).
 * - Redis is a messenger, never a dependency: every failure (down, slow) is reported on `onError`, every
 *   malformed message is counted and reported on `onMalformed` (cheaply: no stack, a cut sample), and the
 *   local breaker goes on deciding by itself. The subscriber reconnects by itself (ioredis),
 *   re-subscribes, and reads the key again to catch up with what it missed.
 *
 * Trust (RT-14): whoever can PUBLISH on the channel can open every instance's breaker. Two bounds:
 * - `secret`: trips carry an HMAC-SHA256 (node:crypto) over their fields, the channel and the time they
 *   were sent; a message without a valid MAC, or sent too long ago (a replay), is malformed and ignored.
 * - Without a secret too: a remote open that this instance's own probe disproved (the breaker went
 *   half-open → closed after it) mutes remote opens for `remoteMuteMs`, renewed by every remote trip
 *   ignored meanwhile — forged trips can open the breakers once, not hold them open while the dependency
 *   answers. The instance's own breaker still trips (and publishes) on its own failures.
 *
 * ioredis is an optional peer dependency, loaded only when a link is made with `url`.
 */
import { hostname } from 'node:os';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type * as IORedis from 'ioredis';
import type { Redis } from 'ioredis';
import { InvalidOptionError, type Clock, type Subscribe } from '@bulwark/core';
import { checks, EventEmitter } from '@bulwark/core/internal';
import { loadOptional, REDIS_PACKAGES } from './optional.js';
import { redactUrl, redisClientOptions } from './rate-limit/redis-store.js';

/** What the link needs of a breaker (core's `circuitBreaker()` has it). */
export interface FleetBreakerTarget {
  readonly name: string;
  readonly state: string;
  open(options?: { by?: string; note?: string }): boolean;
  readonly onStateChange: Subscribe<{
    readonly from: string;
    readonly to: string;
    readonly reason: string;
    readonly openDurationMs: number | undefined;
  }>;
}

export interface FleetBreakerOptions {
  /** The breaker whose trips are shared. */
  breaker: FleetBreakerTarget;
  /** `redis://…` or `rediss://…`. One of `url` / `client` is required. */
  url?: string;
  /**
   * An ioredis client to publish and read with (never closed by the link). Subscribing needs a connection
   * of its own: the link makes it with `client.duplicate()`.
   */
  client?: Redis;
  /** What every instance sharing this dependency calls it. @default the breaker's name */
  name?: string;
  /** This instance, as others see it (in `by: 'fleet:<instanceId>'`). @default `<hostname>:<pid>:<random>` */
  instanceId?: string;
  /** Prefix of the channel and key. @default 'bulwark:breaker:' */
  keyPrefix?: string;
  /** A Redis command that takes longer fails, in ms. @default 500 */
  commandTimeoutMs?: number;
  /** Connecting takes at most this long, in ms. @default 1000 */
  connectTimeoutMs?: number;
  /**
   * A secret every instance shares (at least 16 characters): trips are signed with HMAC-SHA256 and a
   * message without a valid signature, or sent more than its open duration + 60 s ago, is malformed
   * (ignored, counted). Without it, anyone who can PUBLISH on the channel can open the breakers.
   * @default none (messages are not authenticated)
   */
  secret?: string;
  /**
   * After a remote open that this instance's own probe disproved (half-open → closed), remote trips are
   * ignored for this long, in ms, renewed by every trip ignored meanwhile; 0 never mutes. @default 60000
   */
  remoteMuteMs?: number;
  /** Times the mute (the breaker's clock in tests). @default systemClock */
  clock?: Clock;
}

export const FLEET_BREAKER_DEFAULTS = Object.freeze({
  keyPrefix: 'bulwark:breaker:',
  commandTimeoutMs: 500,
  connectTimeoutMs: 1000,
  remoteMuteMs: 60_000,
});

const KEYS = [
  'breaker',
  'url',
  'client',
  'name',
  'instanceId',
  'secret',
  'clock',
  ...Object.keys(FLEET_BREAKER_DEFAULTS),
];

/** With a secret: how far the sender's and the receiver's wall clocks may disagree, in ms. */
export const FLEET_MAX_CLOCK_SKEW_MS = 60_000;
/** The shortest `secret` accepted. */
const MIN_SECRET_LENGTH = 16;
/** How much of a malformed message an event carries. */
const SAMPLE_LENGTH = 200;

/** A trip, as it travels between instances. */
export interface FleetTrip {
  /** Format version. */
  readonly v: 1;
  /** The instance whose breaker tripped. */
  readonly instance: string;
  /** Why it tripped (core's `TripReason`, e.g. `failure-rate`). */
  readonly reason: string;
  /** How long it stays open there, in ms. */
  readonly openDurationMs: number;
  /** With a `secret`: when it was sent (`Date.now()` of the sender), covered by `mac`. */
  readonly sentAt?: number;
  /** With a `secret`: HMAC-SHA256 (base64url) of the fields above and the channel. */
  readonly mac?: string;
}

/** A trip learnt from another instance and what it did here. */
export interface FleetTripEvent {
  readonly trip: FleetTrip;
  /** `message` (live) or `key` (read at start or after a reconnect). */
  readonly via: 'message' | 'key';
  /** False when the local breaker was not closed (it already has a schedule of its own), or muted. */
  readonly applied: boolean;
  /** True when it was ignored because remote trips are muted (see `remoteMuteMs`). */
  readonly muted: boolean;
}

/** A message on the channel (or in the key) that is not a valid trip: ignored. */
export interface FleetMalformedEvent {
  /** `message` (live) or `key`. */
  readonly via: 'message' | 'key';
  /**
   * `malformed` (not a trip message), `unauthenticated` (a `secret` is set and its MAC is missing or
   * wrong) or `stale` (signed, but sent too long ago: a replay, or clocks too far apart).
   */
  readonly reason: 'malformed' | 'unauthenticated' | 'stale';
  /** The start of the message (at most 200 characters). */
  readonly sample: string;
  /** Malformed messages seen by this link so far, this one included. */
  readonly count: number;
}

/** A trip of this instance's own that was sent to the others. */
export interface FleetPublishEvent {
  readonly trip: FleetTrip;
  /** How many subscribers Redis delivered it to (this instance's own included). */
  readonly receivers: number;
}

export interface FleetErrorEvent {
  /** What failed: `publish`, `subscribe`, `read` (the key), `connection`. Bad messages: `onMalformed`. */
  readonly during: 'publish' | 'subscribe' | 'read' | 'connection';
  readonly error: unknown;
}

/** Links a breaker to the breakers of the same name in other instances, through Redis. */
export class FleetBreaker {
  readonly name: string;
  readonly instanceId: string;
  readonly channel: string;
  readonly #breaker: FleetBreakerTarget;
  readonly #client: Redis;
  readonly #subscriber: Redis;
  readonly #ownsClient: boolean;
  readonly #subscription: { dispose(): void };
  readonly #onRemoteTrip = new EventEmitter<FleetTripEvent>();
  readonly #onPublish = new EventEmitter<FleetPublishEvent>();
  readonly #onError = new EventEmitter<FleetErrorEvent>();
  readonly #onSubscribe = new EventEmitter<{ readonly channel: string }>();
  readonly #onMalformed = new EventEmitter<FleetMalformedEvent>();
  readonly #secret: string | undefined;
  readonly #remoteMuteMs: number;
  readonly #clock: Clock;
  /** The breaker is open because of a remote trip, and its own probe has not judged it yet. */
  #openedByRemote = false;
  /** Remote trips are ignored until then (on `#clock`). */
  #mutedUntil = -Infinity;
  #malformed = 0;
  /** A trip from another instance arrived (applied or not). */
  readonly onRemoteTrip: Subscribe<FleetTripEvent> = this.#onRemoteTrip.subscribe;
  /** A trip of this instance's own was published. */
  readonly onPublish: Subscribe<FleetPublishEvent> = this.#onPublish.subscribe;
  /** The link subscribed (at start, and again after every reconnection). */
  readonly onSubscribe: Subscribe<{ readonly channel: string }> = this.#onSubscribe.subscribe;
  /** Something failed; the local breaker goes on by itself. */
  readonly onError: Subscribe<FleetErrorEvent> = this.#onError.subscribe;
  /** A message that is not a valid trip arrived and was ignored (every one; throttle any logging). */
  readonly onMalformed: Subscribe<FleetMalformedEvent> = this.#onMalformed.subscribe;
  #closed = false;
  readonly #ready: Promise<void>;
  readonly #settleReady: () => void;

  constructor(options: FleetBreakerOptions) {
    const o = checks.optionsObject('fleetBreaker', options, true);
    checks.knownKeys('fleetBreaker', o, KEYS);
    const b = o.breaker as Partial<FleetBreakerTarget> | undefined;
    if (
      b === null ||
      typeof b !== 'object' ||
      typeof b.open !== 'function' ||
      typeof b.onStateChange !== 'function' ||
      typeof b.name !== 'string'
    ) {
      throw new InvalidOptionError('fleetBreaker.breaker', o.breaker, 'a circuit breaker (circuitBreaker())');
    }
    this.#breaker = o.breaker;
    const d = FLEET_BREAKER_DEFAULTS;
    this.name = checks.string('fleetBreaker.name', o.name ?? b.name);
    if (this.name === '') throw new InvalidOptionError('fleetBreaker.name', o.name, 'a non-empty string');
    this.instanceId = checks.string(
      'fleetBreaker.instanceId',
      o.instanceId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
    );
    if (this.instanceId === '') {
      throw new InvalidOptionError('fleetBreaker.instanceId', o.instanceId, 'a non-empty string');
    }
    this.channel = checks.string('fleetBreaker.keyPrefix', o.keyPrefix ?? d.keyPrefix) + this.name;
    const commandTimeoutMs = checks.positiveMs(
      'fleetBreaker.commandTimeoutMs',
      o.commandTimeoutMs ?? d.commandTimeoutMs,
    );
    const connectTimeoutMs = checks.positiveMs(
      'fleetBreaker.connectTimeoutMs',
      o.connectTimeoutMs ?? d.connectTimeoutMs,
    );
    if (o.secret !== undefined) {
      const secret = checks.string('fleetBreaker.secret', o.secret);
      if (secret.length < MIN_SECRET_LENGTH) {
        // never echo a secret, not even a short one
        throw new InvalidOptionError(
          'fleetBreaker.secret',
          `(hidden, ${secret.length} characters)`,
          `a string of at least ${MIN_SECRET_LENGTH} characters shared by every instance`,
        );
      }
      this.#secret = secret;
    }
    this.#remoteMuteMs = checks.nonNegativeMs('fleetBreaker.remoteMuteMs', o.remoteMuteMs ?? d.remoteMuteMs);
    this.#clock = checks.clock('fleetBreaker.clock', o.clock);

    if (o.client !== undefined) {
      const c = o.client as Partial<Redis>;
      if (typeof c.duplicate !== 'function' || typeof c.publish !== 'function') {
        throw new InvalidOptionError('fleetBreaker.client', o.client, 'an ioredis client');
      }
      this.#client = o.client;
      this.#ownsClient = false;
      this.#subscriber = o.client.duplicate({ autoResubscribe: false });
    } else {
      const url = checks.string('fleetBreaker.url', o.url);
      if (!/^rediss?:\/\//.test(url)) {
        throw new InvalidOptionError('fleetBreaker.url', redactUrl(url), 'a redis:// or rediss:// URL');
      }
      const { Redis: RedisClient } = loadOptional<typeof IORedis>(
        'ioredis',
        'a fleet-shared circuit breaker (fleetBreaker.url)',
        REDIS_PACKAGES,
      );
      const clientOptions = {
        ...redisClientOptions(commandTimeoutMs, connectTimeoutMs),
        connectionName: 'bulwark-fleet-breaker',
      };
      this.#client = new RedisClient(url, clientOptions);
      this.#ownsClient = true;
      // A subscriber connection must not time its (endless) SUBSCRIBE out.
      this.#subscriber = new RedisClient(url, {
        ...clientOptions,
        commandTimeout: undefined,
        autoResubscribe: false,
      });
    }
    if (this.#ownsClient) this.#client.on('error', (error: unknown) => this.#fail('connection', error));
    this.#subscriber.on('error', (error: unknown) => this.#fail('connection', error));
    this.#subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.#received(message, 'message');
    });
    // Subscribed on every (re)connection, then the key is read to learn what was missed meanwhile.
    let settle!: () => void;
    this.#ready = new Promise<void>((resolve) => (settle = resolve));
    this.#settleReady = settle;
    this.#subscriber.on('ready', () => void this.#subscribe().finally(settle));
    // Redis down at start: ready() must not wait for it (the link goes on trying by itself).
    this.#subscriber.on('error', () => settle());
    if (this.#subscriber.status === 'wait') void this.#subscriber.connect().catch(() => undefined);
    this.#subscription = this.#breaker.onStateChange((e) => {
      if (e.from === 'closed' && e.to === 'open' && e.reason !== 'manual-open') {
        this.#openedByRemote = false;
        void this.#publish(
          this.#sign({
            v: 1,
            instance: this.instanceId,
            reason: e.reason,
            openDurationMs: e.openDurationMs ?? 0,
          }),
        );
      } else if (this.#openedByRemote && e.to !== 'open' && e.to !== 'half-open') {
        this.#openedByRemote = false;
        // Its own probe passed after a remote open: the dependency answers here. Mute remote trips.
        if (e.from === 'half-open' && e.to === 'closed' && this.#remoteMuteMs > 0) {
          this.#mutedUntil = this.#clock.now() + this.#remoteMuteMs;
        }
      } else if (e.from === 'half-open' && e.to === 'open') {
        this.#openedByRemote = false; // its own probe failed: the trip was right
      }
    });
  }

  /** Malformed messages seen so far (every one; `onMalformed` reports each). */
  get malformed(): number {
    return this.#malformed;
  }

  /** True while remote trips are ignored (see `remoteMuteMs`). */
  get muted(): boolean {
    return this.#clock.now() < this.#mutedUntil;
  }

  /**
   * Resolves once the first subscription was made and the shared key read, or the first connection
   * failed (a failure is on `onError`; the link keeps trying by itself). Trips published before this may
   * reach this instance through the key only.
   */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** Stops sharing: unsubscribes and closes the connections the link made (never a given client). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscription.dispose();
    this.#subscriber.disconnect();
    if (this.#ownsClient) this.#client.disconnect();
    this.#settleReady();
    await this.#ready;
  }

  /**
   * On every (re)connection of the subscriber: read the key on it (it is not yet in subscriber mode),
   * subscribe, then read the key once more on the other connection when that one is up — a trip
   * published between the first read and the subscription is still in the key.
   */
  async #subscribe(): Promise<void> {
    if (this.#closed) return;
    await this.#readKey(this.#subscriber);
    try {
      await this.#subscriber.subscribe(this.channel);
    } catch (error) {
      this.#fail('subscribe', error);
      return;
    }
    this.#onSubscribe.emit({ channel: this.channel });
    if (this.#client.status === 'ready') await this.#readKey(this.#client);
  }

  /** With a secret: the trip with `sentAt` and its MAC. */
  #sign(trip: FleetTrip): FleetTrip {
    if (this.#secret === undefined) return trip;
    const sentAt = Date.now();
    return { ...trip, sentAt, mac: mac(this.#secret, this.channel, trip, sentAt) };
  }

  async #publish(trip: FleetTrip): Promise<void> {
    if (this.#closed) return;
    const text = JSON.stringify(trip);
    try {
      const ttl = Math.max(1, Math.ceil(trip.openDurationMs));
      const [receivers] = await Promise.all([
        this.#client.publish(this.channel, text),
        this.#client.set(this.channel, text, 'PX', ttl),
      ]);
      this.#onPublish.emit({ trip, receivers });
    } catch (error) {
      this.#fail('publish', error);
    }
  }

  async #readKey(connection: Redis): Promise<void> {
    if (this.#closed) return;
    try {
      const text = await connection.get(this.channel);
      if (text !== null) this.#received(text, 'key');
    } catch (error) {
      this.#fail('read', error);
    }
  }

  #received(text: string, via: 'message' | 'key'): void {
    if (this.#closed) return;
    const trip = parseTrip(text);
    if (trip === undefined) return this.#reject(text, via, 'malformed');
    if (this.#secret !== undefined) {
      const problem = this.#verify(trip);
      if (problem !== undefined) return this.#reject(text, via, problem);
    }
    if (trip.instance === this.instanceId) return;
    const now = this.#clock.now();
    if (now < this.#mutedUntil) {
      this.#mutedUntil = now + this.#remoteMuteMs; // renewed: a steady stream of trips stays muted
      this.#onRemoteTrip.emit({ trip, via, applied: false, muted: true });
      return;
    }
    const applied = this.#breaker.open({
      by: `fleet:${trip.instance}`,
      note: `${trip.reason} on ${trip.instance} (open ${trip.openDurationMs} ms there)`,
    });
    if (applied) this.#openedByRemote = true;
    this.#onRemoteTrip.emit({ trip, via, applied, muted: false });
  }

  /** Why a signed trip is not acceptable, if it is not. */
  #verify(trip: FleetTrip): 'unauthenticated' | 'stale' | undefined {
    if (trip.sentAt === undefined || trip.mac === undefined) return 'unauthenticated';
    const expected = Buffer.from(mac(this.#secret!, this.channel, trip, trip.sentAt), 'base64url');
    const given = Buffer.from(trip.mac, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'unauthenticated';
    const age = Date.now() - trip.sentAt;
    if (age < -FLEET_MAX_CLOCK_SKEW_MS || age > trip.openDurationMs + FLEET_MAX_CLOCK_SKEW_MS) return 'stale';
    return undefined;
  }

  /** Counts and reports a message that is not a valid trip (no Error, no stack: it may come by thousands). */
  #reject(text: string, via: 'message' | 'key', reason: FleetMalformedEvent['reason']): void {
    this.#malformed++;
    if (this.#onMalformed.active) {
      const sample = text.length > SAMPLE_LENGTH ? `${text.slice(0, SAMPLE_LENGTH)}…` : text;
      this.#onMalformed.emit({ via, reason, sample, count: this.#malformed });
    }
  }

  #fail(during: FleetErrorEvent['during'], error: unknown): void {
    if (this.#closed) return;
    this.#onError.emit({ during, error });
  }
}

/** The MAC of a trip: HMAC-SHA256 over its fields, the time it was sent and the channel, base64url. */
function mac(secret: string, channel: string, trip: FleetTrip, sentAt: number): string {
  const signed = JSON.stringify([trip.v, channel, trip.instance, trip.reason, trip.openDurationMs, sentAt]);
  return createHmac('sha256', secret).update(signed).digest('base64url');
}

/** A message from the channel (or the key), checked field by field; undefined when malformed. */
function parseTrip(text: string): FleetTrip | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const t = value as Record<string, unknown>;
  if (t.v !== 1) return undefined;
  if (typeof t.instance !== 'string' || t.instance === '' || t.instance.length > 256) return undefined;
  if (typeof t.reason !== 'string' || t.reason.length > 64) return undefined;
  if (typeof t.openDurationMs !== 'number' || !Number.isFinite(t.openDurationMs) || t.openDurationMs < 0) {
    return undefined;
  }
  const trip = { v: 1, instance: t.instance, reason: t.reason, openDurationMs: t.openDurationMs } as const;
  if (t.sentAt === undefined && t.mac === undefined) return trip;
  if (typeof t.sentAt !== 'number' || !Number.isFinite(t.sentAt)) return undefined;
  if (typeof t.mac !== 'string' || t.mac.length > 64) return undefined;
  return { ...trip, sentAt: t.sentAt, mac: t.mac };
}
