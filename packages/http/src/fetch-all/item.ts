/**
 * One URL of a `fetchAll` run: its record while it waits for its first slot, its attempts as `retry`
 * sees them, and each request it sends (an `Exchange`, hedges included).
 */
import { currentDeadline, type CallContext, type ExecuteOptions } from '@bulwark/core';
import { onAbort } from '@bulwark/core/internal';
import { basicAuthorization } from '../credentials.js';
import { attemptDeadlineHeader } from '../deadline-header.js';
import { parseHttpUrl } from '../url.js';
import type { Host } from './hosts.js';
import { Exchange, type ExchangeResult, type Progress, type Target } from './request.js';
import type { Run } from './run.js';
import type { Entry } from './slots.js';

/**
 * One URL. It waits for its first slot as this bare record (see slots.ts for why); its closures
 * and policies come to life in `grant`.
 */
export class Item implements Progress, Entry {
  attempts = 0;
  startedAt = -1;
  status: number | undefined = undefined;
  bytes = 0;
  error: unknown = undefined;
  exchange: Exchange | undefined = undefined;
  /** The slot granted for the first attempt, not yet used. */
  holdsSlot = false;
  /** Waiting for its host's breaker (see Run.#park). */
  parked = false;
  /** Parked out of the read-ahead window (it is counted back in when it leaves the wait). */
  parkedOutside = false;
  key = '';
  /** Calls of `attempt` (retry's attempts), and requests sent in the current one (hedges included). */
  tries = 0;
  sentInTry = 0;
  /** With hedging: every exchange of this URL in flight (a hedged attempt has more than one). */
  hedged: Set<Exchange> | undefined = undefined;
  #inner: ExecuteOptions | undefined = undefined;

  constructor(
    readonly index: number,
    readonly target: Target,
    readonly host: Host,
    readonly run: Run,
  ) {}

  grant(): void {
    this.key = String(this.index);
    this.#inner = { key: this.key };
    this.holdsSlot = true;
    this.run.begin(this);
  }

  cancel(reason: unknown): void {
    this.run.cancelled(this, reason);
  }

  /** Aborts the URL's request(s) in flight. */
  abortExchanges(reason: unknown): void {
    this.exchange?.abort(reason);
    if (this.hedged !== undefined) for (const e of this.hedged) e.abort(reason);
  }

  /** One attempt, as `retry` sees it. */
  readonly attempt = (): Promise<unknown> => {
    this.tries++;
    this.sentInTry = 0;
    if (this.holdsSlot) {
      this.holdsSlot = false;
      return this.host.slots.runHeld(this.#first, undefined as unknown as CallContext);
    }
    return this.host.policy.execute(this.send, this.#inner);
  };

  readonly #first = (): Promise<unknown> => this.host.inner.execute(this.send, this.#inner);

  /**
   * The innermost operation: one request, with what is left of its timeout as its budget header (a
   * caller's deadline around the run — `runWithDeadline` — spent beyond the allowance sends nothing).
   */
  readonly send = (ctx: CallContext): Promise<ExchangeResult> => {
    const clock = this.run.clock;
    const budget = attemptDeadlineHeader(
      currentDeadline(clock) - clock.now(),
      ctx.remainingMs(),
      this.run.options.deadlineHeader,
    );
    this.attempts++;
    // a hedge is not a retry (it is counted as one of `stats.hedges`)
    if (this.sentInTry++ === 0 && this.tries > 1) this.run.retriesSent++;
    if (this.startedAt < 0) this.startedAt = this.run.clock.now();
    this.status = undefined;
    this.bytes = 0;
    this.error = undefined;
    this.run.inFlight++;
    const exchange = new Exchange(this.target, this.run.exchangeOptions, this);
    this.exchange = exchange;
    if (!this.run.hedging) return exchange.start(budget);
    // hedged: each attempt's own signal ends its exchange (its timeout, or a hedge that won); the
    // signal is read only here, so an unhedged run pays nothing for it
    const hedged = (this.hedged ??= new Set());
    hedged.add(exchange);
    const signal = ctx.signal;
    const unlink = onAbort(signal, () => exchange.abort(signal.reason));
    return exchange.start(budget).finally(() => {
      unlink();
      hedged.delete(exchange);
    });
  };
}

/** A URL of the input as a request target, or why it is not one (a sentence for the result). */
export function parseTarget(raw: unknown): Target | { error: string; url: string } {
  const url = typeof raw === 'string' ? raw : raw instanceof URL ? raw.href : String(raw);
  const parsed = parseHttpUrl(url);
  if (!(parsed instanceof URL)) {
    const problem = parsed.problem;
    return { error: problem.charAt(0).toUpperCase() + problem.slice(1), url };
  }
  const basic = basicAuthorization(parsed);
  const target = { url, origin: parsed.origin, path: parsed.pathname + parsed.search, host: parsed.host };
  return basic === undefined ? target : { ...target, basic };
}
