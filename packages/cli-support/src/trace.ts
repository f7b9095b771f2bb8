/**
 * W3C trace context for a one-shot CLI run, taken from the environment as OpenTelemetry's "environment
 * variables as context propagation carriers" describe it: a caller that is traced (a CI job, a script
 * run under an instrumented tool) sets `TRACEPARENT` (and maybe `TRACESTATE`), and every request of the
 * run carries a `traceparent` naming the same trace, with the run as a child span of the caller's — so
 * the server's spans join the caller's trace. The CLI records no spans of its own (nothing is exported);
 * without `TRACEPARENT` nothing is sent.
 */
import { randomBytes } from 'node:crypto';

export const TRACEPARENT_ENV = 'TRACEPARENT';
export const TRACESTATE_ENV = 'TRACESTATE';

/** The headers to send, and the trace id (for `-v`). */
export interface RunTrace {
  readonly traceId: string;
  readonly headers: Readonly<Record<string, string>>;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZEROS = /^0+$/;

/**
 * The run's trace context from `env`: `undefined` when `TRACEPARENT` is unset or empty, a problem (for a
 * warning: an invalid context is ignored, as the W3C spec says) when it is not a valid traceparent, else
 * the headers every request of the run carries.
 */
export function traceFromEnv(
  env: NodeJS.ProcessEnv,
  newSpanId: () => string = () => randomBytes(8).toString('hex'),
): RunTrace | { readonly problem: string } | undefined {
  const raw = env[TRACEPARENT_ENV];
  if (raw === undefined || raw === '') return undefined;
  const m = TRACEPARENT.exec(raw.trim());
  const [, version, traceId, parentId, flags, rest] = m ?? [];
  if (
    m === null ||
    version === 'ff' ||
    (version === '00' && rest !== undefined) ||
    ZEROS.test(traceId!) ||
    ZEROS.test(parentId!)
  ) {
    return {
      problem: `${TRACEPARENT_ENV} is not a W3C traceparent (expected 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>, not all zeros); no trace context is sent`,
    };
  }
  let spanId = newSpanId();
  while (ZEROS.test(spanId)) spanId = newSpanId();
  const headers: Record<string, string> = { traceparent: `00-${traceId!}-${spanId}-${flags!}` };
  const state = env[TRACESTATE_ENV];
  // tracestate: passed on as given when it is one header line of printable ASCII (W3C: at most 512 chars)
  if (state !== undefined && state !== '' && state.length <= 512 && /^[\x20-\x7e]+$/.test(state))
    headers['tracestate'] = state;
  return { traceId: traceId!, headers };
}

/** `headers` with the trace headers added, unless the user set a `traceparent` of their own (it wins). */
export function withTrace(
  headers: Readonly<Record<string, string>> | undefined,
  trace: RunTrace | undefined,
): Record<string, string> | undefined {
  if (trace === undefined) return headers === undefined ? undefined : { ...headers };
  const own = headers !== undefined && Object.keys(headers).some((k) => k.toLowerCase() === 'traceparent');
  return own ? { ...headers } : { ...headers, ...trace.headers };
}
