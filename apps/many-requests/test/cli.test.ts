// The built CLI, spawned as a real process against fault servers on loopback.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer as createHttpsServer } from 'node:https';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startFaultProxy, startFaultServer, type FaultServer } from '@bulwark/fault-server';

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

function start(
  args: string[],
  as?: { uid: number; gid: number },
): { child: ChildProcess; done: Promise<Done>; stdout: () => string } {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], ...as });
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

/** `word` as one POSIX shell word, whatever it holds. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

async function run(args: string[], stdin?: string, as?: { uid: number; gid: number }): Promise<Done> {
  const p = start(args, as);
  p.child.stdin!.end(stdin ?? '');
  return p.done;
}

function lines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * Resolves once `check` holds on everything a stream has sent so far, checked at each chunk as it
 * arrives (no polling); rejects if the stream ends first.
 */
function whenOutput(
  stream: NodeJS.ReadableStream,
  check: (text: string) => boolean,
  what: string,
): Promise<void> {
  let text = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer | string): void => {
      text += String(chunk);
      if (check(text)) finish(resolve);
    };
    const onEnd = (): void => finish(() => reject(new Error(`the stream ended before ${what}`)));
    const finish = (then: () => void): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      then();
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
  });
}

/** Resolves when `more` new requests have reached a fault server (counted from now). */
function moreRequests(server: FaultServer, more: number): Promise<void> {
  return server.waitForRequests(server.requests.length + more, 15_000);
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
    [['-q', '-v', 'http://x/'], /choose one of --quiet \(or -s\) and --verbose/],
    [['--input-file', ''], /--input-file.*'' is invalid.*file path/],
    [['-f', 'urls.txt'], /unknown option '-f'[\s\S]*-i, --input-file/],
    [['--max-wait-ms', '-1', 'http://x/'], /--max-wait-ms.*'-1' is invalid/],
    [
      ['--max-wait', '1', '--max-wait-ms', '5', 'http://x/'],
      /choose one of --max-wait \(seconds\) and --max-wait-ms/,
    ],
    [['--attempt-timeout', '0', 'http://x/'], /--attempt-timeout.*'0' is invalid.*seconds/],
    [['-H', 'nocolon', 'http://x/'], /--header.*"Name: value"/],
    [['--metrics-file', '/tmp/x.txt', 'http://x/'], /--metrics-file.*ending in \.prom/],
    [['http://x/', ''], /empty URL argument/],
    [['--per-host', '1.5', 'http://x/'], /--per-host.*'1.5' is invalid/],
    [['--rate-per-host', '0', 'http://x/'], /--rate-per-host.*'0' is invalid/],
    [['--retry-budget-ratio', 'x', 'http://x/'], /--retry-budget-ratio/],
    [['--retries', '101', 'http://x/'], /--retries.*integer from 0 to 100/],
    [['--bogus', 'http://x/'], /unknown option '--bogus'/],
    [[], /no URLs on stdin/],
    [['--input-file', join('/nonexistent', 'urls.txt')], /cannot read --input-file .*ENOENT/],
    [['-', '--input-file', '-'], /stdin \("-"\) can be read only once/],
  ];
  for (const [args, message] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(' ')} → ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
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
  assert.match(
    r.stdout,
    /Exit codes:\n\s+0 .*\n\s+1 .*\n\s+2 .*\n\s+74 .*\n\s+130 [\s\S]*\n\s+141 .*\n\s+143 /,
  );
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
  const doc = JSON.parse(r.stdout) as {
    schemaVersion: number;
    exitCode: number;
    results: unknown[];
    summary: { ok: number; bytes: number };
  };
  assert.equal(doc.schemaVersion, 2);
  assert.equal(doc.exitCode, 0);
  assert.equal(doc.summary.bytes, 4);
  assert.equal(doc.results.length, 2);
  assert.equal(doc.summary.ok, 2);
});

