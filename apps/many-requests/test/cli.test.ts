// The built CLI, spawned as a real process against fault servers on loopback.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startFaultServer, type FaultServer } from '@bulwark/fault-server';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
let good: FaultServer;
let dead: FaultServer;
let dir: string;

before(async () => {
  good = await startFaultServer();
  dead = await startFaultServer({ fault: { type: 'blackhole' } });
  dir = await mkdtemp(join(tmpdir(), 'many-requests-'));
});
after(async () => {
  await Promise.all([good.close(), dead.close(), rm(dir, { recursive: true, force: true })]);
});

interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function start(args: string[]): { child: ChildProcess; done: Promise<Done>; stdout: () => string } {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const done = once(child, 'close').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
    stdout,
    stderr,
  }));
  // a test that fails must not leave the child running
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  void done.then(() => clearTimeout(timer));
  return { child, done, stdout: () => stdout };
}

async function run(args: string[], stdin?: string): Promise<Done> {
  const p = start(args);
  p.child.stdin!.end(stdin ?? '');
  return p.done;
}

function lines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const t0 = performance.now();
  while (!check()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('usage errors exit 2 with a message naming the problem', async () => {
  const cases: [string[], RegExp][] = [
    [['-c', '0', 'http://x/'], /--concurrency.*'0' is invalid.*integer from 1/],
    [['--concurrency', 'lots', 'http://x/'], /--concurrency.*'lots' is invalid/],
    [
      ['--attempt-timeout-ms', '-5', 'http://x/'],
      /--attempt-timeout-ms.*'-5' is invalid.*milliseconds from 1 to/,
    ],
    [['--attempt-timeout-ms', '0', 'http://x/'], /'0' is invalid.*integer number of milliseconds from 1/],
    [['--timeout-ms', '500', 'http://x/'], /unknown option '--timeout-ms'[\s\S]*--attempt-timeout-ms/],
    [['--breaker-open-ms', '1e3', 'http://x/'], /--breaker-open-ms.*'1e3' is invalid/],
    [['--breaker-failures', '0', 'http://x/'], /--breaker-failures.*integer from 1 to 1000000/],
    [
      ['--rate-per-host', '0x10', 'http://x/'],
      /--rate-per-host.*'0x10' is invalid.*greater than 0 and at most/,
    ],
    [['--retry-budget-ratio', '-0.5', 'http://x/'], /--retry-budget-ratio.*decimal number from 0 to 100/],
    [['-q', '-v', 'http://x/'], /choose one of --quiet and --verbose/],
    [['--file', ''], /--file.*'' is invalid.*file path/],
    [['http://x/', ''], /empty URL argument/],
    [['--per-host', '1.5', 'http://x/'], /--per-host.*'1.5' is invalid/],
    [['--rate-per-host', '0', 'http://x/'], /--rate-per-host.*'0' is invalid/],
    [['--retry-budget-ratio', 'x', 'http://x/'], /--retry-budget-ratio/],
    [['--retries', '101', 'http://x/'], /--retries.*integer from 0 to 100/],
    [['--bogus', 'http://x/'], /unknown option '--bogus'/],
    [[], /no URLs given/],
    [['--file', join('/nonexistent', 'urls.txt')], /cannot read --file .*ENOENT/],
    [['-', '--file', '-'], /stdin \("-"\) can be read only once/],
  ];
  for (const [args, message] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(' ')} → ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    if (args[0] !== '--file' || args[1] === '')
      assert.match(r.stderr, /\nTry 'many-requests --help' for more information\.\n$/);
    assert.equal(r.stdout, '');
  }
});

test('--help documents the options and the exit codes, exit 0', async () => {
  const r = await run(['--help']);
  assert.equal(r.code, 0);
  for (const flag of [
    '--concurrency',
    '--per-host',
    '--attempt-timeout-ms',
    '--retries',
    '--retry-budget-ratio',
  ])
    assert.ok(r.stdout.includes(flag), flag);
  for (const flag of ['--rate-per-host', '--breaker-failures', '--quiet', '--allow-failures', '--json'])
    assert.ok(r.stdout.includes(flag), flag);
  assert.match(r.stdout, /Exit codes:\n\s+0 .*\n\s+1 .*\n\s+2 .*\n\s+130 [\s\S]*\n\s+141 .*\n\s+143 /);
  for (const flag of ['--verbose', '--version', '--help']) assert.ok(r.stdout.includes(flag), flag);
});

