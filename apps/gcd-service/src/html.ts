/**
 * The HTML pages. No inline script or style (so the strict Content-Security-Policy holds):
 * the only stylesheet is `/static/gcd.css`. Every value that came from the client is escaped.
 */

/** Escapes text for HTML element content and double-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/gu, (c) => ENTITIES[c] ?? c);
}

const ENTITIES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

/** Values to put back in the form (as the client sent them). */
export interface FormValues {
  readonly n?: string;
  readonly m?: string;
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/static/gcd.css">
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

function form(values: FormValues, maxDigits: number): string {
  const n = escapeHtml(values.n ?? '');
  const m = escapeHtml(values.m ?? '');
  return `<form action="/gcd" method="post" id="gcd-form">
<p>Give two positive whole numbers (up to ${maxDigits} digits each).</p>
<label for="n">n</label>
<input type="text" id="n" name="n" inputmode="numeric" autocomplete="off" value="${n}">
<label for="m">m</label>
<input type="text" id="m" name="m" inputmode="numeric" autocomplete="off" value="${m}">
<button type="submit" id="compute">Compute GCD</button>
</form>`;
}

/** `GET /`: the empty form. */
export function formPage(maxDigits: number): string {
  return layout('GCD calculator', `<h1>GCD calculator</h1>\n${form({}, maxDigits)}`);
}

/** `POST /gcd` success. */
export function resultPage(n: string, m: string, result: string, maxDigits: number): string {
  return layout(
    'GCD result',
    `<h1>GCD calculator</h1>
<p class="result" id="result">The greatest common divisor of <span class="number">${escapeHtml(n)}</span> and <span class="number">${escapeHtml(m)}</span> is <strong class="number" id="gcd">${escapeHtml(result)}</strong>.</p>
${form({ n, m }, maxDigits)}`,
  );
}

/** `POST /gcd` failure: the explanation and the form again, filled with what was sent. */
export function errorPage(
  statusCode: number,
  code: string,
  message: string,
  values: FormValues,
  maxDigits: number,
): string {
  return layout(
    'GCD error',
    `<h1>GCD calculator</h1>
<p class="error" id="error" role="alert"><span class="code">${escapeHtml(code)}</span> ${escapeHtml(message)}</p>
<p class="status">HTTP ${statusCode}</p>
${form(values, maxDigits)}`,
  );
}

/** `GET /static/gcd.css`. */
export const STYLESHEET = `body { font-family: system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
main { max-width: 40rem; margin: 3rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; }
form { display: grid; grid-template-columns: max-content 1fr; gap: 0.6rem 1rem; align-items: center; }
form p, form button { grid-column: 1 / -1; }
input { font: inherit; padding: 0.4rem; border: 1px solid #aab; border-radius: 4px; }
button { font: inherit; padding: 0.5rem 1rem; justify-self: start; }
.result { background: #e6f4ea; padding: 0.8rem; border-radius: 4px; }
.error { background: #fdecea; padding: 0.8rem; border-radius: 4px; }
.code { font-family: ui-monospace, monospace; font-size: 0.85em; display: block; }
.number { font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
.status { color: #667; font-size: 0.85rem; }
`;