test('stdin is streamed: results come out before the input ends', async () => {
  const p = start(['-', '--quiet']);
  const two = whenOutput(p.child.stdout!, (t) => lines(t).length === 2, 'the first two results');
  p.child.stdin!.write(`${good.origin}/ok?a\n\n# a comment\n${good.origin}/ok?b\n`);
  await two;
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
  const r = await run([`${good.origin}/ok?arg`, '--input-file', file, '-q']);
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
  // a generous timeout: under CPU contention the good host must not time out too
  const args = ['-', '--attempt-timeout-ms', '1000', '--breaker-failures', '3', '--per-host', '3', '-v'];
  const r = await run(args, urls.join('\n'));
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

test('SIGINT mid-run: exit 130, every line written is complete JSON, partial summary', async () => {
  const p = start(['-', '--attempt-timeout-ms', '60000']);
  const fast = Array.from({ length: 30 }, (_, i) => `${good.origin}/ok?${i}`);
  const slow = Array.from({ length: 30 }, (_, i) => `${dead.origin}/hang?${i}`);
  const fastDone = whenOutput(p.child.stdout!, (t) => lines(t).length >= 30, 'the fast results');
  // a host that has not answered yet gets --breaker-failures (5) requests in flight, not --per-host (10)
  const hanging = moreRequests(dead, 5);
  // stdin stays open: the input never ends by itself
  p.child.stdin!.write([...fast, ...slow].join('\n') + '\n');
  await Promise.all([fastDone, hanging]);
  p.child.kill('SIGINT');
  const r = await p.done;
  assert.equal(r.code, 130);
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
  // one shell command line: every word quoted, for paths with spaces (or any other shell character)
  const command =
    [process.execPath, MAIN, '--json', '-c', '3', ...urls].map(shellQuote).join(' ') + ' > /dev/null';
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
  const p = start(['--input-file', file]);
  await whenOutput(p.child.stdout!, (t) => t.length > 0, 'some output');
  p.child.stdout!.destroy();
  const r = await p.done;
  assert.equal(r.code, 141);
  assert.doesNotMatch(r.stderr, /Error|at .*\.js/);
});

test('a slow reader on the pipe gets every record: the process waits for it before exiting', async () => {
  const server = await startFaultServer();
  try {
    // 1000 URLs — all within the read-ahead window, so every request is made however slow the output
    // is — of ~340 bytes of NDJSON each: ~340 KB, far more than the pipe and the reader's buffer hold
    const n = 1000;
    const pad = 'x'.repeat(200);
    const file = join(dir, 'slow-reader.txt');
    await writeFile(file, Array.from({ length: n }, (_, i) => `${server.origin}/ok?${i}&${pad}`).join('\n'));
    // three rounds: how much a CLI that does not wait for its reader loses depends on its last moments
    for (let round = 1; round <= 3; round++) {
      server.reset();
      const child = spawn(process.execPath, [MAIN, '-c', '50', '--per-host', '50', '-i', file], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const exited = once(child, 'exit');
      const closed = once(child, 'close');
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
      // the reader takes nothing until every request was answered (`| (sleep 2; cat)`, on an event)
      child.stdout.pause();
      await server.waitForRequests(n, 50_000);
      await server.waitForIdle(50_000);
      child.stdout.resume();
      const [code] = await exited;
      await closed;
      clearTimeout(killer);
      assert.equal(code, 0, stderr);
      assert.ok(stdout.endsWith('\n'), `round ${round}: the last line is whole`);
      const records = lines(stdout);
      assert.equal(records.length, n, `round ${round}: every record arrived`);
      assert.equal(new Set(records.map((r) => r.index)).size, n);
      assert.match(stderr, new RegExp(`${n} URLs in .*: ${n} ok, 0 failed`));
    }
  } finally {
    await server.close();
  }
});

test('SIGTERM mid-run: exit 143 with valid partial NDJSON and the partial summary', async () => {
  const p = start(['-', '--attempt-timeout-ms', '60000']);
  const fastDone = whenOutput(p.child.stdout!, (t) => lines(t).length >= 1, 'the fast result');
  const hanging = moreRequests(dead, 2);
  p.child.stdin!.write(
    [`${good.origin}/ok?t`, `${dead.origin}/hang?t1`, `${dead.origin}/hang?t2`].join('\n') + '\n',
  );
  await Promise.all([fastDone, hanging]);
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

test('a piped stdin is read without "-"', async () => {
  const r = await run(['-q'], `${good.origin}/ok?p1\n${good.origin}/ok?p2\n`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(lines(r.stdout).length, 2);
});

test('no URLs at all (empty stdin, a file of comments): exit 2 and a message, no summary', async () => {
  const empty = await run([], '');
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /^many-requests: no URLs on stdin/);
  const file = join(dir, 'comments.txt');
  await writeFile(file, '# nothing here\n\n   \n');
  const comments = await run(['-i', file]);
  assert.equal(comments.code, 2);
  assert.match(comments.stderr, /^many-requests: no URLs in the input/);
  assert.equal(comments.stdout, '');
});

test('a 20 MB line is neither held nor echoed: one INVALID_URL record that says how long it was', async () => {
  const file = join(dir, 'garbage.txt');
  await writeFile(file, `${good.origin}/ok?before\n${'x'.repeat(20_000_000)}\n${good.origin}/ok?after\n`);
  const r = await run(['-i', file, '--allow-failures', '-q']);
  assert.equal(r.code, 0, r.stderr);
  const out = lines(r.stdout);
  assert.equal(out.length, 3);
  const bad = out.find((l) => l.index === 1)!;
  assert.equal(bad.errorCode, 'INVALID_URL');
  assert.match(
    bad.url as string,
    /^\(line 2 is 20000000 characters long, over the 65536 allowed; it starts with "x{100}"\)$/,
  );
  assert.ok(r.stdout.length < 2000, `${r.stdout.length} characters of output`);
});

test('a full disk (stdout is /dev/full): exit 74, one line saying so, and the summary', async () => {
  const fd = openSync('/dev/full', 'w');
  try {
    const child = spawn(process.execPath, [MAIN, `${good.origin}/ok?a`, `${good.origin}/ok?b`], {
      stdio: ['ignore', fd, 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const [code] = (await once(child, 'close')) as [number];
    assert.equal(code, 74, stderr);
    assert.match(stderr, /^many-requests: error: cannot write the results to stdout: .*ENOSPC/);
    // the summary follows (the run stops at the first failed write: a URL still in flight is ABORTED)
    assert.match(stderr, /many-requests: 2 URLs in .*: \d ok, \d failed/);
    const json = spawn(process.execPath, [MAIN, '--json', `${good.origin}/ok?a`], {
      stdio: ['ignore', fd, 'pipe'],
    });
    let jsonErr = '';
    json.stderr!.setEncoding('utf8').on('data', (s: string) => (jsonErr += s));
    const [jsonCode] = (await once(json, 'close')) as [number];
    assert.equal(jsonCode, 74, jsonErr);
    assert.match(jsonErr, /cannot write the results to stdout: .*ENOSPC/);
  } finally {
    closeSync(fd);
  }
});

test('stdout open only for reading (EBADF): exit 74, one line saying so, and the summary; --json too', async () => {
  const file = join(dir, 'read-only');
  await writeFile(file, '');
  const fd = openSync(file, 'r');
  try {
    for (const extra of [[], ['--json']]) {
      const child = spawn(process.execPath, [MAIN, ...extra, `${good.origin}/ok?ro`], {
        stdio: ['ignore', fd, 'pipe'],
      });
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      const [code] = (await once(child, 'close')) as [number];
      assert.equal(code, 74, stderr);
      assert.match(stderr, /^many-requests: error: cannot write the results to stdout: .*EBADF/);
      assert.match(stderr, /many-requests: 1 URLs? in /);
      assert.doesNotMatch(stderr, /at .*\.js/);
    }
  } finally {
    closeSync(fd);
  }
});

test('-o writes the results atomically (every line complete, also after Ctrl-C) and sweeps dead temps', async () => {
  const outDir = join(dir, 'out');
  await mkdir(outDir, { recursive: true });
  const file = join(outDir, 'results.ndjson');
  const deadPid = Number(
    spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
      .stdout,
  );
  const leftover = join(outDir, `.results.ndjson.many-requests.${deadPid}.abcdef012345.tmp`);
  await writeFile(leftover, '{"torn');
  const r = await run(['-o', file, '-q', `${good.origin}/ok?1`, `${good.origin}/ok?2`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(lines(await readFile(file, 'utf8')).length, 2);
  assert.deepEqual(await readdir(outDir), ['results.ndjson'], "the dead writer's temp file is gone");
  // interrupted: the lines written so far are published, every one complete
  const p = start(['-o', file, '-', '--attempt-timeout-ms', '60000']);
  const hanging = moreRequests(dead, 1);
  p.child.stdin!.write(`${good.origin}/ok?x\n${dead.origin}/hang?1\n`);
  await hanging;
  p.child.kill('SIGINT');
  const done = await p.done;
  assert.equal(done.code, 130);
  const published = lines(await readFile(file, 'utf8'));
  assert.deepEqual(published.map((l) => l.errorCode ?? 'ok').sort(), ['ABORTED', 'ok']);
  assert.deepEqual(await readdir(outDir), ['results.ndjson']);
  p.child.stdin!.destroy();
});

test('-o onto an existing file the user may not write (0400): exit 74, one line, the file untouched', async (t) => {
  // root may write any file (W_OK always passes): the CLI runs as an unprivileged user (nobody when the
  // test runs as root); without one the check cannot be made and is skipped
  const user = unprivilegedUser();
  if (user === undefined) return t.skip('running as root with no nobody user: W_OK always passes for root');
  const roDir = await mkdtemp(join(tmpdir(), 'many-requests-ro-'));
  try {
    await chown(roDir, user.uid, user.gid);
    const file = join(roDir, 'ro.ndjson');
    await writeFile(file, 'old\n');
    await chown(file, user.uid, user.gid);
    await chmod(file, 0o400);
    const r = await run(['-q', '-o', file, `${good.origin}/ok`], undefined, user);
    assert.equal(r.code, 74, r.stderr);
    assert.match(
      r.stderr,
      /^many-requests: error: cannot write the results to .*ro\.ndjson: .*not writable.*\n$/,
    );
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal(await readFile(file, 'utf8'), 'old\n');
    assert.equal((await stat(file)).mode & 0o777, 0o400);
    assert.deepEqual(await readdir(roDir), ['ro.ndjson'], 'no temp file left');
    // the control: the same file made writable is replaced
    await chmod(file, 0o600);
    const ok = await run(['-q', '-o', file, `${good.origin}/ok`], undefined, user);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(lines(await readFile(file, 'utf8')).length, 1);
  } finally {
    await rm(roDir, { recursive: true, force: true });
  }
});

/**
 * Who the test may run the CLI as to check a permission root ignores: itself when it is not root,
 * `nobody` (65534) when it is root and that user exists, else `undefined`.
 */
function unprivilegedUser(): { uid: number; gid: number } | undefined {
  const uid = process.getuid?.();
  if (uid === undefined) return undefined;
  if (uid !== 0) return { uid, gid: process.getgid!() };
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[2] === '65534');
  return line === undefined ? undefined : { uid: 65534, gid: Number(line.split(':')[3]) };
}

test('a host down at the start (until its breaker opened), then up: with --max-wait-ms every URL ends ok', async () => {
  const proxy = await startFaultProxy({ target: good.origin });
  try {
    await proxy.setFault({ type: 'down' });
    const urls = Array.from({ length: 300 }, (_, i) => `${proxy.url}u?${i}`).join('\n');
    const p = start(['--breaker-open-ms', '500', '--max-wait-ms', '30000', '-v']);
    const opened = whenOutput(p.child.stderr!, (t) => /closed -> open/.test(t), 'the breaker opening');
    p.child.stdin!.end(urls);
    await opened;
    await proxy.setFault(undefined);
    const r = await p.done;
    assert.equal(r.code, 0, r.stderr);
    const out = lines(r.stdout);
    assert.equal(out.length, 300);
    assert.deepEqual(
      out.filter((l) => !l.ok).map((l) => l.errorCode),
      [],
    );
    assert.match(r.stderr, /open -> half-open[\s\S]*half-open -> closed/);
  } finally {
    await proxy.close();
  }
});

test('credentials never reach another origin: a redirect is the answer (3xx, not followed)', async () => {
  const other = await startFaultServer();
  try {
    const to = encodeURIComponent(`${other.origin}/landing`);
    const r = await run([
      '-q',
      '-H',
      'Authorization: Bearer s3cret',
      '-H',
      'Cookie: sid=42',
      `${good.origin}/redirect?location=${to}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [record] = lines(r.stdout);
    assert.equal(record!.status, 302);
    assert.equal(record!.ok, true);
    assert.equal(
      good.requests.find((q) => q.path === '/redirect')!.headers['authorization'],
      'Bearer s3cret',
    );
    assert.equal(other.requestCount, 0, 'the other origin was never asked');
  } finally {
    await other.close();
  }
});

test('user:pass@ is sent as Basic to its own origin (-H Authorization wins); its password is never echoed', async () => {
  const url = `http://u:s3cr3tpw@127.0.0.1:${good.port}/ui-ok`;
  const refused = 'http://v:an0therpw@127.0.0.1:1/ui-down';
  const r = await run(['--retries', '0', url, refused]);
  assert.equal(r.code, 1, r.stderr);
  const sent = good.requests.find((q) => q.path === '/ui-ok')!.headers['authorization'];
  assert.equal(sent, `Basic ${Buffer.from('u:s3cr3tpw').toString('base64')}`);
  const records = lines(r.stdout).sort((a, b) => Number(a['index']) - Number(b['index']));
  assert.deepEqual(
    records.map((x) => x['url']),
    [`http://u:***@127.0.0.1:${good.port}/ui-ok`, 'http://v:***@127.0.0.1:1/ui-down'],
  );
  const json = await run(['--retries', '0', '--json', '-H', 'Authorization: Bearer tok', url, refused]);
  assert.equal(
    good.requests.filter((q) => q.path === '/ui-ok').at(-1)!.headers['authorization'],
    'Bearer tok',
  );
  for (const out of [r, json]) {
    assert.doesNotMatch(out.stdout, /s3cr3tpw|an0therpw/);
    assert.doesNotMatch(out.stderr, /s3cr3tpw|an0therpw/);
  }
});

test('--max-wait-ms with 5000 URLs to one host down at the start: every URL waits for it and ends ok', async () => {
  const server = await startFaultServer();
  const proxy = await startFaultProxy({ target: server.origin });
  try {
    await proxy.setFault({ type: 'down' });
    const n = 5000; // far more than the read-ahead window (1000) holds
    const file = join(dir, 'one-host.txt');
    await writeFile(file, Array.from({ length: n }, (_, i) => `${proxy.url}u?${i}`).join('\n'));
    const p = start(['-i', file, '--breaker-open-ms', '500', '--max-wait-ms', '30000', '-v']);
    p.child.stdin!.end();
    await whenOutput(p.child.stderr!, (t) => /closed -> open/.test(t), 'the breaker opening');
    await proxy.setFault(undefined);
    const r = await p.done;
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const out = lines(r.stdout);
    assert.equal(out.length, n);
    const failed = new Map<unknown, number>();
    for (const l of out) if (!l.ok) failed.set(l.errorCode, (failed.get(l.errorCode) ?? 0) + 1);
    assert.deepEqual([...failed], []);
    assert.equal(new Set(out.map((l) => l.index)).size, n);
  } finally {
    await proxy.close();
    await server.close();
  }
});

test('-H and -A are sent with every request; --attempt-timeout takes seconds', async () => {
  const r = await run(['-q', '-H', 'X-Batch: nightly', '-A', 'crawler/2', `${good.origin}/hdr?1`]);
  assert.equal(r.code, 0, r.stderr);
  const seen = good.requests.find((q) => q.path === '/hdr')!.headers;
  assert.equal(seen['x-batch'], 'nightly');
  assert.equal(seen['user-agent'], 'crawler/2');
  const slow = await run(['-q', '--attempt-timeout', '0.3', '--retries', '0', `${dead.origin}/slow`]);
  assert.equal(slow.code, 1);
  assert.equal(lines(slow.stdout)[0]!.errorCode, 'TIMEOUT');
});

test('--metrics-file: a node-exporter textfile promtool accepts, with URLs by outcome, retries, trips, bytes, exit code', async () => {
  const prom = join(dir, 'many.prom');
  const r = await run([
    '--metrics-file',
    prom,
    '-q',
    `${good.origin}/ok?size=100`,
    `${good.origin}/status/503`,
    'nope',
  ]);
  assert.equal(r.code, 1);
  const text = await readFile(prom, 'utf8');
  const check = spawnSync('promtool', ['check', 'metrics'], {
    input: text,
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(check.error, undefined, 'promtool runs');
  assert.equal(check.status, 0, `${check.stdout}${check.stderr}\n${text}`);
  const value = (series: string): number =>
    Number(new RegExp(`^${series.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1]);
  assert.equal(value('bulwark_many_requests_last_run_urls{outcome="ok"}'), 1);
  assert.equal(value('bulwark_many_requests_last_run_urls{outcome="HTTP_5XX"}'), 1);
  assert.equal(value('bulwark_many_requests_last_run_urls{outcome="INVALID_URL"}'), 1);
  assert.equal(value('bulwark_many_requests_last_run_urls{outcome="TIMEOUT"}'), 0, 'every code is written');
  assert.equal(value('bulwark_many_requests_last_run_retries{result="sent"}'), 2);
  assert.equal(value('bulwark_many_requests_last_run_bytes'), 100 + 11);
  assert.equal(value('bulwark_many_requests_last_run_exit_code'), 1);
  assert.ok(value('bulwark_many_requests_last_run_timestamp_seconds') > 1.7e9);
  assert.deepEqual(
    (await readdir(dir)).filter((f) => f.includes('many.prom') && f.endsWith('.tmp')),
    [],
  );
  // the rules read these names
  const rules = await readFile(new URL('../../../../ops/prometheus/rules.yml', import.meta.url), 'utf8');
  const consecutive = 'bulwark_many_requests_last_run_consecutive_failures';
  assert.ok(rules.includes(consecutive), `rules.yml reads ${consecutive}`);
  // runs in a row that failed: 1, 2, then 0 after a run that succeeded
  const count = async (): Promise<number> =>
    Number(new RegExp(`^${consecutive} (\\d+)$`, 'm').exec(await readFile(prom, 'utf8'))?.[1]);
  assert.equal(await count(), 1);
  await run(['--metrics-file', prom, '-q', `${good.origin}/status/404`]);
  assert.equal(await count(), 2);
  await run(['--metrics-file', prom, '-q', `${good.origin}/ok`]);
  assert.equal(await count(), 0);
});

test('a cut body is never ok: each truncation shape is its error code, retried, with a complete body as the control', async () => {
  const cut = await startFaultServer();
  try {
    const shapes: [string, string][] = [
      ['/reset?afterBytes=100&size=5000&framing=close', 'RESET'], // no length + reset
      ['/truncate?bytes=100&size=5000', 'CLOSED'], // short Content-Length
      ['/truncate?bytes=100&size=5000&framing=chunked', 'CLOSED'], // broken chunking
      ['/stall?afterBytes=100&size=5000', 'TIMEOUT'], // stalls past the attempt's deadline
    ];
    const control = `${cut.origin}/ok?size=5000&framing=close`;
    const args = ['-q', '--retries', '1', '--attempt-timeout-ms', '1500', '--breaker-failures', '100'];
    const r = await run([...args, ...shapes.map(([path]) => `${cut.origin}${path}`), control]);
    assert.equal(r.code, 1, r.stderr);
    const out = new Map(lines(r.stdout).map((l) => [l.index, l]));
    shapes.forEach(([path, code], i) => {
      const record = out.get(i)!;
      assert.equal(record.ok, false, path);
      assert.equal(record.errorCode, code, `${path}: ${String(record.error)}`);
      assert.equal(record.attempts, 2, `${path} is retried`);
    });
    assert.equal(out.get(4)!.ok, true, 'a complete close-delimited body');
    assert.equal(out.get(4)!.bytes, 5000);
  } finally {
    await cut.close();
  }
});

test('TLS: an unvouched certificate is a TLS failure; --cacert trusts it; -k skips the check with a warning', async () => {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  const openssl = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-days',
      '1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'pipe' },
  );
  assert.equal(openssl.status, 0, `openssl is needed for this test: ${String(openssl.stderr)}`);
  const https = createHttpsServer(
    { cert: await readFile(certFile), key: await readFile(keyFile) },
    (_q, res) => res.end('secure'),
  );
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${(https.address() as { port: number }).port}/`;
  try {
    const refused = await run(['-q', url]);
    assert.equal(refused.code, 1);
    const record = lines(refused.stdout)[0]!;
    assert.equal(record.errorCode, 'TLS', String(record.error));
    assert.equal(record.attempts, 1, 'not retried');
    const trusted = await run(['-q', '--cacert', certFile, url]);
    assert.equal(trusted.code, 0, trusted.stderr);
    assert.equal(lines(trusted.stdout)[0]!.bytes, 6);
    // -s is -q, and the -k warning is printed all the same
    const insecure = await run(['-s', '-k', url]);
    assert.equal(insecure.code, 0, insecure.stderr);
    assert.match(insecure.stderr, /^many-requests: WARNING: TLS certificates are NOT verified/);
    assert.doesNotMatch(insecure.stderr, /URLs in/, '-s: no summary');
    const both = await run(['-k', '--cacert', certFile, url]);
    assert.equal(both.code, 2);
  } finally {
    await new Promise<void>((resolve) => https.close(() => resolve()));
  }
});
