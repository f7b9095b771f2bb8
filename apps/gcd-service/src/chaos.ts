/**
 * A game day (docs/ops/game-day.md): the `CHAOS_*` settings become @bulwark/core chaos policies placed
 * where the reactions to rehearse are real —
 *
 * - validator faults inside the validator's breaker (below its fallback and retry), so the breaker
 *   counts them, opens, and requests are validated locally (`x-gcd-validation: local-fallback`);
 * - validator latency inside the per-attempt timeout, so a long delay is a real timeout;
 * - compute faults around the pool task, so a computation fails as if its worker had crashed (503
 *   `GCD_ERR_WORKER_FAILED`, with `Retry-After`).
 *
 * Built only when some rate is above 0 (off by default, nothing in the request path). One switch turns
 * them all off and on at run time (SIGUSR2 in main.ts); every change is logged by the caller.
 */
import { chaos, seededRandom, type ChaosPolicy } from '@bulwark/core';
import type { ChaosConfig } from './config.js';

export interface GameDay {
  /** Injected before the validator's per-attempt timeout (fault first, then latency); empty if none. */
  readonly validator: readonly ChaosPolicy[];
  /** Injected around a pool computation; undefined if `CHAOS_COMPUTE_FAULT_RATE` is 0. */
  readonly compute: ChaosPolicy | undefined;
  /** Every policy, with the name it is counted under (`bulwark_chaos_injections_total{name}`). */
  readonly policies: ReadonlyMap<string, ChaosPolicy>;
  /** True while the policies inject (they start on). */
  readonly enabled: boolean;
  /** Switches every policy on or off; returns the new state. */
  setEnabled(enabled: boolean): boolean;
  /** Flips the switch; returns the new state. */
  toggle(): boolean;
}

/** The policies for `config` (each with its own dice: `CHAOS_SEED` + 0, + 1, + 2 when seeded). */
export function createGameDay(config: ChaosConfig, computeFault: () => unknown): GameDay {
  let stream = 0;
  const random = () => (config.seed === undefined ? {} : { random: seededRandom(config.seed + stream++) });
  const policies = new Map<string, ChaosPolicy>();
  const validator: ChaosPolicy[] = [];
  if (config.validatorFaultRate > 0) {
    const name = 'chaos-validator-fault';
    const policy = chaos.fault({ name, rate: config.validatorFaultRate, ...random() });
    policies.set(name, policy);
    validator.push(policy);
  }
  if (config.validatorLatencyRate > 0) {
    const name = 'chaos-validator-latency';
    const policy = chaos.latency({
      name,
      rate: config.validatorLatencyRate,
      latencyMs: config.validatorLatencyMs,
      ...random(),
    });
    policies.set(name, policy);
    validator.push(policy);
  }
  let compute: ChaosPolicy | undefined;
  if (config.computeFaultRate > 0) {
    const name = 'chaos-compute-fault';
    compute = chaos.fault({ name, rate: config.computeFaultRate, fault: computeFault, ...random() });
    policies.set(name, compute);
  }
  let enabled = true;
  return {
    validator,
    compute,
    policies,
    get enabled() {
      return enabled;
    },
    setEnabled(on) {
      enabled = on;
      for (const policy of policies.values()) policy.enabled = on;
      return enabled;
    },
    toggle() {
      return this.setEnabled(!enabled);
    },
  };
}
