/**
 * degrade: an ordered ladder of sources (degradation tiers). The first tier that serves wins; a tier
 * that fails or skips hands over to the next; when every tier has had its turn the call rejects with
 * {@link AllSourcesFailedError}, which lists what happened at each tier.
 *
 * ```ts
 * const ladder = degrade<string, Body>({
 *   tiers: [
 *     { name: 'fresh-cache', run: (ctx) => cache.fresh(ctx.input) ?? ctx.skip('NOT_CACHED') },
 *     { name: 'primary', run: (ctx) => fetchFrom(primary, ctx.input, ctx.signal), policy: guarded },
 *     { name: 'stale-cache', run: (ctx) => cache.stale(ctx.input) ?? ctx.skip('NO_STALE_COPY', 'no stale copy') },
 *   ],
 *   singleFlight: true,
 *   key: (url) => url,
 * });
 * const { value, tier, tiers } = await ladder.execute(url, { signal });
 * ```
 *
 * Each tier may be guarded by a policy (a `pipeline` of timeout, retry, circuit breaker, …): the policy
 * runs the tier, so a retry exhausts itself before the ladder moves on. A caller's abort stops the ladder
 * at once and rejects with `signal.reason`; `shouldDegrade` can make an error final (e.g. a 404 is an
 * answer, not an outage). With `singleFlight`, concurrent calls with the same key share one run of the
 * ladder (see {@link SingleFlight}).
 */
import type { Clock } from './clock.js';
import { Context, type CallContext } from './context.js';
import { bounded, executeBounded, runWithoutDeadline } from './deadline.js';
import {
  AllSourcesFailedError,
  DeadlineExceededError,
  InvalidOptionError,
  type TierReport,
} from './errors.js';
import { EventEmitter, type Subscribe } from './events.js';
import * as check from './options.js';
import { invoke, type Policy } from './policy.js';
import { SingleFlight } from './single-flight.js';

export type { TierReport };

/** Returned by {@link TierContext.skip}: the tier had nothing to offer (not a failure). */
export class TierSkip {
  /** For people: `reason` as given, else the code. */
  readonly reason: string;
  constructor(
    /** For programs: why the tier had nothing to offer, e.g. `NOT_CACHED` (reported as `TierReport.code`). */
    readonly code: string,
    reason?: string,
  ) {
    this.reason = reason ?? code;
  }
}

/** What a tier's `run` sees: the call context plus the ladder's input and what happened so far. */
export interface TierContext<I> extends CallContext {
  /** The input given to `execute` (for a shared flight: the first caller's). */
  readonly input: I;
  /** This tier's name. */
  readonly tier: string;
  /** Reports of the tiers tried before this one, in order. */
  readonly previous: readonly TierReport[];
  /**
   * Returns a marker meaning "this tier has nothing to offer": `return ctx.skip('NOT_CACHED', 'not in the
   * cache')`. The code is for programs (`TierReport.code`), the reason for people (defaults to the code).
   */
  skip(code: string, reason?: string): TierSkip;
}

export interface Tier<I, T> {
  /** Reported in results, events and errors, e.g. `primary`, `stale-cache`. */
  readonly name: string;
  /** Produces the value, throws (a failure) or returns `ctx.skip(code, reason)`. */
  readonly run: (ctx: TierContext<I>) => T | TierSkip | PromiseLike<T | TierSkip>;
  /** The policy this tier runs under (timeout, retry, breaker, … or a pipeline of them). @default none */
  readonly policy?: Policy;
}

export type TierStatus = TierReport['status'];

export interface DegradeResult<T> {
  readonly value: T;
  /** The name of the tier that served. */
  readonly tier: string;
  /** Its position in the ladder (0 = first). */
  readonly tierIndex: number;
  /** One report per tier tried, the serving tier last. */
  readonly tiers: readonly TierReport[];
  /** Time from the start of the ladder to the value, in ms. */
  readonly elapsedMs: number;
  /** True when this caller joined a flight another caller had started (single-flight). */
  readonly shared: boolean;
}

