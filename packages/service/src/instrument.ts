/**
 * `instrument(policy, { name })`: turns a Bulwark policy's events and state into metrics under one naming
 * scheme. Duck-typed: it subscribes to whichever `on…` functions the policy has (circuit breaker
 * `onStateChange` / `onSuccess` / `onFailure` / `onReject`, retry `onRetry` / `onGiveUp` / `onSuccess`,
 * bulkhead `onReject`, timeout `onTimeout`, rate limiter `onReject` / `onStoreError`, fallback
 * `onFallback`, breaker `onIgnored` / `onSlowCall`, hedge `onHedge`, chaos `onInject`, rate limiter
 * `onWait`) and reads state (`state`, `running`, `queued`) at scrape time, so any policy — ours or one
 * shaped like ours — can be watched. Returns a disposable that unsubscribes and drops its gauges.
 */
import { InvalidOptionError, type Disposable } from '@bulwark/core';
import { safeLabel, type ServiceMetrics } from './metrics.js';

export interface InstrumentOptions {
  /** The `name` label. @default the policy's own `name`, else the policy kind */
  name?: string;
  /** The `policy` label (`circuit_breaker`, `retry`, `bulkhead`, `timeout`, `rate_limiter`, `fallback`, …). @default inferred */
  policy?: string;
}

type Listener = (event: Record<string, unknown>) => void;
type Subscribe = (listener: Listener) => Disposable;

/** A policy as seen by the adapter: any object; only the members it finds are used. */
export type InstrumentablePolicy = object;

/** States reported for every breaker even before it visits them (so dashboards see all series). */
const BASE_CIRCUIT_STATES = ['closed', 'open', 'half_open', 'isolated'];

/** The registries of instrumented breakers and bulkheads, read by the gauges at scrape time. */
export class PolicyRegistry {
  readonly circuits = new Map<
    object,
    { name: string; state: string; states: string[]; read?: () => unknown }
  >();
  readonly bulkheads = new Map<object, { name: string; read: () => { active: number; queued: number } }>();

  circuitValues(): Array<{ name: string; state: string; states: readonly string[] }> {
    const out = [];
    for (const c of this.circuits.values()) {
      const live = c.read === undefined ? undefined : normalizeState(c.read());
      if (live !== undefined && live !== c.state) {
        c.state = live;
        if (!c.states.includes(live)) c.states.push(live);
      }
      out.push({ name: c.name, state: c.state, states: c.states });
    }
    return out;
  }

  bulkheadValues(): Array<{ name: string; active: number; queued: number }> {
    return [...this.bulkheads.values()].map((b) => ({ name: b.name, ...b.read() }));
  }
}

export function instrumentPolicy(
  metrics: ServiceMetrics,
  registry: PolicyRegistry,
  policy: InstrumentablePolicy,
  options: InstrumentOptions = {},
): Disposable {
  if (typeof policy !== 'object' || policy === null) {
    throw new InvalidOptionError('instrument.policy', policy, 'a policy object');
  }
  const p = policy as Record<string, unknown>;
  const kind = options.policy ?? inferKind(p);
  const name = options.name ?? (typeof p.name === 'string' && p.name !== '' ? p.name : kind);
  if (typeof name !== 'string' || name === '') {
    throw new InvalidOptionError('instrument.name', name, 'a non-empty string');
  }
  const subscriptions: Disposable[] = [];
  const on = (event: string, listener: Listener): boolean => {
    const subscribe = p[event];
    if (typeof subscribe !== 'function') return false;
    subscriptions.push((subscribe as Subscribe).call(policy, listener));
    return true;
  };
  const calls = (outcome: string) => metrics.calls.labels(kind, name, outcome);
  const success = calls('success');
  const failure = calls('failure');
  const rejected = calls('rejected');

  // circuit breaker state
  if (typeof p.onStateChange === 'function') {
    const initial = normalizeState(p.state) ?? 'closed';
    const entry = {
      name,
      state: initial,
      states: [...new Set([...BASE_CIRCUIT_STATES, initial])],
      ...('state' in p ? { read: () => p.state } : {}),
    };
    registry.circuits.set(policy, entry);
    on('onStateChange', (e) => {
      const from = normalizeState(e.from ?? e.previous) ?? entry.state;
      const to = normalizeState(e.to ?? e.state ?? e.current);
      if (to === undefined) return;
      metrics.circuitTransitions.inc({ name, from, to });
      entry.state = to;
      if (!entry.states.includes(to)) entry.states.push(to);
    });
  }

  // bulkhead occupancy
  if (typeof p.running === 'number' || typeof p.active === 'number') {
    registry.bulkheads.set(policy, {
      name,
      read: () => ({
        active: num(p.running ?? p.active),
        queued: num(p.queued ?? p.queueLength ?? p.pending),
      }),
    });
  }

  on('onSuccess', () => success.inc());
  on('onFailure', () => failure.inc());
  on('onReject', (e) => {
    rejected.inc();
    metrics.rejections.inc({
      policy: kind,
      name,
      reason: safeLabel(underscore(e.reason), kind === 'rate_limiter' ? 'rate_limited' : 'rejected'),
    });
  });
  on('onRetry', () => metrics.retries.inc({ name }));
  on('onGiveUp', () => calls('give_up').inc());
  on('onTimeout', () => calls('timeout').inc());
  on('onIgnored', () => calls('ignored').inc());
  on('onSlowCall', () => metrics.slowCalls.inc({ policy: kind, name }));
  on('onFallback', () => calls('fallback').inc());
  on('onStoreError', () => metrics.rateLimitStoreErrors.inc({ name }));
  on('onHedge', (e) => {
    if (e.type === 'started') metrics.hedges.inc({ name });
    else if (e.type === 'won' && num(e.attempt) > 1) metrics.hedgeWins.inc({ name });
  });
  on('onInject', (e) => metrics.chaosInjections.inc({ name, kind: safeLabel(e.kind, 'unknown') }));
  on('onWait', (e) => {
    metrics.rateLimitWaits.inc({ name });
    metrics.rateLimitWaitSeconds.inc({ name }, Math.max(0, num(e.waitedMs)) / 1000);
  });

  let disposed = false;
  return {
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const s of subscriptions) s.dispose();
      registry.circuits.delete(policy);
      registry.bulkheads.delete(policy);
    },
  };
}

/** `CircuitBreakerPolicy` → `circuit_breaker`; duck-typed when the class name says nothing. */
function inferKind(p: Record<string, unknown>): string {
  const ctor = (p.constructor as { name?: unknown } | undefined)?.name;
  if (typeof ctor === 'string' && ctor.endsWith('Policy') && ctor.length > 'Policy'.length) {
    return snake(ctor.slice(0, -'Policy'.length));
  }
  if (typeof p.onStateChange === 'function') return 'circuit_breaker';
  if (typeof p.onRetry === 'function') return 'retry';
  if (typeof p.onTimeout === 'function') return 'timeout';
  if (typeof p.onStoreError === 'function' || typeof p.tryAcquire === 'function') return 'rate_limiter';
  if (typeof p.running === 'number') return 'bulkhead';
  if (typeof p.onFallback === 'function') return 'fallback';
  if (typeof p.onHedge === 'function') return 'hedge';
  if (typeof p.onInject === 'function') return 'chaos';
  return 'policy';
}

function snake(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

function underscore(value: unknown): unknown {
  return typeof value === 'string' ? value.replace(/-/g, '_') : value;
}

function normalizeState(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const s = value
    .replace(/-/g, '_')
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toLowerCase();
  return /^[a-z][a-z0-9_]{0,31}$/.test(s) ? s : undefined;
}

function num(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}
