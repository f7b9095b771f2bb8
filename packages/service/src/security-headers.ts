/**
 * Security headers, precomputed once and set in the kit's own `onRequest` hook, in two sets a route
 * chooses between (`config: { bulwark: { securityHeaders: 'api' } }`):
 *
 * - `document` (the default, for HTML pages and any route that does not say): helmet 8's default set.
 * - `api`: the set the OWASP REST Security Cheat Sheet recommends for API responses —
 *   `Cache-Control: no-store`, `Content-Security-Policy: frame-ancestors 'none'`,
 *   `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` (plus HSTS over HTTPS). The rest of
 *   helmet's set (cross-origin isolation, referrer, DNS prefetch, download and XSS-auditor switches)
 *   governs how a browser treats an HTML document and what it loads from it; a JSON body has none of
 *   that, and every header costs each response server CPU to validate and write.
 *
 * (@fastify/helmet runs helmet's Express middleware chain per request, which costs more than a fixed
 * header list written in one step: docs/benchmarks.md, "Figures behind design choices", measures both.)
 * A handler can still override any of them (e.g. a page with its own CSP).
 */
import { InvalidOptionError } from '@bulwark/core';
import { checks } from '@bulwark/core/internal';

export interface SecurityHeadersOptions {
  /** `Content-Security-Policy`, or `false` for none. @default DEFAULT_CONTENT_SECURITY_POLICY (helmet's) */
  contentSecurityPolicy?: string | false;
  /** `Strict-Transport-Security`, sent only over HTTPS; `false` for none. @default 'max-age=31536000; includeSubDomains' */
  strictTransportSecurity?: string | false;
  /** More headers to send (a value) or default ones to drop (`false`), by name, in the `document` set. @default {} */
  headers?: Readonly<Record<string, string | false>>;
  /** More headers to send (a value) or default ones to drop (`false`), by name, in the `api` set. @default {} */
  apiHeaders?: Readonly<Record<string, string | false>>;
}

/**
 * A route's header set: `document` (helmet's, the default), `api` (OWASP's REST set) or `none` (only the
 * request id).
 */
export type SecurityHeadersProfile = 'document' | 'api' | 'none';

/** The OWASP REST Security Cheat Sheet's headers for API responses (HSTS is added over HTTPS). */
export const DEFAULT_API_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'cache-control': 'no-store',
  'content-security-policy': "frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
});

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
  apiHeaders: Object.freeze({}) as Readonly<Record<string, string | false>>,
});

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// eslint-disable-next-line no-control-regex
const BAD_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

type HeaderPairs = ReadonlyArray<readonly [string, string]>;

/** The `[name, value]` pairs of each set, checked once; `https` decides HSTS. */
export function securityHeaderSets(
  option: boolean | SecurityHeadersOptions,
  https: boolean,
): Readonly<Record<SecurityHeadersProfile, HeaderPairs>> {
  const none: HeaderPairs = Object.freeze([]);
  if (option === false) return Object.freeze({ document: none, api: none, none });
  const o = option === true ? {} : checks.optionsObject('securityHeaders', option);
  checks.knownKeys('securityHeaders', o, [
    'contentSecurityPolicy',
    'strictTransportSecurity',
    'headers',
    'apiHeaders',
  ]);
  const d = SECURITY_HEADERS_DEFAULTS;
  const document = new Map<string, string>(Object.entries(DEFAULT_SECURITY_HEADERS));
  const csp = o.contentSecurityPolicy ?? d.contentSecurityPolicy;
  if (csp !== false)
    document.set('content-security-policy', value('securityHeaders.contentSecurityPolicy', csp));
  const api = new Map<string, string>(Object.entries(DEFAULT_API_SECURITY_HEADERS));
  const hsts = o.strictTransportSecurity ?? d.strictTransportSecurity;
  if (https && hsts !== false) {
    const v = value('securityHeaders.strictTransportSecurity', hsts);
    document.set('strict-transport-security', v);
    api.set('strict-transport-security', v);
  }
  edit(document, 'securityHeaders.headers', o.headers ?? d.headers);
  edit(api, 'securityHeaders.apiHeaders', o.apiHeaders ?? d.apiHeaders);
  const pairs = (m: Map<string, string>): HeaderPairs =>
    Object.freeze([...m].map((pair) => Object.freeze(pair)));
  return Object.freeze({ document: pairs(document), api: pairs(api), none });
}

/** Adds, replaces (a value) or drops (`false`) headers of a set, by name. */
function edit(set: Map<string, string>, option: string, changes: unknown): void {
  for (const [name, v] of Object.entries(
    checks.optionsObject(option, changes as Readonly<Record<string, string | false>> | undefined),
  )) {
    if (!TOKEN.test(name)) throw new InvalidOptionError(`${option}.${name}`, name, 'an HTTP header name');
    const key = name.toLowerCase();
    if (v === false) set.delete(key);
    else set.set(key, value(`${option}.${name}`, v));
  }
}

function value(option: string, v: unknown): string {
  if (typeof v !== 'string' || v === '' || BAD_VALUE.test(v)) {
    throw new InvalidOptionError(option, v, 'a non-empty header value, or false');
  }
  return v;
}
