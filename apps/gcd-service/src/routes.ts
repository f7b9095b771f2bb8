/**
 * The gcd routes: the HTML form, the form's POST, and the JSON API. Every client error goes through
 * the error handler in server.ts, which answers JSON (`/api/…`) or an HTML page (`POST /gcd`).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GcdComputer } from './compute.js';
import { GcdError } from './errors.js';
import { formPage, resultPage, STYLESHEET } from './html.js';
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

/**
 * A signal aborted when the client goes away before the answer is sent, or when Fastify's handler
 * timeout fires. Not `request.signal` alone: in Fastify 5.12 it also aborts as soon as a POST body has
 * been read (it listens to the request's 'close'; fastify/fastify#6725), which would cancel every form
 * submission's validator call.
 */
export function abandoned(request: FastifyRequest, reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  const res = reply.raw;
  const onClose = () => {
    if (!res.writableFinished) controller.abort(new Error('the client closed the connection'));
  };
  res.once('close', onClose);
  if (request.routeOptions.handlerTimeout > 0) {
    const fastifySignal = request.signal;
    const onTimeout = () => {
      const reason: unknown = fastifySignal.reason;
      if ((reason as { code?: string } | undefined)?.code === 'FST_ERR_HANDLER_TIMEOUT')
        controller.abort(reason);
    };
    fastifySignal.addEventListener('abort', onTimeout, { once: true });
    res.once('close', () => fastifySignal.removeEventListener('abort', onTimeout));
  }
  return controller.signal;
}

export function registerGcdRoutes(app: FastifyInstance, options: GcdRoutesOptions): void {
  const { maxDigits, computer, validate, onLocal } = options;
  const form = formPage(maxDigits);

  async function run(request: FastifyRequest, reply: FastifyReply, params: RawParams) {
    const input: GcdInput = parseGcdParams(params, maxDigits);
    // Only work that waits (the validator call, the pool) needs to know when the client is gone.
    const signal =
      validate !== undefined || !computer.isInline(input.digits) ? abandoned(request, reply) : undefined;
    let mode: ValidationMode = 'local';
    if (validate !== undefined) {
      mode = await validate({ n: input.n, m: input.m }, signal);
    } else {
      onLocal?.();
    }
    reply.header('x-gcd-validation', mode);
    const result = await computer.compute(input, signal);
    reply.header('x-gcd-compute', result.path);
    return { input, gcd: result.gcd };
  }

  app.get('/', (_request, reply) => {
    reply.type('text/html; charset=utf-8').send(form);
  });

  app.get('/static/gcd.css', (_request, reply) => {
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(STYLESHEET);
  });

  app.get('/api/gcd', async (request, reply) => {
    reply.header('cache-control', 'no-store');
    const { input, gcd } = await run(request, reply, request.query as RawParams);
    return { n: input.n, m: input.m, gcd };
  });

  app.post(
    '/gcd',
    {
      config: { html: true } satisfies HtmlRouteConfig,
      onRequest: async (request) => {
        const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
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
      const { input, gcd } = await run(request, reply, request.body as RawParams);
      reply.type('text/html; charset=utf-8').send(resultPage(input.n, input.m, gcd, maxDigits));
    },
  );
}