test('-V and --version print the version of package.json, exit 0', async () => {
  const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  for (const flag of ['-V', '--version']) {
    const r = await run([flag]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `${version}\n`);
    assert.equal(r.stderr, '');
  }
});

test('NDJSON: one complete line per URL, summary on stderr, exit 1 when some failed', async () => {
  const urls = [`${good.origin}/ok`, 'nope', `${good.origin}/status/404`, `${good.origin}/ok?size=10`];
  const r = await run(urls);
  assert.equal(r.code, 1);
  const out = lines(r.stdout);
  assert.equal(out.length, 4);
  assert.deepEqual(out.map((l) => l.index).sort(), [0, 1, 2, 3]);
  const byIndex = new Map(out.map((l) => [l.index, l]));
  assert.deepEqual(byIndex.get(3), {
    index: 3,
    url: urls[3],
    host: `127.0.0.1:${good.port}`,
    ok: true,
    status: 200,
    bytes: 10,
    durationMs: byIndex.get(3)!.durationMs,
    attempts: 1,
  });
  assert.equal(byIndex.get(1)!.errorCode, 'INVALID_URL');
  assert.equal(byIndex.get(2)!.errorCode, 'HTTP_4XX');
  assert.match(r.stderr, /4 URLs in .*: 2 ok, 2 failed/);
  assert.ok(!r.stderr.includes('\x1b'), 'no progress bar when stderr is not a terminal');
  assert.match(r.stderr, /p50 .* p99 /);
  const allowed = await run(['--allow-failures', '--quiet', ...urls]);
  assert.equal(allowed.code, 0);
  assert.equal(allowed.stderr, '', '--quiet: no summary');
});

test('--json: one document with every result and the summary', async () => {
  const r = await run(['--json', `${good.origin}/ok`, `${good.origin}/ok`]);
  assert.equal(r.code, 0);
  const doc = JSON.parse(r.stdout) as { schemaVersion: number; results: unknown[]; summary: { ok: number } };
  assert.equal(doc.schemaVersion, 1);
  assert.equal(doc.results.length, 2);
  assert.equal(doc.summary.ok, 2);
});

test('stdin is streamed: results come out before the input ends', async () => {
  const p = start(['-', '--quiet']);
  p.child.stdin!.write(`${good.origin}/ok?a\n\n# a comment\n${good.origin}/ok?b\n`);
  await until(() => lines(p.stdout()).length === 2, 'the first two results');
  p.child.stdin!.end(`${good.origin}/ok?c\n`);
  const r = await p.done;
  assert.equal(r.code, 0);
  assert.deepEqual(
    lines(r.stdout).map((l) => l.index),
    [0, 1, 2],
  );
});

test('a file and arguments are read in order', async () => {
  const file = join(dir, 'urls.txt');
  await writeFile(file, `${good.origin}/ok?f1\r\n  ${good.origin}/ok?f2  \n`);
  const r = await run([`${good.origin}/ok?arg`, '--file', file, '-q']);
  assert.equal(r.code, 0);
  const urls = new Map(lines(r.stdout).map((l) => [l.index, l.url]));
  assert.deepEqual(
    [0, 1, 2].map((i) => urls.get(i)),
    [`${good.origin}/ok?arg`, `${good.origin}/ok?f1`, `${good.origin}/ok?f2`],
  );
});

test('a dead host trips its breaker; the summary says so', async () => {
  const urls: string[] = [];
  for (let i = 0; i < 40; i++) urls.push(`${good.origin}/ok?${i}`, `${dead.origin}/x?${i}`);
  const t0 = performance.now();
  // a generous timeout: under CPU contention the good host must not time out too
  const args = ['-', '--attempt-timeout-ms', '1000', '--breaker-failures', '3', '--per-host', '3', '-v'];
  const r = await run(args, urls.join('\n'));
  // without the breaker: 40 URLs × 1 s / 3 at a time ≈ 13 s for the dead host alone
  assert.ok(performance.now() - t0 < 6000);
  assert.equal(r.code, 1);
  const out = lines(r.stdout);
  assert.equal(out.length, 80);
  assert.equal(out.filter((l) => l.ok).length, 40, r.stdout.slice(0, 500));
  assert.ok(out.filter((l) => l.errorCode === 'CIRCUIT_OPEN').length >= 35);
  assert.match(r.stderr, new RegExp(`circuit breaker opened: 127\\.0\\.0\\.1:${dead.port} ×1`));
  // -v: the transition as it happened
  assert.match(r.stderr, new RegExp(`circuit breaker for 127\\.0\\.0\\.1:${dead.port}: closed -> open\n`));
  assert.doesNotMatch(r.stderr, new RegExp(`circuit breaker for 127\\.0\\.0\\.1:${good.port}`));
});

