/**
 * Event-loop pressure: the second shedding signal. A CPU-bound Node server queues work where the
 * concurrency limiter cannot see it (socket buffers, the parser, the loop itself), so the shedder also
 * watches the event loop — its delay (how late the sampler's own interval timer fires: the same meaning
 * on every Node version, whereas `monitorEventLoopDelay` records per loop iteration on Node 22+) and its
 * utilisation (`performance.eventLoopUtilization`).
 *
 * {@link PressureGate} turns those samples into a shed ratio with AIMD on the ratio: each pressured
 * interval adds `increaseStep` (fast), each calm one removes `decreaseStep` (slow), capped at
 * `maxShedRatio` so some requests always get through and keep the measurement honest. Pure arithmetic
 * plus an injected `random`; {@link startEventLoopMonitor} is the real sampler.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { checks } from '@bulwark/core/internal';

export interface EventLoopSample {
  /** Event-loop delay: how late the monitor's interval timer fired, in ms (0 below the resolution). */
  readonly delayMs: number;
  /** Event-loop utilisation over the interval, 0…1. */
  readonly utilization: number;
}

export interface PressureGateOptions {
  /** Shed when the loop's mean delay exceeds this, in ms (0 = ignore delay). @default 100 */
  maxEventLoopDelayMs?: number;
  /** Shed when utilisation exceeds this, 0…1 (0 = ignore utilisation). @default 0 */
  maxEventLoopUtilization?: number;
  /** Added to the shed ratio per pressured interval. @default 0.2 */
  increaseStep?: number;
  /** Removed from the shed ratio per calm interval. @default 0.05 */
  decreaseStep?: number;
  /** The shed ratio never exceeds this. @default 0.95 */
  maxShedRatio?: number;
  /** Uniform random in [0, 1), for tests. @default Math.random */
  random?: () => number;
}

export const PRESSURE_DEFAULTS = Object.freeze({
  maxEventLoopDelayMs: 100,
  maxEventLoopUtilization: 0,
  increaseStep: 0.2,
  decreaseStep: 0.05,
  maxShedRatio: 0.95,
});

const PRESSURE_KEYS = [...Object.keys(PRESSURE_DEFAULTS), 'random'];

export class PressureGate {
  readonly maxEventLoopDelayMs: number;
  readonly maxEventLoopUtilization: number;
  readonly increaseStep: number;
  readonly decreaseStep: number;
  readonly maxShedRatio: number;
  readonly #random: () => number;
  #ratio = 0;
  #last: EventLoopSample = { delayMs: 0, utilization: 0 };
  #pressured = false;

  constructor(options?: PressureGateOptions) {
    const o = checks.optionsObject('pressure', options);
    checks.knownKeys('pressure', o, PRESSURE_KEYS);
    const d = PRESSURE_DEFAULTS;
    this.maxEventLoopDelayMs = checks.nonNegativeMs(
      'pressure.maxEventLoopDelayMs',
      o.maxEventLoopDelayMs ?? d.maxEventLoopDelayMs,
    );
    this.maxEventLoopUtilization = checks.ratio(
      'pressure.maxEventLoopUtilization',
      o.maxEventLoopUtilization ?? d.maxEventLoopUtilization,
    );
    this.increaseStep = checks.number('pressure.increaseStep', o.increaseStep ?? d.increaseStep, {
      above: 0,
      max: 1,
    });
    this.decreaseStep = checks.number('pressure.decreaseStep', o.decreaseStep ?? d.decreaseStep, {
      above: 0,
      max: 1,
    });
    this.maxShedRatio = checks.ratio('pressure.maxShedRatio', o.maxShedRatio ?? d.maxShedRatio);
    this.#random = o.random === undefined ? Math.random : checks.fn('pressure.random', o.random);
  }

  /** True when neither signal is watched (the gate never sheds). */
  get disabled(): boolean {
    return this.maxEventLoopDelayMs === 0 && this.maxEventLoopUtilization === 0;
  }

  /** The fraction of requests being shed now. */
  get shedRatio(): number {
    return this.#ratio;
  }

