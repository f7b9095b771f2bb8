/**
 * A failed `get` → the exit code and the lines printed on stderr (no stack traces: an operator needs to
 * know which source failed and how, not where in the code).
 */
import { AllSourcesFailedError, BulwarkError, type TierReport } from '@bulwark/core';
import { HttpError, HttpNetworkError, HttpStatusError, NO_COPY_REASONS } from '@bulwark/http';
import { EXIT } from './config.js';

/** The reason a run was interrupted (the AbortController's reason). */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
  constructor(readonly signalName: 'SIGINT' | 'SIGTERM') {
    super(`interrupted by ${signalName}`);
  }
  get exitCode(): number {
    return this.signalName === 'SIGINT' ? EXIT.INTERRUPTED : EXIT.TERMINATED;
  }
}

export interface Failure {
  readonly code: number;
  /** Stable identifier for --json (`BULWARK_ERR_*` or a CLI one). */
  readonly errorCode: string;
  readonly message: string;
  /** More lines for stderr (one per tier). */
  readonly details: readonly string[];
  /** The HTTP status when the failure was one. */
  readonly status: number | undefined;
  /** What happened at each tier, when the ladder ran to the end. */
  readonly tiers: readonly TierReport[];
}

const isSource = (t: TierReport): boolean => t.tier === 'primary' || t.tier.startsWith('fallback-');
const NO_COPY = new Set<string>(Object.values(NO_COPY_REASONS));

export function describeTier(t: TierReport): string {
  return `${t.tier}: ${t.status}${t.reason ? ` — ${t.reason}` : ''} (${Math.round(t.elapsedMs)} ms)`;
}

export function classifyFailure(error: unknown, url: string): Failure {
  if (error instanceof Interrupted) {
    return {
      code: error.exitCode,
      errorCode: 'INTERRUPTED',
      message: error.message,
      details: [],
      status: undefined,
      tiers: [],
    };
  }
  if (error instanceof AllSourcesFailedError) {
    const sources = error.tiers.filter(isSource);
    const stale = error.tiers.find((t) => t.tier === 'stale-cache');
    const copyExisted = stale !== undefined && !NO_COPY.has(stale.reason);
    const details = error.tiers.map(describeTier);
    if (sources.length > 1 || copyExisted) {
      return {
        code: EXIT.ALL_TIERS_FAILED,
        errorCode: error.code,
        message: `all tiers failed for ${url}`,
        details,
        status: undefined,
        tiers: error.tiers,
      };
    }
    // a single source and nothing cached: say what happened to it
    const only = sources[0]?.error;
    if (only instanceof HttpStatusError) {
      return {
        code: EXIT.HTTP,
        errorCode: only.code,
        message: only.message,
        details,
        status: only.status,
        tiers: error.tiers,
      };
    }
    return {
      code: EXIT.NETWORK,
      errorCode: BulwarkError.is(only) ? only.code : error.code,
      message: only instanceof Error ? only.message : error.message,
      details,
      status: undefined,
      tiers: error.tiers,
    };
  }
  if (error instanceof HttpStatusError) {
    return {
      code: EXIT.HTTP,
      errorCode: error.code,
      message: error.message,
      details: [],
      status: error.status,
      tiers: [],
    };
  }
  if (error instanceof HttpError || error instanceof HttpNetworkError) {
    return {
      code: EXIT.NETWORK,
      errorCode: error.code,
      message: error.message,
      details: [],
      status: undefined,
      tiers: [],
    };
  }
  return {
    code: EXIT.INTERNAL,
    errorCode: 'INTERNAL',
    message: `internal error: ${error instanceof Error ? error.message : String(error)}`,
    details: [],
    status: undefined,
    tiers: [],
  };
}
