/**
 * Security headers: helmet 8's default set, precomputed once and set in the kit's own `onRequest` hook.
 * (@fastify/helmet costs ~60 µs of CPU per request on this machine class — more than the rest of the kit
 * together — because it runs helmet's Express middleware chain per request; a fixed header list costs
 * about 1 µs.) A handler can still override any of them (e.g. a page with its own CSP).
 */
import { checks, InvalidOptionError } from '@bulwark/core';

export interface SecurityHeadersOptions {
  /** `Content-Security-Policy`, or `false` for none. @default DEFAULT_CONTENT_SECURITY_POLICY (helmet's) */
  contentSecurityPolicy?: string | false;
  /** `Strict-Transport-Security`, sent only over HTTPS; `false` for none. @default 'max-age=31536000; includeSubDomains' */
  strictTransportSecurity?: string | false;
  /** More headers to send (a value) or default ones to drop (`false`), by name. @default {} */
  headers?: Readonly<Record<string, string | false>>;
}

/** helmet 8's default Content-Security-Policy. */
export const DEFAULT_CONTENT_SECURITY_POLICY =
  "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';" +
  "img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';" +
  'upgrade-insecure-requests';

/** The headers sent by default besides CSP and HSTS (helmet 8's defaults). */
export const DEFAULT_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'SAMEORIGIN',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0',
});

export const SECURITY_HEADERS_DEFAULTS = Object.freeze({
  contentSecurityPolicy: DEFAULT_CONTENT_SECURITY_POLICY as string | false,
  strictTransportSecurity: 'max-age=31536000; includeSubDomains' as string | false,
  headers: Object.freeze({}) as Readonly<Record<string, string | false>>,
});

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// eslint-disable-next-line no-control-regex
const BAD_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** The `[name, value]` pairs to send, checked once; `https` decides HSTS. */
export function securityHeaderList(
  option: boolean | SecurityHeadersOptions,
  https: boolean,
): ReadonlyArray<readonly [string, string]> {
  if (option === false) return [];
  const o = option === true ? {} : checks.optionsObject('securityHeaders', option);
  checks.knownKeys('securityHeaders', o, ['contentSecurityPolicy', 'strictTransportSecurity', 'headers']);
  const d = SECURITY_HEADERS_DEFAULTS;
  const out = new Map<string, string>(Object.entries(DEFAULT_SECURITY_HEADERS));
  const csp = o.contentSecurityPolicy ?? d.contentSecurityPolicy;
  if (csp !== false) out.set('content-security-policy', value('securityHeaders.contentSecurityPolicy', csp));
  const hsts = o.strictTransportSecurity ?? d.strictTransportSecurity;
  if (https && hsts !== false)
    out.set('strict-transport-security', value('securityHeaders.strictTransportSecurity', hsts));
  for (const [name, v] of Object.entries(
    checks.optionsObject('securityHeaders.headers', o.headers ?? d.headers),
  )) {
    if (!TOKEN.test(name))
      throw new InvalidOptionError(`securityHeaders.headers.${name}`, name, 'an HTTP header name');
    const key = name.toLowerCase();
    if (v === false) out.delete(key);
    else out.set(key, value(`securityHeaders.headers.${name}`, v));
  }
  return Object.freeze([...out].map((pair) => Object.freeze(pair)));
}

function value(option: string, v: unknown): string {
  if (typeof v !== 'string' || v === '' || BAD_VALUE.test(v)) {
    throw new InvalidOptionError(option, v, 'a non-empty header value, or false');
  }
  return v;
}