export interface TierEvent {
  readonly name: string;
  readonly key: string | undefined;
  readonly tier: string;
  readonly tierIndex: number;
  /** `start` before a tier runs, then one of `served`, `skipped`, `failed`. */
  readonly status: 'start' | TierStatus;
  /** As in {@link TierReport}: the skip code, or a failure's string `code`; absent otherwise. */
  readonly code?: string;
  readonly reason: string;
  readonly error?: unknown;
  readonly elapsedMs: number;
}

export interface DegradeOptions<I, T> {
  /** The ladder, best source first. At least one tier; names must be unique. Required. */
  tiers: readonly Tier<I, T>[];
  /** Share one run of the ladder between concurrent calls with the same key. @default false */
  singleFlight?: boolean;
  /** The single-flight key of an input. @default the `key` passed to `execute` (no key: no sharing) */
  key?: (input: I) => string | undefined;
  /**
   * Whether a tier's error lets the ladder go on. Return false to reject the call with that error at once.
   * @default always true
   */
  shouldDegrade?: (error: unknown, tier: string) => boolean;
  /** Name used in events. @default 'degrade' */
  name?: string;
  /** @default systemClock */
  clock?: Clock;
}

export interface DegradeExecuteOptions {
  /** Aborting it rejects this call with `signal.reason` (a shared flight is aborted when all have left). */
  signal?: AbortSignal | undefined;
  /** Single-flight key (when no `key` function was given) and the key in events. */
  key?: string | undefined;
  /**
   * Absolute time on the ladder's clock by which the call must settle (as `policy.execute`); the ladder
   * and its tiers see it as `ctx.deadline`. With an ambient deadline (`runWithDeadline`), the earliest
   * applies. A caller joining a shared flight leaves it at its own deadline; the flight itself runs
   * under the deadline of the caller that started it.
   */
  deadline?: number | undefined;
  /** Time allowed from now, in ms (≥ 0). */
  timeoutMs?: number | undefined;
}

const DEFAULTS = Object.freeze({ singleFlight: false, name: 'degrade' });
const KEYS = ['tiers', 'singleFlight', 'key', 'shouldDegrade', 'name', 'clock'] as const;
const TIER_KEYS = ['name', 'run', 'policy'] as const;

type LadderResult<T> = Omit<DegradeResult<T>, 'shared'>;

export class Degrader<I, T> {
  readonly name: string;
  readonly clock: Clock;
  readonly tiers: readonly Tier<I, T>[];
  readonly #singleFlight: SingleFlight<LadderResult<T>> | undefined;
  readonly #keyOf: ((input: I) => string | undefined) | undefined;
  readonly #shouldDegrade: ((error: unknown, tier: string) => boolean) | undefined;
  readonly #onTier = new EventEmitter<TierEvent>();
  /** Subscribe to every tier starting and ending (how a CLI shows the ladder as it happens). */
  readonly onTier: Subscribe<TierEvent> = this.#onTier.subscribe;

  constructor(options: DegradeOptions<I, T>) {
    const o = check.optionsObject('degrade', options, true);
    check.knownKeys('degrade', o, KEYS);
    this.clock = check.clock('degrade.clock', o.clock);
    this.name = check.string('degrade.name', o.name ?? DEFAULTS.name);
    if (!Array.isArray(o.tiers) || o.tiers.length === 0) {
      throw new InvalidOptionError('degrade.tiers', o.tiers, 'a non-empty array of tiers');
    }
    const names = new Set<string>();
    this.tiers = Object.freeze(
      o.tiers.map((tier, i) => {
        const t = check.optionsObject(`degrade.tiers[${i}]`, tier, true);
        check.knownKeys(`degrade.tiers[${i}]`, t, TIER_KEYS);
        const name = check.string(`degrade.tiers[${i}].name`, t.name);
        if (name === '' || names.has(name))
          throw new InvalidOptionError(`degrade.tiers[${i}].name`, name, 'a unique, non-empty name');
        names.add(name);
        check.fn(`degrade.tiers[${i}].run`, t.run);
        if (t.policy !== undefined && typeof (t.policy as Partial<Policy>).run !== 'function') {
          throw new InvalidOptionError(
            `degrade.tiers[${i}].policy`,
            t.policy,
            'a Policy (with run(fn, ctx))',
          );
        }
        return Object.freeze({ ...t });
      }),
    );
    this.#singleFlight = check.boolean('degrade.singleFlight', o.singleFlight ?? DEFAULTS.singleFlight)
      ? new SingleFlight<LadderResult<T>>()
      : undefined;
    this.#keyOf =
      o.key === undefined ? undefined : check.fn<(input: I) => string | undefined>('degrade.key', o.key);
    this.#shouldDegrade =
      o.shouldDegrade === undefined
        ? undefined
        : check.fn<(error: unknown, tier: string) => boolean>('degrade.shouldDegrade', o.shouldDegrade);
  }

