/**
 * Adaptive concurrency-limit algorithms, after Netflix's concurrency-limits (`Gradient2Limit`,
 * `AIMDLimit`). Concurrency (Little's law: L = λ·W), not requests per second, is the control variable: the
 * limit grows while latency stays near its long-term baseline and shrinks when latency rises (queueing)
 * or requests are dropped.
 *
 * An algorithm is pure arithmetic: it is fed one aggregated sample per window by {@link ConcurrencyLimiter}
 * (average round-trip time, the most requests in flight during the window, whether any was dropped) and
 * answers the new limit. No clock, no timers: tests drive it sample by sample.
 */
import { checks } from '@bulwark/core/internal';

export interface LimitAlgorithm {
  /** Name reported in `/healthz` (`gradient2`, `aimd`, `fixed`). */
  readonly name: string;
  /** The current limit (may be fractional; the limiter admits `floor(limit)` requests). */
  readonly limit: number;
  /**
   * Feeds one window's sample and returns the new limit.
   * @param rttMs average round-trip time of the window's requests, in ms
   * @param inflight the most requests in flight at once during the window
   * @param didDrop whether any request in the window was dropped (timed out, or failed by overload)
   */
  update(rttMs: number, inflight: number, didDrop: boolean): number;
}

// ---------------------------------------------------------------------------------------------------------
// Gradient2

export interface Gradient2Options {
  /** Limit before any sample. @default 20 */
  initialLimit?: number;
  /** The limit never goes below this. @default 4 */
  minLimit?: number;
  /** The limit never goes above this. @default 1000 */
  maxLimit?: number;
  /** Short RTT may exceed the long-term RTT by this factor before the limit shrinks. @default 1.5 */
  rttTolerance?: number;
  /** Weight of a new estimate against the old limit (0 < s ≤ 1). @default 0.2 */
  smoothing?: number;
  /** Number of samples the long-term RTT averages over (exponential moving average). @default 600 */
  longWindow?: number;
  /** Headroom added on top of the gradient (lets the limit probe upwards). @default 4 */
  queueSize?: number;
  /**
   * Windows between probes (0: never probe, as Netflix's Gradient2). While the limit is reached and the
   * latency stays within the tolerance of the long-term RTT, the algorithm halves the limit for two windows
   * every this many windows (the first drains the queue admitted before, the second is measured). When halving the requests in flight cuts the latency (to at most
   * {@link PROBE_QUEUEING_RATIO} of the window before), the latency was queueing: the halved limit and
   * the probe's RTT (as the long-term baseline) are kept, and the next probe comes as soon. Otherwise the
   * limit is restored and the interval doubles (up to 16×). Without probes, a service started under
   * overload takes its queueing latency as its baseline and keeps a limit far above its capacity.
   * @default 2
   */
  probeInterval?: number;
}

export const GRADIENT2_DEFAULTS = Object.freeze({
  initialLimit: 20,
  minLimit: 4,
  maxLimit: 1000,
  rttTolerance: 1.5,
  smoothing: 0.2,
  longWindow: 600,
  queueSize: 4,
  probeInterval: 2,
} satisfies Required<Gradient2Options>);

const GRADIENT2_KEYS = Object.keys(GRADIENT2_DEFAULTS);

/** Warm-up samples averaged plainly before the long RTT becomes an exponential average (as Netflix). */
const LONG_RTT_WARMUP = 10;

/** A probe window (half the limit) whose RTT is at most this share of the window before it shows queueing: by Little's law the halved limit still carried ≥ 83 % of the throughput. */
export const PROBE_QUEUEING_RATIO = 0.6;

/** The probe interval doubles, while probes show no queueing, up to this many times `probeInterval`. */
const PROBE_BACKOFF_MAX = 16;

/**
 * Gradient2: `gradient = clamp(0.5, 1, tolerance × longRtt / shortRtt)`,
 * `newLimit = limit × gradient + queueSize`, smoothed: `limit = limit × (1 − s) + newLimit × s`.
 * The limit does not grow while the service is "app-limited" (fewer than half the limit in flight).
 * Unlike Netflix's, it probes downwards (see {@link Gradient2Options.probeInterval}): the long-term RTT
 * alone cannot tell a service's own latency from the queueing of an overload it started under.
 */
