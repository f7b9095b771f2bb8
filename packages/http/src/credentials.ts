/**
 * Credentials in requests, shared by the client and `fetchAll`: which headers carry them (never sent to an
 * origin the caller did not address), and a URL's `user:pass@` as `Authorization: Basic`.
 */

/**
 * Request headers that carry credentials: never sent to an origin the caller did not address (curl drops
 * them on a redirect to another host unless `--location-trusted`; browsers drop `Authorization`).
 */
export const CREDENTIAL_HEADERS: readonly string[] = Object.freeze([
  'authorization',
  'cookie',
  'proxy-authorization',
]);

/** `headers` without {@link CREDENTIAL_HEADERS} (the same object when it has none). */
export function withoutCredentials(
  headers: Readonly<Record<string, string>>,
): Readonly<Record<string, string>> {
  let out: Record<string, string> | undefined;
  for (const name of Object.keys(headers)) {
    if (CREDENTIAL_HEADERS.includes(name.toLowerCase())) {
      out ??= { ...headers };
      delete out[name];
    }
  }
  return out ?? headers;
}

/**
 * A URL's user info (`https://user:pass@host/`) as an `Authorization: Basic` header (as curl does), and the
 * URL without it: undici would otherwise drop it silently, and it must not travel in logs or `Location`s.
 * An `Authorization` header already set wins.
 */
export function splitUserInfo(
  url: string,
  headers: Readonly<Record<string, string>>,
): { url: string; headers: Readonly<Record<string, string>> } {
  const parsed = new URL(url);
  const basic = basicAuthorization(parsed);
  if (basic === undefined) return { url, headers };
  parsed.username = '';
  parsed.password = '';
  return { url: parsed.href, headers: withAuthorization(headers, basic) };
}

/** The `Authorization: Basic` value for a parsed URL's `user:pass@`, `undefined` when it has none. */
export function basicAuthorization(parsed: URL): string | undefined {
  if (parsed.username === '' && parsed.password === '') return undefined;
  const credentials = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`;
  return `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
}

/** `headers` with `authorization: value` added, unless an `Authorization` (any case) is already set. */
export function withAuthorization(
  headers: Readonly<Record<string, string>>,
  value: string,
): Readonly<Record<string, string>> {
  const has = Object.keys(headers).some((name) => name.toLowerCase() === 'authorization');
  return has ? headers : { ...headers, authorization: value };
}

/**
 * Whether a request carries credentials: `Authorization` or `Cookie`, or a URL's `user:pass@` (sent as
 * `Authorization: Basic`). Its answer may be for these credentials only.
 */
export function carriesCredentials(url: string, headers: Readonly<Record<string, string>>): boolean {
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (lower === 'authorization' || lower === 'cookie') return true;
  }
  const u = new URL(url);
  return u.username !== '' || u.password !== '';
}

/** `url` without its `user:pass@` (a cache key must not hold a password). */
export function withoutUserInfo(url: string): string {
  const u = new URL(url);
  if (u.username === '' && u.password === '') return url;
  u.username = '';
  u.password = '';
  return u.href;
}
