/**
 * The client's degradation tiers as data: which kind of tier a ladder tier is, and the codes a tier
 * reports when it skips (`TierReport.code`). Programs compare these codes and kinds, never the
 * human-readable reasons or the tier names.
 */

/** Which kind of tier served (or was tried). */
export type HttpTier = 'fresh-cache' | 'primary' | 'fallback' | 'stale-cache';

/** The kind of a ladder tier, from its name (`fresh-cache`, `primary`, `fallback-1`, …, `stale-cache`). */
export function tierOf(name: string): HttpTier {
  return /^fallback-\d+$/.test(name) ? 'fallback' : (name as HttpTier);
}

/** True for the tiers that go to the network (`primary`, `fallback-N`). */
export function isSourceTier(name: string): boolean {
  const kind = tierOf(name);
  return kind === 'primary' || kind === 'fallback';
}

/** Why a tier had nothing to offer: the `code` of its `TierReport` / tier event when it skipped. */
export const TIER_SKIP_CODES = Object.freeze({
  /** The client has no cache. */
  CACHE_DISABLED: 'CACHE_DISABLED',
  /** `cacheMode: 'no-store'` for this call. */
  NO_STORE: 'NO_STORE',
  /** Nothing is stored for this URL. */
  NOT_CACHED: 'NOT_CACHED',
  /** The cache could not be read (the store reported the error). */
  CACHE_READ_FAILED: 'CACHE_READ_FAILED',
  /** `cacheMode: 'no-cache'`: the caller asked for revalidation. */
  REVALIDATION_REQUESTED: 'REVALIDATION_REQUESTED',
  /** The stored response must be revalidated before use (`no-cache`, or `must-revalidate` when stale). */
  MUST_REVALIDATE: 'MUST_REVALIDATE',
  /** The stored copy is past its freshness lifetime. */
  STALE: 'STALE',
  /** The stored response does not match this request (e.g. `Vary`). */
  NOT_MATCHING: 'NOT_MATCHING',
  /** The stored copy is further past freshness than the stale tier's bound allows. */
  TOO_STALE: 'TOO_STALE',
  /** The stored body failed its check while being read (the store reported it). */
  CACHE_DAMAGED: 'CACHE_DAMAGED',
  /** The call's total deadline was spent before this source's turn. */
  DEADLINE_SPENT: 'DEADLINE_SPENT',
});

export type TierSkipCode = (typeof TIER_SKIP_CODES)[keyof typeof TIER_SKIP_CODES];

/** The skip codes meaning "no copy was there to judge" (as opposed to a copy that existed but was unusable). */
export const NO_COPY_CODES: ReadonlySet<string> = new Set<TierSkipCode>([
  TIER_SKIP_CODES.CACHE_DISABLED,
  TIER_SKIP_CODES.NO_STORE,
  TIER_SKIP_CODES.NOT_CACHED,
]);
