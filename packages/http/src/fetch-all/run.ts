// Over 600 lines on purpose: the run's reading, read-ahead window, waiting for hosts and settling share
// its counters and are one state machine; what separates cleanly is in item.ts (one URL), hosts.ts (an
// origin's state), queue.ts, slots.ts, request.ts (one request).
/**
 * fetchAll: GET many URLs concurrently and yield one result per URL as each completes.
 *
 * Per URL: core `retry` (with one `retryBudget` shared by the whole run) around attempts; each attempt
 * goes through its origin's slot (global + per-origin concurrency, optional per-origin pace: see
 * slots.ts) → the origin's core `circuitBreaker` → core `timeout` (aggressive) → one undici
 * dispatch.
 *
 * - Slots are taken per attempt, so a URL waiting out a backoff holds none.
 * - The breaker sits inside the slots: it is asked when a request is about to go out, so a request never
 *   goes to a host whose breaker opened while it waited.
 * - When a host's breaker opens, everything of that host that waits fails at once: URLs queued for their
 *   first slot (`CIRCUIT_OPEN`, no slot taken), retries sleeping in a backoff or queued for a slot (they
 *   report the failure of their last request), and URLs read while it stays open (`CIRCUIT_OPEN` on
 *   admission). So the read-ahead window empties at once instead of at the pace of the slot scheduler.
 * - A host that has not answered yet (and again after its breaker opened) holds at most the failures that open its breaker
 *   requests in flight: a dead host's first wave is just enough to open its breaker in one timeout.
 * - Input is pulled lazily: at most `concurrency + readAhead` URLs are held at once (in flight, queued
 *   for a slot, between retries, or finished and not yet consumed), so memory does not grow with the
 *   input and a slow consumer slows the reading.
 *
 * Aborting, cheaply. Only `retry` gets the run's signal (it listens only while a backoff sleeps). The
 * attempt's policies run in a context without one, and the exchange is aborted directly: by the timeout's
 * `onTimeout` event (keyed by the URL's index) and by the run's abort, which also empties the slot queues.
 * Letting every attempt read `ctx.signal` instead — an `AbortController` per attempt, linked to the run's
 * signal with a listener — multiplied the per-URL CPU cost several times (docs/many-requests.md,
 * "Performance", has the measurement).
 */
import { setMaxListeners } from 'node:events';
import { Agent, type Dispatcher } from 'undici';
import {
  CircuitOpenError,
  InvalidOptionError,
  ThrottledError,
  TimeoutError,
  adaptiveThrottle,
  circuitBreaker,
  classify,
  hedge,
  type Clock,
  type ClockTimer,
  pipeline,
  rateLimiter,
  retry,
  retryBudget,
  timeout,
  type ClassifyFn,
  type Policy,
  type RateLimiterPolicy,
  type RetryBudget,
  type RetryPolicy,
  type Subscribe,
  type TimeoutPolicy,
} from '@bulwark/core';
import { EventEmitter, onAbort } from '@bulwark/core/internal';
import { hedgeOptions, throttleOptions } from '../policy-options.js';
import { HOST_FAILURE_CLASSIFY, isHostFailureStatus } from '../classify.js';
import { HttpBodyTooLargeError, messageOf } from '../errors.js';
import { errorCodeOf, statusCode } from './errors.js';
import { resolveFetchAllOptions, type FetchAllOptions, type ResolvedFetchAllOptions } from './options.js';
import type { ExchangeOptions, ExchangeResult, Target } from './request.js';
import { GAVE_UP, HOST_TRIPPED, MAX_IDLE_HOSTS, hostSignal, type Host } from './hosts.js';
import { Item, parseTarget } from './item.js';
import { Queue } from './queue.js';
import { SlotScheduler } from './slots.js';
import { watchResets } from '../reset-guard.js';
import type { FetchAllRun, FetchAllStats, FetchResult, HostBreakerEvent } from './types.js';

/** Core's classifier, but a local throttle's rejection ends the URL's retries (see the retry below). */
const RETRY_CLASSIFY = classify.error(ThrottledError, 'ignore');

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