  /** Whether the last sample was over a threshold. */
  get pressured(): boolean {
    return this.#pressured;
  }

  get lastSample(): EventLoopSample {
    return this.#last;
  }

  /** Feeds one interval's sample. */
  update(sample: EventLoopSample): void {
    this.#last = sample;
    const pressured =
      (this.maxEventLoopDelayMs > 0 && sample.delayMs > this.maxEventLoopDelayMs) ||
      (this.maxEventLoopUtilization > 0 && sample.utilization > this.maxEventLoopUtilization);
    this.#pressured = pressured;
    this.#ratio = pressured
      ? Math.min(this.maxShedRatio, this.#ratio + this.increaseStep)
      : Math.max(0, this.#ratio - this.decreaseStep);
  }

  /** Whether to shed this request (one compare when calm). */
  shouldShed(): boolean {
    const ratio = this.#ratio;
    return ratio > 0 && this.#random() < ratio;
  }
}

export interface EventLoopMonitor {
  /** The most recent sample. */
  readonly last: EventLoopSample;
  stop(): void;
}

/** What the monitor reads at each tick (the real ones by default; a test passes its own). */
export interface EventLoopProbe {
  /** Monotonic milliseconds. @default performance.now */
  now(): number;
  /** Cumulative event-loop utilisation counters, as `performance.eventLoopUtilization()` returns them. */
  eventLoopUtilization(): EventLoopUtilization;
}

const REAL_PROBE: EventLoopProbe = {
  now: () => performance.now(),
  eventLoopUtilization: () => performance.eventLoopUtilization(),
};

/**
 * Turns ticks of an interval timer into samples: the delay is how late the tick came (beyond
 * `intervalMs`; lateness below `resolutionMs` is scheduling noise, not pressure), the utilisation is the
 * event loop's over the interval. Pure: the times and counters come from the probe.
 */
export class EventLoopSampler {
  readonly #intervalMs: number;
  readonly #resolutionMs: number;
  readonly #probe: EventLoopProbe;
  #elu: EventLoopUtilization;
  #previous: number;

  constructor(intervalMs: number, resolutionMs = 10, probe: EventLoopProbe = REAL_PROBE) {
    this.#intervalMs = intervalMs;
    this.#resolutionMs = resolutionMs;
    this.#probe = probe;
    this.#elu = probe.eventLoopUtilization();
    this.#previous = probe.now();
  }

  /** The sample of the interval that ends now (call it from the interval timer). */
  tick(): EventLoopSample {
    const tick = this.#probe.now();
    const now = this.#probe.eventLoopUtilization();
    const utilization = utilizationBetween(this.#elu, now);
    this.#elu = now;
    const lateMs = tick - this.#previous - this.#intervalMs;
    this.#previous = tick;
    return { delayMs: lateMs > this.#resolutionMs ? lateMs : 0, utilization };
  }
}

/** Utilisation between two cumulative readings (what `performance.eventLoopUtilization(b, a)` computes). */
function utilizationBetween(a: EventLoopUtilization, b: EventLoopUtilization): number {
  const active = b.active - a.active;
  const idle = b.idle - a.idle;
  return active + idle > 0 ? active / (active + idle) : 0;
}

/**
 * Samples the real event loop every `intervalMs` (an unref'd timer, so it never keeps the process alive)
 * and hands each sample to `onSample`.
 */
export function startEventLoopMonitor(
  intervalMs: number,
  onSample: (sample: EventLoopSample) => void,
  resolutionMs = 10,
): EventLoopMonitor {
  // The delay is measured as the lateness of this monitor's own timer: the same meaning on every Node
  // version (Node 22+ records monitorEventLoopDelay per loop iteration, which dilutes a mean).
  const sampler = new EventLoopSampler(intervalMs, resolutionMs);
  let last: EventLoopSample = { delayMs: 0, utilization: 0 };
  const timer = setInterval(() => {
    last = sampler.tick();
    onSample(last);
  }, intervalMs);
  timer.unref();
  return {
    get last() {
      return last;
    },
    stop() {
      clearInterval(timer);
    },
  };
}
