/**
 * The gcd routes: the HTML form, the form's POST, and the JSON API. Every client error goes through
 * the error handler in server.ts, which answers JSON (`/api/…`) or an HTML page (`POST /gcd`).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { ClientClosedError, traceStep } from '@bulwark/service';
import type { GcdComputer } from './compute.js';
import { GcdError } from './errors.js';
import { FAVICON, formPage, resultPage, STYLESHEET } from './html.js';
import { parseGcdParams, type GcdInput, type RawParams } from './validation.js';

/** How a request's numbers were validated (also the `x-gcd-validation` response header). */
export type ValidationMode = 'local' | 'remote' | 'local-fallback';

/** Checks a pair beyond the local rules (the upstream validator), or says it could not. */
export type ValidateStep = (
  raw: { n: string; m: string },
  signal: AbortSignal | undefined,
) => Promise<ValidationMode>;

export interface GcdRoutesOptions {
  readonly maxDigits: number;
  /** A request that waits (validator, pool) longer than this gets 503 (`HANDLER_TIMEOUT_MS`). */
  readonly handlerTimeoutMs: number;
  readonly computer: GcdComputer;
  /** The upstream validator step; absent = local validation only. */
  readonly validate?: ValidateStep | undefined;
  /** Called for each request validated locally only (no validator configured), for metrics. */
  readonly onLocal?: (() => void) | undefined;
}

/** Route config flag read by the error handler: answer errors of this route as HTML. */
export interface HtmlRouteConfig {
  html?: boolean;
}

const FORM_TYPE = 'application/x-www-form-urlencoded';

/** JSON routes get the kit's `api` security headers (OWASP's REST set), not the HTML document set. */
export const API_ROUTE = { bulwark: { securityHeaders: 'api' } } as const;

/** The JSON body of `GET /api/gcd` (a response schema lets Fastify serialise it with fast-json-stringify). */
const API_ANSWER_SCHEMA = {
  type: 'object',
  properties: { n: { type: 'string' }, m: { type: 'string' }, gcd: { type: 'string' } },
  required: ['n', 'm', 'gcd'],
} as const;

function apiAnswer({ input, gcd }: Answer): { n: string; m: string; gcd: string } {
  return { n: input.n, m: input.m, gcd };
}

/** The answer to a valid request: its numbers and their gcd. */
interface Answer {
  readonly input: GcdInput;
  readonly gcd: string;
}

/** The error of a request that waited longer than `HANDLER_TIMEOUT_MS` (503, like a compute timeout). */
function handlerTimeoutError(handlerTimeoutMs: number): GcdError {
  return new GcdError(
    'GCD_ERR_COMPUTE_TIMEOUT',
    `The request did not complete within ${handlerTimeoutMs} ms and was stopped.`,
    { 'retry-after': '1' },
  );
}

/**
 * The signal of the work a request waits on (the validator call, the worker pool): aborted when the
 * client goes away before the answer is sent, or — the backstop behind the compute and validator
 * deadlines — when the request has waited `handlerTimeoutMs`, with {@link handlerTimeoutError} as reason.
 *
 * Not Fastify's `handlerTimeout` / `request.signal`: Fastify pays an AbortController, a timer and a
 * listener for every request of such a route, the inline ones too, whose synchronous work no timer can
 * interrupt (it is bounded by `INLINE_MAX_DIGITS` instead); and in Fastify 5.12 `request.signal` also
 * aborts as soon as a POST body has been read (fastify/fastify#6725), which would cancel every form
 * submission's validator call.
 */
export function waitSignal(reply: FastifyReply, handlerTimeoutMs: number): AbortSignal {
  const controller = new AbortController();
  const res = reply.raw;
  const timer = setTimeout(() => controller.abort(handlerTimeoutError(handlerTimeoutMs)), handlerTimeoutMs);
  res.once('close', () => {
    clearTimeout(timer);
    if (!res.writableFinished) controller.abort(new ClientClosedError());
  });
  return controller.signal;
}