export class Run implements FetchAllRun {
  readonly options: ResolvedFetchAllOptions;
  readonly exchangeOptions: ExchangeOptions;
  readonly clock: Clock;
  inFlight = 0;
  /** Retries sent (counted when they go out: a retry cut short by its host's breaker was never sent). */
  retriesSent = 0;
  /** Hedged requests started; attempts the adaptive throttles rejected locally. */
  hedgesSent = 0;
  throttled = 0;
  /** Whether attempts are hedged (each exchange then follows its attempt's signal). */
  readonly hedging: boolean;
  readonly #input: Iterator<unknown> | AsyncIterator<unknown>;
  readonly #controller = new AbortController();
  readonly #signal = this.#controller.signal;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #retry: RetryPolicy;
  readonly #budget: RetryBudget;
  readonly #timeout: TimeoutPolicy;
  readonly #timeoutReason: TimeoutError;
  readonly #slots: SlotScheduler;
  readonly #limiter: RateLimiterPolicy | undefined;
  readonly #hosts = new Map<string, Host>();
  /** Admitted URLs not yet settled, by key (the index as a string). */
  readonly #items = new Map<string, Item>();
  readonly #trips = new Map<string, number>();
  readonly #onBreaker = new EventEmitter<HostBreakerEvent>();
  readonly onBreakerStateChange: Subscribe<HostBreakerEvent> = this.#onBreaker.subscribe;

  /** Results not yet taken by the consumer. */
  readonly #results = new Queue<FetchResult>();
  #waiter: { resolve: (r: IteratorResult<FetchResult>) => void; reject: (e: unknown) => void } | undefined;
  /** Admitted and not yet consumed. */
  #active = 0;
  readonly #cap: number;
  #resumePump: (() => void) | undefined = undefined;
  #started = false;
  #inputDone = false;
  #failure: { error: unknown } | undefined = undefined;
  #closed = false;
  #finished = false;
  #read = 0;
  #completed = 0;
  #ok = 0;
  #dispatcherClosed: Promise<void> | undefined;
  /** Removes the listener on the caller's signal. */
  #unlinkCaller: (() => void) | undefined = undefined;
  /** URLs parked (waiting for their host's breaker), over all hosts. */
  #parked = 0;
  /** Ends the wait once nothing but parked URLs is left (`maxWaitMs`). */
  #idleTimer: ClockTimer | undefined = undefined;
  /** The wait for hosts is over: refused URLs fail at once from now on. */
  #gaveUp = false;