  /** Ladders running now (single-flight only; 0 otherwise). */
  get inFlight(): number {
    return this.#singleFlight?.size ?? 0;
  }

  /** Runs the ladder for `input` (or joins the run already in flight for the same key). */
  async execute(input: I, options?: DegradeExecuteOptions): Promise<DegradeResult<T>> {
    const signal = options?.signal;
    if (signal?.aborted) throw signal.reason;
    const key = this.#keyOf !== undefined ? this.#keyOf(input) : options?.key;
    const flights = this.#singleFlight;
    if (!bounded(options)) {
      if (flights === undefined || key === undefined) {
        return {
          ...(await this.#ladder(input, key, Context.root(this.clock, { signal, key }))),
          shared: false,
        };
      }
      const { value, shared } = await this.#share(
        flights,
        key,
        (flightSignal) => this.#ladder(input, key, Context.root(this.clock, { signal: flightSignal, key })),
        signal,
        Infinity,
      );
      return { ...value, shared };
    }
    const bounds = { signal, key, deadline: options?.deadline, timeoutMs: options?.timeoutMs };
    if (flights === undefined || key === undefined) {
      const result = await executeBounded(this.clock, bounds, (root) => this.#ladder(input, key, root));
      return { ...(result as LadderResult<T>), shared: false };
    }
    // The caller waits under its own bounds (its context's signal ends at its deadline); the flight runs
    // under the deadline of the caller that started it, and only the flight's own signal.
    const waited = await executeBounded(this.clock, bounds, (caller) =>
      this.#share(
        flights,
        key,
        (flightSignal) =>
          runWithoutDeadline(() =>
            executeBounded(this.clock, { signal: flightSignal, key, deadline: caller.deadline }, (root) =>
              this.#ladder(input, key, root),
            ),
          ) as Promise<LadderResult<T>>,
        caller.abortable ? caller.signal : undefined,
        caller.deadline,
      ),
    );
    const { value, shared } = waited as { value: LadderResult<T>; shared: boolean };
    return { ...value, shared };
  }