test('SIGINT mid-run: exit 130 within 1 s, every line written is complete JSON, partial summary', async () => {
  const p = start(['-', '--attempt-timeout-ms', '60000']);
  const fast = Array.from({ length: 30 }, (_, i) => `${good.origin}/ok?${i}`);
  const slow = Array.from({ length: 30 }, (_, i) => `${dead.origin}/hang?${i}`);
  // stdin stays open: the input never ends by itself
  p.child.stdin!.write([...fast, ...slow].join('\n') + '\n');
  await until(() => lines(p.stdout()).length >= 30, 'the fast results');
  // a host that has not answered yet gets --breaker-failures (5) requests in flight, not --per-host (10)
  await until(() => dead.currentRequests >= 5, 'the hanging requests');
  const t0 = performance.now();
  p.child.kill('SIGINT');
  const r = await p.done;
  const took = performance.now() - t0;
  assert.equal(r.code, 130);
  assert.ok(took < 1000, `exited ${Math.round(took)} ms after SIGINT`);
  assert.ok(r.stdout.endsWith('\n'));
  const out = lines(r.stdout); // throws if a line is not complete JSON
  assert.equal(out.filter((l) => l.ok).length, 30);
  assert.ok(out.filter((l) => l.errorCode === 'ABORTED').length >= 10);
  assert.equal(new Set(out.map((l) => l.index)).size, out.length);
  assert.match(r.stderr, /INTERRUPTED after \d+ URLs/);
  p.child.stdin!.destroy();
});

test('on a terminal: a progress bar on stderr, cleared before the summary', async () => {
  // script(1) runs the CLI on a pseudo-terminal; with --json, stdout is not the bar's terminal stream
  const urls = Array.from({ length: 30 }, (_, i) => `${good.origin}/latency/40?${i}`);
  const command = [process.execPath, MAIN, '--json', '-c', '3', ...urls].join(' ') + ' > /dev/null';
  const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tty = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (tty += s));
  const [code] = (await once(child, 'close')) as [number];
  assert.equal(code, 0, tty);
  assert.match(tty, /\/30 URLs \| \d+ ok, 0 failed/);
  assert.ok(tty.includes('\x1b[2Kmany-requests: 30 URLs in '), 'the bar is cleared, then the summary');
});

test('stdout closed early (| head): exit 141 quietly, no stack trace', async () => {
  const file = join(dir, 'many.txt');
  await writeFile(file, Array.from({ length: 3000 }, (_, i) => `${good.origin}/ok?${i}`).join('\n'));
  const p = start(['--file', file]);
  await until(() => p.stdout().length > 0, 'some output');
  p.child.stdout!.destroy();
  const r = await p.done;
  assert.equal(r.code, 141);
  assert.doesNotMatch(r.stderr, /Error|at .*\.js/);
});

test('SIGTERM mid-run: exit 143 with valid partial NDJSON and the partial summary', async () => {
  const p = start(['-', '--attempt-timeout-ms', '60000']);
  p.child.stdin!.write(
    [`${good.origin}/ok?t`, `${dead.origin}/hang?t1`, `${dead.origin}/hang?t2`].join('\n') + '\n',
  );
  await until(() => lines(p.stdout()).length >= 1, 'the fast result');
  await until(() => dead.currentRequests >= 2, 'the hanging requests');
  p.child.kill('SIGTERM');
  const r = await p.done;
  assert.equal(r.code, 143);
  const out = lines(r.stdout);
  assert.equal(out.length, 3);
  assert.deepEqual(out.map((l) => l.errorCode ?? 'ok').sort(), ['ABORTED', 'ABORTED', 'ok']);
  assert.match(r.stderr, /INTERRUPTED after 3 URLs/);
  assert.doesNotMatch(r.stderr, /at .*\.js/);
  p.child.stdin!.destroy();
});
