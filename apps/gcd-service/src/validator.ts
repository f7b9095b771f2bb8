/**
 * Validator mode (`GCD_MODE=validator`): the chapter's second service. `POST /validate` with
 * `{"n": "12", "m": "18"}` answers 200 `{ valid: true, n, m }` or 400 with the same error body and
 * codes as the gcd service. It applies the same rules with its own `MAX_DIGITS`, so an operator can
 * run a stricter policy upstream than the gcd service enforces on its own.
 */
import type { FastifyInstance } from 'fastify';
import { GcdError } from './errors.js';
import { parseGcdParams, type RawParams } from './validation.js';
import { API_ROUTE, checkBodyEncoding } from './routes.js';

export interface ValidatorRoutesOptions {
  readonly maxDigits: number;
}

/** The validator's success answer. */
export interface ValidateAnswer {
  readonly valid: true;
  readonly n: string;
  readonly m: string;
}

export function registerValidatorRoutes(app: FastifyInstance, options: ValidatorRoutesOptions): void {
  app.post(
    '/validate',
    {
      config: API_ROUTE,
      onRequest: async (request) => {
        const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        checkBodyEncoding(request.headers, 'POST /validate');
        if (type !== 'application/json') {
          throw new GcdError(
            'GCD_ERR_UNSUPPORTED_MEDIA_TYPE',
            `POST /validate takes JSON (Content-Type: application/json); received ${
              type === '' ? 'no Content-Type' : JSON.stringify(type)
            }.`,
          );
        }
      },
    },
    async (request): Promise<ValidateAnswer> => {
      const body = request.body;
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        throw new GcdError(
          'GCD_ERR_INVALID_BODY',
          'The body must be a JSON object like {"n": "12", "m": "18"}.',
        );
      }
      const input = parseGcdParams(body as RawParams, options.maxDigits);
      return { valid: true, n: input.n, m: input.m };
    },
  );
}