  /**
   * Runs `work` as the flight for `key`, or joins the one in flight. A caller that joined a flight which
   * then ran out of its starter's (earlier) deadline goes on with a flight of its own, while its own
   * deadline (`deadline`, on the ladder's clock) allows: one caller's short budget never fails another.
   */
  async #share(
    flights: SingleFlight<LadderResult<T>>,
    key: string,
    work: (signal: AbortSignal) => Promise<LadderResult<T>>,
    signal: AbortSignal | undefined,
    deadline: number,
  ): Promise<{ value: LadderResult<T>; shared: boolean }> {
    for (;;) {
      const joining = flights.waiters(key) > 0;
      try {
        return await flights.run(key, work, signal);
      } catch (error) {
        const othersDeadline =
          joining &&
          DeadlineExceededError.is(error) &&
          signal?.aborted !== true &&
          deadline > this.clock.now();
        if (!othersDeadline) throw error;
      }
    }
  }

  async #ladder(input: I, key: string | undefined, root: Context): Promise<LadderResult<T>> {
    const started = this.clock.now();
    const reports: TierReport[] = [];
    for (let index = 0; index < this.tiers.length; index++) {
      const tier = this.tiers[index]!;
      if (root.aborted) throw root.reason;
      const tierStart = this.clock.now();
      this.#emit(key, tier.name, index, 'start', undefined, '', undefined, 0);
      let outcome: T | TierSkip;
      try {
        const run = (ctx: CallContext): Promise<T | TierSkip> =>
          invoke(() => tier.run(new TierCallContext(ctx, input, tier.name, reports.slice())), ctx);
        outcome = tier.policy !== undefined ? await tier.policy.run(run, root) : await run(root);
      } catch (error) {
        const elapsedMs = this.clock.now() - tierStart;
        if (root.aborted) throw root.reason;
        const code = codeOf(error);
        if (this.#shouldDegrade !== undefined && !this.#shouldDegrade(error, tier.name)) {
          this.#emit(key, tier.name, index, 'failed', code, messageOf(error), error, elapsedMs);
          throw error;
        }
        const report: TierReport =
          code === undefined
            ? { tier: tier.name, status: 'failed', reason: messageOf(error), error, elapsedMs }
            : { tier: tier.name, status: 'failed', code, reason: messageOf(error), error, elapsedMs };
        reports.push(report);
        this.#emit(key, tier.name, index, 'failed', code, report.reason, error, elapsedMs);
        continue;
      }
      const elapsedMs = this.clock.now() - tierStart;
      if (outcome instanceof TierSkip) {
        const { code, reason } = outcome;
        reports.push({ tier: tier.name, status: 'skipped', code, reason, elapsedMs });
        this.#emit(key, tier.name, index, 'skipped', code, reason, undefined, elapsedMs);
        continue;
      }
      reports.push({ tier: tier.name, status: 'served', reason: '', elapsedMs });
      this.#emit(key, tier.name, index, 'served', undefined, '', undefined, elapsedMs);
      return {
        value: outcome,
        tier: tier.name,
        tierIndex: index,
        tiers: reports,
        elapsedMs: this.clock.now() - started,
      };
    }
    throw new AllSourcesFailedError(reports);
  }

  #emit(
    key: string | undefined,
    tier: string,
    tierIndex: number,
    status: TierEvent['status'],
    code: string | undefined,
    reason: string,
    error: unknown,
    elapsedMs: number,
  ): void {
    if (!this.#onTier.active) return;
    const event: { -readonly [K in keyof TierEvent]: TierEvent[K] } = {
      name: this.name,
      key,
      tier,
      tierIndex,
      status,
      reason,
      elapsedMs,
    };
    if (code !== undefined) event.code = code;
    if (error !== undefined) event.error = error;
    this.#onTier.emit(event);
  }
}

/** The context handed to a tier: a view of the policy's context plus the ladder's fields. */
class TierCallContext<I> implements TierContext<I> {
  constructor(
    private readonly inner: CallContext,
    readonly input: I,
    readonly tier: string,
    readonly previous: readonly TierReport[],
  ) {}
  get signal(): AbortSignal {
    return this.inner.signal;
  }
  get aborted(): boolean {
    return this.inner.aborted;
  }
  get attempt(): number {
    return this.inner.attempt;
  }
  get deadline(): number {
    return this.inner.deadline;
  }
  get key(): string | undefined {
    return this.inner.key;
  }
  get clock(): Clock {
    return this.inner.clock;
  }
  remainingMs(): number {
    return this.inner.remainingMs();
  }
  skip(code: string, reason?: string): TierSkip {
    return new TierSkip(code, reason);
  }
}

/** A failure's machine-readable code: its `code` property when that is a non-empty string. */
function codeOf(error: unknown): string | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code !== '' ? code : undefined;
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/** Creates a {@link Degrader}. */
export function degrade<I = void, T = unknown>(options: DegradeOptions<I, T>): Degrader<I, T> {
  return new Degrader(options);
}