export function gradient2(options?: Gradient2Options): LimitAlgorithm {
  const o = checks.optionsObject('gradient2', options);
  checks.knownKeys('gradient2', o, GRADIENT2_KEYS);
  const minLimit = checks.positiveInteger('gradient2.minLimit', o.minLimit ?? GRADIENT2_DEFAULTS.minLimit);
  const maxLimit = checks.number('gradient2.maxLimit', o.maxLimit ?? GRADIENT2_DEFAULTS.maxLimit, {
    min: minLimit,
    integer: true,
  });
  const initial = checks.number('gradient2.initialLimit', o.initialLimit ?? GRADIENT2_DEFAULTS.initialLimit, {
    min: minLimit,
    max: maxLimit,
    integer: true,
  });
  const tolerance = checks.number(
    'gradient2.rttTolerance',
    o.rttTolerance ?? GRADIENT2_DEFAULTS.rttTolerance,
    {
      min: 1,
    },
  );
  const smoothing = checks.number('gradient2.smoothing', o.smoothing ?? GRADIENT2_DEFAULTS.smoothing, {
    above: 0,
    max: 1,
  });
  const longWindow = checks.positiveInteger(
    'gradient2.longWindow',
    o.longWindow ?? GRADIENT2_DEFAULTS.longWindow,
  );
  const queueSize = checks.number('gradient2.queueSize', o.queueSize ?? GRADIENT2_DEFAULTS.queueSize, {
    min: 0,
  });
  const probeInterval = checks.number(
    'gradient2.probeInterval',
    o.probeInterval ?? GRADIENT2_DEFAULTS.probeInterval,
    { min: 0, integer: true },
  );

  let limit = initial;
  let longRtt = 0;
  let samples = 0;
  const alpha = 2 / (longWindow + 1);
  // Probing: windows left before the next probe, the current interval, and — during a probe window —
  // the limit and RTT it is compared with (probeFrom > 0 means the window now closing is a probe).
  let interval = probeInterval;
  let countdown = probeInterval;
  let probeFrom = 0;
  let probeRtt = 0;
  let probeWindow = 0;

  return {
    name: 'gradient2',
    get limit() {
      return limit;
    },
    update(rttMs, inflight, _didDrop) {
      if (!(rttMs > 0)) return limit;
      if (probeFrom > 0) {
        // The first probe window drains the queue admitted before it; the second is measured: did
        // halving the requests in flight cut the latency?
        if (++probeWindow < 2) return limit;
        const from = probeFrom;
        probeFrom = 0;
        if (rttMs <= probeRtt * PROBE_QUEUEING_RATIO) {
          longRtt = Math.min(longRtt, rttMs); // queueing: keep the halved limit and its latency
          interval = probeInterval;
        } else {
          limit = from; // no queueing: restore, probe less often
          interval = Math.min(interval * 2, probeInterval * PROBE_BACKOFF_MAX);
        }
        countdown = interval;
        return limit;
      }
      // Long-term RTT: a plain mean over the warm-up, then an exponential moving average.
      samples++;
      if (samples <= LONG_RTT_WARMUP) longRtt += (rttMs - longRtt) / samples;
      else longRtt = longRtt * (1 - alpha) + rttMs * alpha;
      // Latency fell far below the baseline (a past overload inflated it): decay the baseline faster.
      if (longRtt / rttMs > 2) longRtt *= 0.95;
      // App-limited: too little load to learn anything about the limit.
      if (inflight < limit / 2) return limit;
      const gradient = Math.max(0.5, Math.min(1, (tolerance * longRtt) / rttMs));
      // At the limit with no latency signal: the baseline may be queueing; probe (see probeInterval).
      if (probeInterval > 0 && gradient === 1 && inflight >= Math.floor(limit) && --countdown <= 0) {
        const half = Math.max(minLimit, Math.floor(limit / 2));
        if (half < Math.floor(limit)) {
          probeFrom = limit;
          probeRtt = rttMs;
          probeWindow = 0;
          limit = half;
          return limit;
        }
        countdown = interval;
      }
      const estimate = limit * gradient + queueSize;
      limit = Math.max(minLimit, Math.min(maxLimit, limit * (1 - smoothing) + estimate * smoothing));
      return limit;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// AIMD

export interface AimdOptions {
  /** Limit before any sample. @default 20 */
  initialLimit?: number;
  /** @default 4 */
  minLimit?: number;
  /** @default 1000 */
  maxLimit?: number;
  /** Multiplier applied on a drop or a slow window (0 < r < 1). @default 0.9 */
  backoffRatio?: number;
  /** A window whose average RTT exceeds this counts as a drop, in ms. @default 5000 */
  latencyThresholdMs?: number;
}

export const AIMD_DEFAULTS = Object.freeze({
  initialLimit: 20,
  minLimit: 4,
  maxLimit: 1000,
  backoffRatio: 0.9,
  latencyThresholdMs: 5000,
} satisfies Required<AimdOptions>);

const AIMD_KEYS = Object.keys(AIMD_DEFAULTS);

/**
 * Additive increase, multiplicative decrease: +1 per window while at least half the limit is in use;
 * `× backoffRatio` when a request was dropped or the window's RTT exceeded `latencyThresholdMs`.
 */
export function aimd(options?: AimdOptions): LimitAlgorithm {
  const o = checks.optionsObject('aimd', options);
  checks.knownKeys('aimd', o, AIMD_KEYS);
  const minLimit = checks.positiveInteger('aimd.minLimit', o.minLimit ?? AIMD_DEFAULTS.minLimit);
  const maxLimit = checks.number('aimd.maxLimit', o.maxLimit ?? AIMD_DEFAULTS.maxLimit, {
    min: minLimit,
    integer: true,
  });
  const initial = checks.number('aimd.initialLimit', o.initialLimit ?? AIMD_DEFAULTS.initialLimit, {
    min: minLimit,
    max: maxLimit,
    integer: true,
  });
  const backoffRatio = checks.number('aimd.backoffRatio', o.backoffRatio ?? AIMD_DEFAULTS.backoffRatio, {
    above: 0,
    max: 0.999,
  });
  const latencyThresholdMs = checks.positiveMs(
    'aimd.latencyThresholdMs',
    o.latencyThresholdMs ?? AIMD_DEFAULTS.latencyThresholdMs,
    true,
  );

  let limit = initial;
  return {
    name: 'aimd',
    get limit() {
      return limit;
    },
    update(rttMs, inflight, didDrop) {
      if (didDrop || rttMs > latencyThresholdMs) {
        limit = Math.max(minLimit, Math.floor(limit * backoffRatio));
      } else if (inflight * 2 >= limit) {
        limit = Math.min(maxLimit, limit + 1);
      }
      return limit;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Fixed

/** A limit that never moves (a plain in-flight cap). */
export function fixed(limit: number): LimitAlgorithm {
  const l = checks.positiveInteger('fixed.limit', limit);
  return {
    name: 'fixed',
    limit: l,
    update: () => l,
  };
}
