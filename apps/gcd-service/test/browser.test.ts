/**
 * The form in a real headless browser (Debian's chromium, driven by playwright-core): a result, a
 * validation error, the stylesheet applied, and no Content-Security-Policy violation on the way.
 * Chromium is required: CI installs it (`apt-get install chromium`); without it this test fails.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { start, type Running } from './helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let s: Running;
let browser: Browser;
let page: Page;
const consoleMessages: string[] = [];
const pageErrors: string[] = [];

before(async () => {
  if (!existsSync(CHROMIUM)) {
    assert.fail(
      `Chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM_PATH. ` +
        'The browser test is required, so it fails rather than skips.',
    );
  }
  s = await start();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = await browser.newPage();
  page.on('console', (message) => consoleMessages.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => pageErrors.push(error.message));
});

after(async () => {
  await browser?.close();
  await s?.close();
});

function cspViolations(): string[] {
  return consoleMessages.filter((m) => /Content Security Policy|Refused to/i.test(m));
}

test('the form computes a gcd', async () => {
  const response = await page.goto(`${s.url}/`);
  assert.equal(response?.status(), 200);
  assert.equal(await page.title(), 'GCD calculator');
  await page.fill('#n', '1071');
  await page.fill('#m', '462');
  const [result] = await Promise.all([page.waitForNavigation(), page.click('#compute')]);
  assert.equal(result?.status(), 200);
  assert.equal(new URL(page.url()).pathname, '/gcd');
  assert.equal(await page.textContent('#gcd'), '21');
  // The external stylesheet applied (it is the only style the CSP allows).
  const background = await page.evaluate(
    `getComputedStyle(document.querySelector('#result')).backgroundColor`,
  );
  assert.equal(background, 'rgb(230, 244, 234)');
  assert.deepEqual(cspViolations(), []);
  assert.deepEqual(pageErrors, []);
});

test('the browser checks the input first (required, digits only) and says what is expected (finding 10)', async () => {
  await page.goto(`${s.url}/`);
  for (const id of ['#n', '#m']) {
    assert.equal(await page.getAttribute(id, 'required'), '');
    assert.equal(await page.getAttribute(id, 'pattern'), '[0-9]+');
    assert.match(String(await page.getAttribute(id, 'title')), /digits 0-9 only, at most 1000 digits/);
  }
  await page.fill('#n', '12');
  await page.fill('#m', '1e5');
  await page.click('#compute');
  assert.equal(new URL(page.url()).pathname, '/', 'an invalid number is not sent');
  assert.equal(await page.evaluate(`document.querySelector('#m').validity.patternMismatch`), true);
  await page.fill('#m', '');
  await page.click('#compute');
  assert.equal(await page.evaluate(`document.querySelector('#m').validity.valueMissing`), true);
  // A styled button (not the default grey one), and a favicon the CSP allows.
  await page.mouse.move(0, 0); // not hovering it
  const button = await page.evaluate(`getComputedStyle(document.querySelector('#compute')).backgroundColor`);
  assert.equal(button, 'rgb(31, 95, 191)');
  const icon = await page.evaluate(`(async () => {
    const href = document.querySelector('link[rel=icon]').href;
    const res = await fetch(href);
    return { status: res.status, type: res.headers.get('content-type') };
  })()`);
  assert.deepEqual(icon, { status: 200, type: 'image/svg+xml' });
  assert.deepEqual(cspViolations(), []);
});

test('the server explains an error in words (no raw codes), and keeps what was typed', async () => {
  await page.goto(`${s.url}/`);
  await page.fill('#n', '12');
  await page.fill('#m', '000');
  const [result] = await Promise.all([page.waitForNavigation(), page.click('#compute')]);
  assert.equal(result?.status(), 400);
  const error = await page.textContent('#error');
  assert.match(error ?? '', /Please check the numbers/);
  assert.match(error ?? '', /m is zero/);
  assert.doesNotMatch(error ?? '', /GCD_ERR|HTTP 400/, 'no raw codes for people (finding 10)');
  assert.equal(await page.getAttribute('#error', 'data-code'), 'GCD_ERR_ZERO', 'still there for machines');
  assert.equal(await page.inputValue('#n'), '12');
  assert.equal(await page.inputValue('#m'), '000');
  const background = await page.evaluate(
    `getComputedStyle(document.querySelector('#error')).backgroundColor`,
  );
  assert.equal(background, 'rgb(253, 236, 234)');
  assert.deepEqual(cspViolations(), []);
});

test('a script-looking input is shown as text, never run', async () => {
  await page.goto(`${s.url}/`);
  await page.fill('#n', '<img src=x onerror="document.title=\'pwned\'">');
  await page.fill('#m', '6');
  // A client that skips the browser's checks (as any script could): the server's page must escape it.
  await page.evaluate(`document.querySelector('#gcd-form').noValidate = true`);
  await Promise.all([page.waitForNavigation(), page.click('#compute')]);
  assert.equal(await page.title(), 'GCD error');
  assert.equal(await page.$('#error img'), null);
  assert.equal(await page.inputValue('#n'), '<img src=x onerror="document.title=\'pwned\'">');
  assert.deepEqual(cspViolations(), []);
  assert.deepEqual(pageErrors, []);
});

test('the CSP is enforced: an injected inline script does not run', async () => {
  await page.goto(`${s.url}/`);
  const reported = page.waitForEvent('console', (m) => /Content Security Policy|Refused to/i.test(m.text()));
  // Simulate a successful injection: the policy, not the escaping, must stop it. An inline script runs
  // as it is inserted, so it would have run by the time appendChild returns.
  const ran = await page.evaluate(`(() => {
    const el = document.createElement('script');
    el.textContent = 'window.injected = true';
    document.body.appendChild(el);
    return window.injected === true;
  })()`);
  assert.equal(ran, false);
  await reported; // the browser reports the blocked script
});
