/** The `tls` option of the client and of `fetchAll`: its type and its validation. */
import { InvalidOptionError } from '@bulwark/core';
import { checks } from '@bulwark/core/internal';

/** TLS settings for the connections a default dispatcher makes (`tls` of the client and of fetchAll). */
export interface TlsOptions {
  /** PEM certificates to trust (instead of the system's). */
  ca?: string | Buffer;
  /** `false`: do not verify certificates. @default true */
  rejectUnauthorized?: boolean;
}

/** Validates `tls` (an object of `ca` and `rejectUnauthorized`). */
export function resolveTls(name: string, value: unknown): TlsOptions {
  if (value === undefined) return {};
  const o = checks.optionsObject(name, value as TlsOptions);
  checks.knownKeys(name, o, ['ca', 'rejectUnauthorized']);
  if (o.ca !== undefined && typeof o.ca !== 'string' && !Buffer.isBuffer(o.ca))
    throw new InvalidOptionError(`${name}.ca`, o.ca, 'PEM certificates as a string or Buffer');
  const out: TlsOptions = {};
  if (o.ca !== undefined) out.ca = o.ca;
  if (o.rejectUnauthorized !== undefined)
    out.rejectUnauthorized = checks.boolean(`${name}.rejectUnauthorized`, o.rejectUnauthorized);
  return out;
}
