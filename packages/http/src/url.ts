/**
 * The one check of "an absolute http: or https: URL" that the client (`get`) and `fetchAll` share.
 */

/** The parsed URL, or why `value` is not an absolute http(s) URL (a sentence fragment for messages). */
export function parseHttpUrl(value: string): URL | { readonly problem: string } {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { problem: 'not an absolute URL' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return { problem: `unsupported protocol ${url.protocol} (only http: and https:)` };
  return url;
}
