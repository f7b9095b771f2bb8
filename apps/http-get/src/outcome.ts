/**
 * A failed run → the exit code and the lines printed on stderr (no stack traces: an operator needs to
 * know which source failed and how, not where in the code).
 */
import { hidePasswords } from '@bulwark/cli-support';
import {
  AllSourcesFailedError,
  BulwarkError,
  DeadlineExceededError,
  TimeoutError,
  type TierReport,
} from '@bulwark/core';
import { HttpError, HttpNetworkError, HttpStatusError, NO_COPY_CODES, isSourceTier } from '@bulwark/http';
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

/** One tier of the ladder as it ended (a `TierReport`, or the same from the client's tier events). */
export interface TierLine {
  readonly tier: string;
  readonly status: TierReport['status'];
  /** For programs: the skip code, or a failure's code (see `TierReport.code`). */
  readonly code?: string | undefined;
  readonly reason: string;
  readonly elapsedMs: number;
  readonly error?: unknown;
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
  /** What happened at each tier tried. */
  readonly tiers: readonly TierLine[];
}

const isSource = (t: TierLine): boolean => isSourceTier(t.tier);

/** URLs longer than this are shortened in messages (a 100 KB URL must not become a 100 KB error line). */
const LONG_URL = 200;

/**
 * Shortens every http(s) URL longer than 200 characters in `text` (its start, how much was left out, its
 * end), and hides the password of a `user:pass@` in it (`user:***@`): stderr ends up in logs.
 */
export function shortenUrls(text: string): string {
  return text.replace(/https?:\/\/[^\s"')]+/g, (found) => {
    const url = hidePasswords(found);
    return url.length <= LONG_URL
      ? url
      : `${url.slice(0, 120)}…(${url.length - 170} more characters)…${url.slice(-50)}`;
  });
}

export function describeTier(t: TierLine): string {
  return `${t.tier}: ${t.status}${t.reason ? ` — ${t.reason}` : ''} (${Math.round(t.elapsedMs)} ms)`;
}

/** An error of the operating system (an errno), e.g. from writing the output. */
function errnoOf(error: unknown): string | undefined {
  if (BulwarkError.is(error)) return undefined;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** The output (a file, or stdout) could not be written: exit 74, one line that says what and why. */
export function ioFailure(error: unknown, output: string | undefined, tiers: readonly TierLine[]): Failure {
  const errno = errnoOf(error) ?? 'EIO';
  const message = error instanceof Error ? error.message : String(error);
  return {
    code: EXIT.IO,
    errorCode: errno,
    message: `cannot write ${output ?? 'stdout'}: ${message}`,
    details: [],
    status: undefined,
    tiers,
  };
}

/**
 * What a failed `download` means. `ladder` is every tier that ended, as the client reported them (a
 * definitive answer from the primary — a 404 — rejects with the error alone). `output` is `-o`'s path:
 * an operating-system error is a failure to write it.
 */
export function classifyFailure(
  error: unknown,
  url: string,
  ladder: readonly TierLine[] = [],
  output?: string,
): Failure {
  if (error instanceof Interrupted) {
    return {
      code: error.exitCode,
      errorCode: 'INTERRUPTED',
      message: error.message,
      details: [],
      status: undefined,
      tiers: ladder,
    };
  }
  if (errnoOf(error) !== undefined) return ioFailure(error, output, ladder);
  if (error instanceof AllSourcesFailedError) {
    const sources = error.tiers.filter(isSource);
    const stale = error.tiers.find((t) => t.tier === 'stale-cache');
    const copyExisted = stale !== undefined && !(stale.code !== undefined && NO_COPY_CODES.has(stale.code));
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
      details: ladder.map(describeTier),
      status: error.status,
      tiers: ladder,
    };
  }
  // a deadline (the caller's budget, or a timeout) is a network-class failure, never a bug
  if (
    error instanceof HttpError ||
    error instanceof HttpNetworkError ||
    DeadlineExceededError.is(error) ||
    TimeoutError.is(error)
  ) {
    return {
      code: EXIT.NETWORK,
      errorCode: error.code,
      message: error.message,
      details: ladder.map(describeTier),
      status: undefined,
      tiers: ladder,
    };
  }
  return {
    code: EXIT.INTERNAL,
    errorCode: 'INTERNAL',
    message: `internal error: ${error instanceof Error ? error.message : String(error)}`,
    details: [],
    status: undefined,
    tiers: ladder,
  };
}
