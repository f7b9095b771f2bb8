// docs/http-get.md must stay in step with the code: every CLI option (with its default), every exit code,
// and the fields of the --json document.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { optionsTableProblems } from '@bulwark/cli-support';
import { HTTP_CLIENT_DEFAULTS } from '@bulwark/http';
import { EXIT, FLAGS, parseArgs } from '../src/config.js';
import { JSON_SCHEMA_VERSION, run } from '../src/run.js';

const doc = readFileSync(new URL('../../../../docs/http-get.md', import.meta.url), 'utf8');
const rows = doc.split('\n').filter((l) => l.startsWith('| '));
const row = (first: string): string | undefined => rows.find((l) => l.startsWith(`| ${first} |`));
const help = (): string => {
  const r = parseArgs(['--help'], {});
  assert.equal(r.kind, 'exit');
  return r.kind === 'exit' ? r.stdout : '';
};

test('every exit code is in the exit-code table and in --help', () => {
  const text = help();
  for (const code of Object.values(EXIT)) {
    assert.ok(row(String(code)), `docs: no row for exit code ${code}`);
    assert.match(text, new RegExp(`\\n\\s+${code}\\s+\\S`), `--help: exit code ${code}`);
  }
});

test('the options table is the flag table of src/config.ts: flags, defaults and doc lines, row for row', () => {
  assert.deepEqual(optionsTableProblems(doc, FLAGS), []);
});

test('every option --help prints is documented', () => {
  const flags = new Set(help().match(/--[a-z][a-z-]+/g));
  assert.ok(flags.size >= 18, [...flags].join(' '));
  for (const flag of flags)
    assert.ok(doc.includes(`\`${flag}`) || doc.includes(`, ${flag}`), `docs: ${flag}`);
});

test('without flags, the client gets its own defaults (the table reads them, restates none)', () => {
  const parsed = parseArgs(['http://x/'], {});
  assert.equal(parsed.kind, 'run');
  if (parsed.kind !== 'run') return;
  const o = parsed.config.client;
  const d = HTTP_CLIENT_DEFAULTS;
  assert.deepEqual(
    [o.totalTimeoutMs, o.connectTimeoutMs, o.maxBodyBytes, o.maxRedirects, o.followRedirects, o.decompress],
    [d.totalTimeoutMs, d.connectTimeoutMs, d.maxBodyBytes, d.maxRedirects, d.followRedirects, d.decompress],
  );
  assert.deepEqual(o.retry, { maxAttempts: d.retry.maxAttempts });
  // derived from the total by the client; the stale window is the response's, else the client's
  assert.equal(o.attemptTimeoutMs, undefined);
  assert.equal(o.maxStaleMs, undefined);
  assert.equal(o.tls, undefined);
});

test('the --json example and field table have exactly the fields a run prints, in the same order', async () => {
  const example = /## `--json` \(schemaVersion (\d+)\)[\s\S]*?```json\n([\s\S]*?)\n```/.exec(doc);
  assert.ok(example, 'docs: the --json example');
  assert.equal(Number(example[1]), JSON_SCHEMA_VERSION);
  const documented = JSON.parse(example[2]!) as Record<string, unknown>;
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('hi'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/doc`;
    const parsed = parseArgs([url, '--json', '--no-cache'], {});
    assert.equal(parsed.kind, 'run');
    if (parsed.kind !== 'run') return;
    const stdout = new PassThrough();
    let text = '';
    stdout.setEncoding('utf8').on('data', (s: string) => (text += s));
    const code = await run(parsed.config, {
      stdout,
      stderr: new PassThrough(),
      signal: new AbortController().signal,
    });
    assert.equal(code, EXIT.OK);
    const printed = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(documented), Object.keys(printed));
    const tier = (printed['tiers'] as Record<string, unknown>[])[0]!;
    const documentedTier = (documented['tiers'] as Record<string, unknown>[])[0]!;
    assert.deepEqual(Object.keys(documentedTier), Object.keys(tier));
    for (const key of Object.keys(printed)) assert.ok(row(`\`${key}\``), `docs: no row for the field ${key}`);
  } finally {
    server.close();
  }
});