/** `work`, or a rejection with `signal.reason` as soon as `signal` aborts (whether `work` heeds it or not). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}

export function registerGcdRoutes(app: FastifyInstance, options: GcdRoutesOptions): void {
  const { maxDigits, handlerTimeoutMs, computer, validate, onLocal } = options;
  const form = formPage(maxDigits);
  /**
   * A query or form longer than this cannot be two inline-sized numbers (`n=…&m=…`, digits are never
   * percent-encoded): it needs the pool, or it is invalid. Shorter ones are parsed as usual.
   */
  const poolSize = 2 * computer.inlineMaxDigits + 16;

  /**
   * Validates and computes. The common case — no validator, a number small enough to compute inline —
   * answers at once (no promise, no signal, no timer); the rest waits, under {@link waitSignal}.
   *
   * Debug headers only where they say something: `x-gcd-validation` when a validator is configured
   * (`remote`, or `local-fallback` while it cannot answer), `x-gcd-compute: pool` when the worker pool
   * computed the answer (its absence means inline).
   */
  function run(reply: FastifyReply, params: RawParams, rawSize: number): Answer | Promise<Answer> {
    // The pool cannot take more: a request big enough to need it is refused before it is parsed.
    if (rawSize > poolSize && computer.saturated) throw computer.refuseSaturated();
    const input: GcdInput = parseGcdParams(params, maxDigits);
    // The server span records the sizes of the inputs (never their values).
    reply.request.bulwarkSpan?.setAttributes({
      'gcd.n.digits': input.n.length,
      'gcd.m.digits': input.m.length,
    });
    if (validate === undefined && computer.isInline(input.digits)) {
      onLocal?.();
      return { input, gcd: computer.computeInline(input) };
    }
    const signal = waitSignal(reply, handlerTimeoutMs);
    return untilAborted(wait(reply, input, signal), signal);
  }

  async function wait(reply: FastifyReply, input: GcdInput, signal: AbortSignal): Promise<Answer> {
    if (validate !== undefined) {
      // The validator attempts (client spans) are children of this step.
      const mode = await traceStep('gcd.validate', async (span) => {
        const m = await validate({ n: input.n, m: input.m }, signal);
        span?.setAttribute('gcd.validation', m);
        return m;
      });
      reply.request.bulwarkSpan?.setAttribute('gcd.validation', mode);
      reply.header('x-gcd-validation', mode);
    } else {
      onLocal?.();
    }
    const result = await computer.compute(input, signal);
    if (result.path === 'pool') reply.header('x-gcd-compute', 'pool');
    return { input, gcd: result.gcd };
  }

  app.get('/', (_request, reply) => {
    reply.type('text/html; charset=utf-8').send(form);
  });

  app.get('/static/gcd.css', (_request, reply) => {
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(STYLESHEET);
  });

  app.get('/static/favicon.svg', (_request, reply) => {
    reply.type('image/svg+xml').header('cache-control', 'public, max-age=86400').send(FAVICON);
  });

  // Not an async function: the inline answer is sent in the same tick, without a promise. The kit's
  // `api` header set (OWASP's REST set) includes `Cache-Control: no-store`.
  app.get(
    '/api/gcd',
    { schema: { response: { 200: API_ANSWER_SCHEMA } }, config: API_ROUTE },
    (request, reply) => {
      const url = request.url;
      const answer = run(reply, request.query as RawParams, url.length - url.indexOf('?') - 1);
      return answer instanceof Promise ? answer.then(apiAnswer) : apiAnswer(answer);
    },
  );

  app.post(
    '/gcd',
    {
      config: { html: true } satisfies HtmlRouteConfig,
      onRequest: async (request) => {
        const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        checkBodyEncoding(request.headers, 'POST /gcd');
        if (type !== FORM_TYPE) {
          throw new GcdError(
            'GCD_ERR_UNSUPPORTED_MEDIA_TYPE',
            `POST /gcd takes an HTML form (Content-Type: ${FORM_TYPE}); received ${
              type === '' ? 'no Content-Type' : JSON.stringify(type)
            }. For JSON use GET /api/gcd?n=…&m=….`,
          );
        }
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      const { input, gcd } = await run(
        reply,
        request.body as RawParams,
        Number(request.headers['content-length'] ?? 0),
      );
      reply.type('text/html; charset=utf-8').send(resultPage(input.n, input.m, gcd, maxDigits));
    },
  );
}

/**
 * A body must come as the route reads it: no Content-Encoding (a gzip body was read as text and
 * answered 200) and, when a charset is named, UTF-8. Otherwise 415, saying what is accepted.
 */
export function checkBodyEncoding(
  headers: { readonly [name: string]: string | string[] | undefined },
  route: string,
): void {
  const encoding = String(headers['content-encoding'] ?? '')
    .trim()
    .toLowerCase();
  if (encoding !== '' && encoding !== 'identity') {
    throw new GcdError(
      'GCD_ERR_UNSUPPORTED_MEDIA_TYPE',
      `${route} takes an uncompressed body; received Content-Encoding ${JSON.stringify(encoding.slice(0, 40))}.`,
    );
  }
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(String(headers['content-type'] ?? ''))?.[1];
  if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
    throw new GcdError(
      'GCD_ERR_UNSUPPORTED_MEDIA_TYPE',
      `${route} takes UTF-8 text; received charset=${JSON.stringify(charset.slice(0, 40))}.`,
    );
  }
}
