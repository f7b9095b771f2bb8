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
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
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
  // The browser checks the same rules as the server first (digits only, a length cap), and says what is
  // expected in the title; the server still checks everything (other clients, old browsers).
  const hint = `A positive whole number, digits 0-9 only, at most ${maxDigits} digits`;
  const input = (id: string, value: string) =>
    `<input type="text" id="${id}" name="${id}" inputmode="numeric" autocomplete="off" required pattern="[0-9]+" maxlength="${maxDigits}" title="${hint}" aria-describedby="hint" value="${value}">`;
  return `<form action="/gcd" method="post" id="gcd-form">
<p id="hint">Give two positive whole numbers (up to ${maxDigits} digits each).</p>
<label for="n">n</label>
${input('n', n)}
<label for="m">m</label>
${input('m', m)}
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

/**
 * `POST /gcd` failure: the explanation in words, and the form again, filled with what was sent. The
 * stable code and the status stay machine-readable (`data-code`, `data-status`, the HTTP status) but
 * are not shown: a person needs the sentence, not `GCD_ERR_INVALID_NUMBER`.
 */
export function errorPage(
  statusCode: number,
  code: string,
  message: string,
  values: FormValues,
  maxDigits: number,
): string {
  const heading = statusCode >= 500 ? 'Please try again in a moment' : 'Please check the numbers';
  return layout(
    'GCD error',
    `<h1>GCD calculator</h1>
<div class="error" id="error" role="alert" data-code="${escapeHtml(code)}" data-status="${statusCode}">
<p class="error-title">${heading}</p>
<p class="error-message">${escapeHtml(message)}</p>
</div>
${form(values, maxDigits)}`,
  );
}

/** `GET /static/favicon.svg`: the page's icon (a lowercase "gcd" on the button's blue). */
export const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#1f5fbf"/><text x="16" y="21" font-family="system-ui,sans-serif" font-size="12" font-weight="700" text-anchor="middle" fill="#fff">gcd</text></svg>
`;

/** `GET /static/gcd.css`. */
export const STYLESHEET = `body { font-family: system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
main { max-width: 40rem; margin: 3rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; }
form { display: grid; grid-template-columns: max-content 1fr; gap: 0.6rem 1rem; align-items: center; }
form p, form button { grid-column: 1 / -1; }
input { font: inherit; padding: 0.4rem; border: 1px solid #aab; border-radius: 4px; }
input:focus-visible { outline: 2px solid #1f5fbf; outline-offset: 1px; }
input:user-invalid { border-color: #b3261e; }
button { font: inherit; font-weight: 600; padding: 0.55rem 1.2rem; justify-self: start; color: #fff; background: #1f5fbf; border: 0; border-radius: 4px; cursor: pointer; }
button:hover { background: #174a96; }
button:focus-visible { outline: 2px solid #174a96; outline-offset: 2px; }
.result { background: #e6f4ea; padding: 0.8rem; border-radius: 4px; }
.error { background: #fdecea; padding: 0.8rem; border-radius: 4px; }
.error p { margin: 0; }
.error-title { font-weight: 600; margin-bottom: 0.3rem; }
.number { font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
`;