  constructor(urls: Iterable<unknown> | AsyncIterable<unknown>, options: FetchAllOptions | undefined) {
    const o = (this.options = resolveFetchAllOptions(options));
    this.clock = o.clock;
    watchResets();
    if (urls != null && typeof (urls as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
      this.#input = (urls as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    } else if (urls != null && typeof (urls as Iterable<unknown>)[Symbol.iterator] === 'function') {
      this.#input = (urls as Iterable<unknown>)[Symbol.iterator]();
    } else {
      throw new InvalidOptionError('fetchAll.urls', urls, 'an Iterable or AsyncIterable of URL strings');
    }
    this.#cap = o.concurrency + o.readAhead;
    this.hedging = o.hedge !== false;
    this.#ownsDispatcher = o.dispatcher === undefined;
    this.#dispatcher =
      o.dispatcher ??
      new Agent({
        // room for the hedges: a hedge waiting behind the host's own requests for a connection would
        // only slow them down (and count as sent when it never was)
        connections: o.perHostConcurrency * (1 + (o.hedge === false ? 0 : o.hedge.maxHedges)),
        // our timeout bounds every attempt; undici's own are a backstop only
        headersTimeout: o.attemptTimeoutMs + 1000,
        bodyTimeout: o.attemptTimeoutMs + 1000,
        connect: { timeout: Math.min(o.attemptTimeoutMs + 1000, 30_000), ...o.tls },
      });
    this.exchangeOptions = {
      dispatcher: this.#dispatcher,
      headers: o.headers,
      keepBody: o.keepBody,
      maxBodyBytes: o.maxBodyBytes,
      // statuses that fail an attempt (so retry and the breaker see them): classify.ts's host failures
      isFailureStatus: isHostFailureStatus,
      onEnd: () => {
        this.inFlight--;
      },
    };
    this.#budget = retryBudget({ ...o.retryBudget, clock: o.clock });
    this.#retry = retry({
      ...o.retry,
      budget: this.#budget,
      clock: o.clock,
      // core's classifier: an open breaker is not retried (failing fast is its point), nor is a value;
      // nor a local throttle's rejection (another draw at once would defeat it, and a backoff would hold
      // the URL for nothing: the host has been refusing requests)
      classify: RETRY_CLASSIFY,
    });
    this.#timeout = timeout({ timeoutMs: o.attemptTimeoutMs, clock: o.clock });
    this.#timeoutReason = new TimeoutError(o.attemptTimeoutMs);
    // (hedged: each exchange follows its own attempt's signal, which the timeout aborts)
    if (!this.hedging)
      this.#timeout.onTimeout((event) => {
        const item = event.key === undefined ? undefined : this.#items.get(event.key);
        item?.exchange?.abort(this.#timeoutReason);
      });
    this.#slots = new SlotScheduler(o.concurrency, o.clock);
    this.#limiter =
      o.ratePerHost === Infinity
        ? undefined
        : rateLimiter({ ratePerSecond: o.ratePerHost, burst: 1, clock: o.clock });
    // last: an already aborted caller's signal aborts the run at once, and #onAbort needs all of the above
    // backoff sleeps listen on the run's signal (one listener each while they sleep)
    setMaxListeners(0, this.#signal);
    this.#signal.addEventListener('abort', this.#onAbort, { once: true });
    if (o.signal !== undefined) {
      const signal = o.signal;
      if (signal.aborted) this.#controller.abort(signal.reason);
      // removed when the run ends: a long-lived signal shared by many runs must not keep each one alive
      else this.#unlinkCaller = onAbort(signal, () => this.#controller.abort(signal.reason));
    }
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  get stats(): FetchAllStats {
    return {
      read: this.#read,
      completed: this.#completed,
      ok: this.#ok,
      inFlight: this.inFlight,
      retries: this.retriesSent,
      retriesDenied: this.#budget.totalRejected,
      hedges: this.hedgesSent,
      throttled: this.throttled,
      breakerTrips: this.#trips,
      waiting: this.#parked,
    };
  }

  next(): Promise<IteratorResult<FetchResult>> {
    if (!this.#started) {
      this.#started = true;
      void this.#pump();
    }
    if (this.#results.size > 0) return Promise.resolve({ done: false, value: this.#take() });
    if (this.#finished || this.#closed) return this.#end();
    if (this.#waiter !== undefined) return Promise.reject(new Error('fetchAll: next() called concurrently'));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  async return(): Promise<IteratorResult<FetchResult>> {
    if (!this.#closed) {
      this.#closed = true;
      this.#controller.abort(new Error('fetchAll: the consumer stopped iterating'));
      await this.#release();
    }
    return { done: true, value: undefined };
  }

  #take(): FetchResult {
    const result = this.#results.shift()!;
    this.#consumed();
    return result;
  }

  #consumed(): void {
    this.#active--;
    const resume = this.#resumePump;
    if (resume !== undefined && this.#active < this.#cap) {
      this.#resumePump = undefined;
      resume();
    }
  }

  async #end(): Promise<IteratorResult<FetchResult>> {
    await this.#release();
    if (this.#failure !== undefined && !this.#closed) throw this.#failure.error;
    return { done: true, value: undefined };
  }

  /** The run is over (finished, or the consumer left): let go of the caller's signal and the dispatcher. */
  #release(): Promise<void> {
    this.#unlinkCaller?.();
    this.#unlinkCaller = undefined;
    this.#clearTimers();
    if (!this.#ownsDispatcher) return Promise.resolve();
    this.#dispatcherClosed ??= (this.#dispatcher as Agent).destroy().catch(() => undefined);
    return this.#dispatcherClosed;
  }

  /**
   * The run was aborted (the caller's signal, or the consumer left): requests in flight are aborted, the
   * slot queues emptied (retry gives every URL up with the reason), and the input counts as done at once —
   * a read pending on a stdin that never ends must not hold the run — and is asked to release itself.
   */
  readonly #onAbort = (): void => {
    const reason = this.#signal.reason;
    if (!this.#closed && this.#failure === undefined) this.#failure = { error: reason };
    this.#slots.abortAll(reason);
    this.#clearTimers();
    // retries sleeping in a backoff listen on their host's signal
    for (const host of this.#hosts.values()) {
      host.controller.abort(reason);
      for (const item of host.parked.splice(0)) this.#unpark(item, false).cancel(reason);
    }
    for (const item of this.#items.values()) item.abortExchanges(reason);
    const resume = this.#resumePump;
    this.#resumePump = undefined;
    resume?.();
    if (!this.#inputDone) {
      this.#inputDone = true;
      try {
        const closing = this.#input.return?.();
        if (isPromiseLike(closing)) Promise.resolve(closing).catch(() => undefined);
      } catch {
        // the input's own cleanup failed: the abort is what the caller sees
      }
    }
    this.#checkFinished();
  };

  async #pump(): Promise<void> {
    const input = this.#input;
    const signal = this.#signal;
    try {
      while (!this.#inputDone) {
        if (this.#active >= this.#cap) {
          const resumed = new Promise<void>((resolve) => (this.#resumePump = resolve));
          // a window full of URLs waiting for their hosts: nothing else is left until one of them goes
          this.#checkFinished();
          await resumed;
          continue;
        }
        const step = input.next();
        const r = isPromiseLike(step) ? await step : step;
        if (r.done || signal.aborted) break;
        this.#admit(r.value);
      }
    } catch (error) {
      if (!signal.aborted) this.#failure ??= { error };
    }
    this.#inputDone = true;
    this.#checkFinished();
  }

  #admit(raw: unknown): void {
    const index = this.#read++;
    this.#active++;
    const target = parseTarget(raw);
    if ('error' in target) {
      this.#deliver({
        index,
        url: target.url,
        host: '',
        ok: false,
        status: undefined,
        bytes: 0,
        durationMs: 0,
        attempts: 0,
        errorCode: 'INVALID_URL',
        error: target.error,
        body: undefined,
      });
      return;
    }
    const host = this.#host(target);
    host.active++;
    const item = new Item(index, target, host, this);
    // its breaker is not closed: the URL waits for it (or, when it cannot wait, fails with CIRCUIT_OPEN)
    if (!host.breakerIsClosed()) {
      if (!this.#park(item)) this.#settled(item, undefined, this.#openError(host));
      return;
    }
    host.slots.enqueue(item);
  }

  /** A `CircuitOpenError` for `host` as its breaker would make it now (one per distinct `retryAfterMs`). */
  #openError(host: Host): CircuitOpenError {
    const retryAfterMs = Math.max(0, Math.ceil(host.openRemainingMs()));
    let error = host.openError;
    if (error === undefined || error.retryAfterMs !== retryAfterMs) {
      error = host.openError = new CircuitOpenError(retryAfterMs, 'open', host.host);
    }
    return error;
  }

  /**
   * `host`'s breaker has just opened: its retries sleeping in a backoff end now (they would only be
   * refused), every URL queued for its first slot fails with `CIRCUIT_OPEN` at once, and it is held to
   * as many requests in flight as the failures that open its breaker again until it answers.
   */
  #tripped(host: Host): void {
    const tripped = host.controller;
    const fresh = hostSignal();
    host.controller = fresh.controller;
    host.execOptions = fresh.execOptions;
    tripped.abort(HOST_TRIPPED);
    host.slots.unanswered();
    host.slots.cancelQueued(this.#openError(host));
    this.#scheduleWake(host);
  }

  /**
   * Parks a URL refused by its host's breaker (never sent, or its retries cut short by the trip) until the
   * breaker lets probes through. The first `readAhead` parked URLs leave the read-ahead window (so a dead
   * host cannot stall the input). Beyond that, with `maxWaitMs` 0 they fail at once; with a `maxWaitMs`,
   * they wait inside the window — the input pauses once it is full of them, and that counts as nothing
   * else being left, so the wait is still bounded by `maxWaitMs`. Once the wait is over, they fail.
   */
  #park(item: Item): boolean {
    if (this.#gaveUp || this.#signal.aborted) return false;
    const outside = this.#parked < this.options.readAhead;
    if (!outside && this.options.maxWaitMs === 0) return false;
    item.parked = true;
    item.parkedOutside = outside;
    item.exchange = undefined;
    if (item.key !== '') this.#items.delete(item.key);
    item.host.parked.push(item);
    this.#parked++;
    if (outside) {
      // out of the read-ahead window: the input may move on
      this.#active--;
      const resume = this.#resumePump;
      if (resume !== undefined && this.#active < this.#cap) {
        this.#resumePump = undefined;
        resume();
      }
    }
    this.#scheduleWake(item.host);
    this.#checkFinished();
    return true;
  }

  #unpark(item: Item, enqueue: boolean): Item {
    item.parked = false;
    this.#parked--;
    if (item.parkedOutside) this.#active++;
    item.parkedOutside = false;
    if (enqueue) item.host.slots.enqueue(item);
    return item;
  }

  /** When the host's breaker will let probes through, wake its parked URLs. */
  #scheduleWake(host: Host): void {
    if (host.wake !== undefined || host.parked.length === 0) return;
    host.wake = this.clock.setTimeout(
      () => {
        host.wake = undefined;
        this.#wake(host);
      },
      Math.max(1, Math.ceil(host.openRemainingMs())),
    );
  }

  /**
   * The breaker's open time is over: as many parked URLs as it admits probes go out; the rest follow
   * when it closes. Still open (a probe round failed): wait again.
   */
  #wake(host: Host): void {
    if (this.#signal.aborted || host.parked.length === 0) return;
    const state = host.breaker.state;
    if (state === 'open') {
      this.#scheduleWake(host);
      return;
    }
    const n = state === 'closed' ? host.parked.length : host.breaker.halfOpenPermits;
    for (const item of host.parked.splice(0, n)) this.#unpark(item, true);
  }

  /**
   * Nothing is left but URLs waiting for hosts whose breaker is not closed: wait at most `maxWaitMs` more,
   * then give up on them (their probes in flight too).
   */
  #idle(): void {
    if (this.#gaveUp) {
      this.#giveUp();
      return;
    }
    if (this.options.maxWaitMs === 0) {
      this.#giveUp();
      return;
    }
    this.#idleTimer ??= this.clock.setTimeout(() => {
      this.#idleTimer = undefined;
      this.#giveUp();
    }, this.options.maxWaitMs);
  }

  /** Work goes on again (a host came back): a later idle period gets a `maxWaitMs` of its own. */
  #notIdle(): void {
    if (this.#idleTimer === undefined) return;
    this.clock.clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  #giveUp(): void {
    this.#gaveUp = true;
    for (const host of this.#hosts.values()) {
      if (host.breakerIsClosed()) continue;
      if (host.wake !== undefined) {
        this.clock.clearTimeout(host.wake);
        host.wake = undefined;
      }
      for (const item of host.parked.splice(0)) this.#settled(this.#unpark(item, false), undefined, GAVE_UP);
      for (const item of this.#items.values()) if (item.host === host) item.abortExchanges(GAVE_UP);
    }
  }

  /** Whether every URL still unfinished waits on a host whose breaker is not closed. */
  #onlyWaitingLeft(): boolean {
    if (this.#parked === 0) return false;
    for (const host of this.#hosts.values()) if (host.active > 0 && host.breakerIsClosed()) return false;
    return true;
  }

  #clearTimers(): void {
    if (this.#idleTimer !== undefined) {
      this.clock.clearTimeout(this.#idleTimer);
      this.#idleTimer = undefined;
    }
    for (const host of this.#hosts.values()) {
      if (host.wake !== undefined) this.clock.clearTimeout(host.wake);
      host.wake = undefined;
    }
  }

  /** A URL got its first slot: start its policies. */
  begin(item: Item): void {
    this.#items.set(item.key, item);
    this.#retry.execute(item.attempt, item.host.execOptions).then(
      (value) => this.#settled(item, value as ExchangeResult, undefined),
      (error: unknown) => this.#settled(item, undefined, error),
    );
    // retry did not start the attempt at once (the run was aborted): give the slot back
    if (item.holdsSlot) {
      item.holdsSlot = false;
      item.host.slots.release();
    }
  }

  /** A URL still waiting for its first slot when the run was aborted. */
  cancelled(item: Item, reason: unknown): void {
    this.#settled(item, undefined, reason);
  }

  /** Whether an outcome counts against its host's breaker. */
  readonly #isHostFailure: ClassifyFn = (outcome, ctx) => {
    if (outcome.ok) return 'success';
    // the run's abort is not the host's doing; a body over the caller's limit came from a working host
    if (this.#signal.aborted && outcome.error === this.#signal.reason) return 'ignore';
    // a probe the run stopped waiting for says nothing about the host
    if (outcome.error === GAVE_UP) return 'ignore';
    if (outcome.error instanceof HttpBodyTooLargeError) return 'success';
    // the HTTP classification (classify.ts); beyond it every other error counts (a `retryable: false`
    // one too), local rejections do not
    const verdict = HOST_FAILURE_CLASSIFY(outcome, ctx);
    return verdict === 'success' ? 'failure' : verdict;
  };

  #host(target: Target): Host {
    const key = target.origin;
    let host = this.#hosts.get(key);
    if (host !== undefined) return host;
    if (this.#hosts.size >= MAX_IDLE_HOSTS) this.#dropIdleHosts();
    const o = this.options;
    const breaker = circuitBreaker({
      ...o.circuitBreaker,
      name: target.host,
      classify: this.#isHostFailure,
      clock: o.clock,
    });
    breaker.onStateChange((e) => {
      if (e.to === 'open') this.#trips.set(target.host, (this.#trips.get(target.host) ?? 0) + 1);
      if (this.#onBreaker.active)
        this.#onBreaker.emit({ host: target.host, origin: key, from: e.from, to: e.to });
    });
    const slots = this.#slots.host(key, o.perHostConcurrency, this.#limiter, o.breakerFailures);
    // per attempt, outside in: hedge (each hedged request goes through the rest) → adaptive throttle
    // (a request it turns away never reaches the breaker: not the host's failure) → breaker → timeout
    const around: Policy[] = [];
    if (o.hedge !== false) {
      const h = hedge(hedgeOptions(o.hedge, target.host, o.clock, this.#isHostFailure));
      h.onHedge((e) => {
        if (e.type === 'started') this.hedgesSent++;
      });
      around.push(h);
    }
    if (o.adaptiveThrottle !== false) {
      const t = adaptiveThrottle(
        throttleOptions(o.adaptiveThrottle, target.host, o.clock, this.#isHostFailure),
      );
      t.onReject(() => {
        this.throttled++;
      });
      around.push(t);
    }
    const created: Host = {
      host: target.host,
      breaker,
      policy: pipeline(slots, ...around, breaker, this.#timeout),
      inner: pipeline(...around, breaker, this.#timeout),
      slots,
      breakerIsClosed: () => breaker.state === 'closed',
      breakerIsOpen: () => breaker.state === 'open',
      active: 0,
      ...hostSignal(),
      openRemainingMs: () => breaker.metrics.openRemainingMs,
      openError: undefined,
      parked: [],
      wake: undefined,
    };
    // after the counting listener above: a trip is counted before the URLs it fails are delivered
    breaker.onStateChange((e) => {
      if (this.#signal.aborted) return;
      if (e.to === 'open') this.#tripped(created);
      // probes passed: every URL still waiting goes now, and the run is no longer idle
      else if (e.to === 'closed') {
        this.#wake(created);
        this.#notIdle();
      }
    });
    host = created;
    this.#hosts.set(key, host);
    return host;
  }

  #dropIdleHosts(): void {
    for (const [key, host] of this.#hosts) {
      if (this.#hosts.size < MAX_IDLE_HOSTS) return;
      if (host.active === 0 && host.slots.idle && host.breakerIsClosed()) {
        this.#hosts.delete(key);
        this.#slots.forget(host.slots);
      }
    }
  }

  #settled(item: Item, value: ExchangeResult | undefined, error: unknown): void {
    // refused by its host's breaker (on admission, queued when it opened, or a retry cut short by it, with
    // attempts left): wait for the host
    if (
      value === undefined &&
      (error instanceof CircuitOpenError ||
        (error === HOST_TRIPPED && item.attempts < this.options.retry.maxAttempts)) &&
      !this.#signal.aborted &&
      this.#park(item)
    )
      return;
    item.host.active--;
    item.exchange = undefined;
    if (item.key !== '') this.#items.delete(item.key);
    const durationMs = item.startedAt < 0 ? 0 : this.clock.now() - item.startedAt;
    if (value !== undefined) {
      const ok = value.status < 400;
      this.#deliver({
        index: item.index,
        url: item.target.url,
        host: item.target.host,
        ok,
        status: value.status,
        bytes: value.bytes,
        durationMs,
        attempts: item.attempts,
        errorCode: ok ? undefined : statusCode(value.status),
        error: ok ? undefined : `HTTP ${value.status}`,
        body: value.body,
      });
      return;
    }
    const aborted = this.#signal.aborted && error === this.#signal.reason;
    // a retry cut short or refused because the breaker opened meanwhile: report what the last request sent
    // ran into (a URL whose retry was cut short has always sent one)
    if (error === HOST_TRIPPED || error === GAVE_UP) error = item.error ?? this.#openError(item.host);
    else if (
      !aborted &&
      (error instanceof CircuitOpenError || error instanceof ThrottledError) &&
      item.error !== undefined
    )
      error = item.error;
    this.#deliver({
      index: item.index,
      url: item.target.url,
      host: item.target.host,
      ok: false,
      status: item.status,
      bytes: item.bytes,
      durationMs,
      attempts: item.attempts,
      errorCode: aborted ? 'ABORTED' : errorCodeOf(error),
      error: aborted ? 'Aborted' : messageOf(error),
      body: undefined,
    });
  }

  #deliver(result: FetchResult): void {
    if (this.#closed) {
      this.#active--;
      return;
    }
    this.#completed++;
    if (result.ok) this.#ok++;
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      this.#consumed();
      waiter.resolve({ done: false, value: result });
    } else {
      this.#results.push(result);
    }
    this.#checkFinished();
  }

  #checkFinished(): void {
    if (this.#finished) return;
    if (!this.#inputDone) {
      // the input waits for room in a window that holds only URLs waiting for their hosts
      if (this.#resumePump !== undefined && this.#results.size === 0 && this.#onlyWaitingLeft()) this.#idle();
      return;
    }
    if (this.#completed < this.#read) {
      if (this.#onlyWaitingLeft()) this.#idle();
      return;
    }
    this.#finished = true;
    const waiter = this.#waiter;
    if (waiter !== undefined && this.#results.size === 0) {
      this.#waiter = undefined;
      this.#end().then(waiter.resolve, waiter.reject);
    }
  }
}

/**
 * GETs every URL of `urls` (strings or `URL`s; an `Iterable` or `AsyncIterable`, read lazily) and yields
 * one {@link FetchResult} per URL as each completes. Options are validated at once (throws
 * `InvalidOptionError`); the work starts with the first `next()`.
 *
 * When `options.signal` aborts, requests in flight are aborted, no more input is read, the URLs already
 * read are yielded (`errorCode: 'ABORTED'` for those that did not finish), and then the iteration rejects
 * with `signal.reason`. Leaving a `for await` loop early aborts everything too. An input that throws
 * stops the reading: the URLs already read finish and are yielded, then the iteration rejects with its
 * error.
 */
export function fetchAll(
  urls: Iterable<string | URL> | AsyncIterable<string | URL>,
  options?: FetchAllOptions,
): FetchAllRun {
  return new Run(urls, options);
}
