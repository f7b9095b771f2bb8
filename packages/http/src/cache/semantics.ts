/**
 * RFC 9111 / RFC 5861 decisions for the cache tiers, on top of http-cache-semantics (private cache).
 *
 * - fresh tier: serve when the stored response satisfies the request without revalidation, or within
 *   its `stale-while-revalidate` window (then a background revalidation is due);
 * - source tiers: conditional request headers (`If-None-Match` / `If-Modified-Since`) from the stored
 *   response, and the refreshed policy after a `304`;
 * - stale tier: serve a stale copy whose staleness is within the bound, unless the response forbids it
 *   (`must-revalidate`, `no-cache`).
 */
import CachePolicy from 'http-cache-semantics';
import type { TierSkipCode } from '../client/tiers.js';
import type { ResponseHeaders } from '../client/transport.js';

/** http-cache-semantics with an injectable wall clock (it reads `this.now()` for every age). */
export type PolicyClass = typeof CachePolicy;

export function policyClass(now: () => number): PolicyClass {
  if (now === Date.now) return CachePolicy;
  return class ClockedCachePolicy extends CachePolicy {
    now(): number {
      return now();
    }
  };
}

/** The request as http-cache-semantics sees it. */
export function cacheRequest(
  url: string,
  headers: Readonly<Record<string, string>>,
): CachePolicy.HttpRequest {
  const u = new URL(url);
  return { url: u.pathname + u.search, method: 'GET', headers: { ...headers, host: u.host } };
}

export function newPolicy(
  Policy: PolicyClass,
  req: CachePolicy.HttpRequest,
  status: number,
  headers: ResponseHeaders,
): CachePolicy {
  return new Policy(req, { status, headers }, { shared: false });
}

export function restore(
  Policy: PolicyClass,
  entry: { readonly policy: CachePolicy.CachePolicyObject },
): CachePolicy | undefined {
  try {
    return Policy.fromObject(entry.policy);
  } catch {
    return undefined;
  }
}

/** Age and freshness of a stored response, in ms. */
export interface CacheAge {
  /** Age of the stored response now (its `Age` header plus the time it has been stored). */
  readonly ageMs: number;
  /** Freshness lifetime (max-age, Expires or heuristic). */
  readonly lifetimeMs: number;
  /** How far past its freshness it is (0 while fresh). */
  readonly stalenessMs: number;
}

export function ageOf(policy: CachePolicy): CacheAge {
  const ageMs = Math.round(policy.age() * 1000);
  const lifetimeMs = Math.round(policy.maxAge() * 1000);
  return { ageMs, lifetimeMs, stalenessMs: Math.max(0, ageMs - lifetimeMs) };
}

export type FreshDecision =
  | { readonly use: 'fresh' | 'stale-while-revalidate'; readonly age: CacheAge }
  | { readonly use: 'no'; readonly code: TierSkipCode; readonly reason: string; readonly age: CacheAge };

export function freshDecision(policy: CachePolicy, req: CachePolicy.HttpRequest): FreshDecision {
  const age = ageOf(policy);
  const result = policy.evaluateRequest(req);
  if (result.response !== undefined && result.revalidation === undefined) return { use: 'fresh', age };
  if (result.response !== undefined && result.revalidation?.synchronous === false) {
    return { use: 'stale-while-revalidate', age };
  }
  const cc = policy.toObject().rescc;
  if (cc['no-cache'] !== undefined) {
    return {
      use: 'no',
      code: 'MUST_REVALIDATE',
      reason: 'stored response has no-cache: must revalidate',
      age,
    };
  }
  if (cc['must-revalidate'] !== undefined && age.stalenessMs > 0) {
    return { use: 'no', code: 'STALE', reason: `stale by ${age.stalenessMs} ms (must-revalidate)`, age };
  }
  if (age.stalenessMs > 0 || age.lifetimeMs === 0) {
    const reason = `stale by ${age.stalenessMs} ms (age ${age.ageMs} ms, max-age ${age.lifetimeMs} ms)`;
    return { use: 'no', code: 'STALE', reason, age };
  }
  return { use: 'no', code: 'NOT_MATCHING', reason: 'stored response does not match the request', age };
}

/** Seconds of a Cache-Control directive such as `stale-if-error=60`, in ms; undefined when absent. */
function directiveMs(policy: CachePolicy, name: string): number | undefined {
  const raw = policy.toObject().rescc[name];
  if (raw === undefined) return undefined;
  const seconds = Number(raw);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

export type StaleDecision =
  | { readonly use: true; readonly age: CacheAge; readonly boundMs: number }
  | { readonly use: false; readonly code: TierSkipCode; readonly reason: string; readonly age: CacheAge };

/**
 * Whether the stale tier may serve this copy. The bound is `maxStaleMs` when given, else the response's
 * `stale-if-error` window when it has one, else `defaultMaxStaleMs`.
 */
export function staleDecision(
  policy: CachePolicy,
  maxStaleMs: number | undefined,
  defaultMaxStaleMs: number,
): StaleDecision {
  const age = ageOf(policy);
  const cc = policy.toObject().rescc;
  if (cc['must-revalidate'] !== undefined) {
    const reason = 'stored response has must-revalidate: never served stale';
    return { use: false, code: 'MUST_REVALIDATE', reason, age };
  }
  if (cc['no-cache'] !== undefined) {
    const reason = 'stored response has no-cache: never served without revalidation';
    return { use: false, code: 'MUST_REVALIDATE', reason, age };
  }
  const boundMs = maxStaleMs ?? directiveMs(policy, 'stale-if-error') ?? defaultMaxStaleMs;
  if (age.stalenessMs > boundMs) {
    return {
      use: false,
      code: 'TOO_STALE',
      reason: `stale copy is ${age.stalenessMs} ms past freshness; max-stale ${boundMs} ms`,
      age,
    };
  }
  return { use: true, age, boundMs };
}

/** Headers for a conditional request that revalidates the stored response. */
export function revalidationHeaders(
  policy: CachePolicy,
  req: CachePolicy.HttpRequest,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(policy.revalidationHeaders(req))) {
    if (k === 'host' || v === undefined) continue;
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** True when the stored response has a validator (ETag or Last-Modified). */
export function hasValidator(policy: CachePolicy): boolean {
  const h = policy.toObject().resh;
  return h['etag'] !== undefined || h['last-modified'] !== undefined;
}
