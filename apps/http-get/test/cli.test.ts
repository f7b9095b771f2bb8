// End-to-end: the BUILT binary against @bulwark/fault-server over loopback, one real fault per case.
// No assertion reads a clock: what a deadline did is read from what the run reports (tiers, reasons).
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { watch } from 'node:fs';
import { chmod, chown, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { MALFORMED_KINDS, patternBody, startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { DiskCacheStore } from '@bulwark/http';
import { EXIT } from '../src/config.js';
import { BIN, STACK_FRAME, deadOrigin, parseJson, runCli, unprivilegedUser, type CliRun } from './harness.js';

const DEADLINE_MS = 2000;

let primary: FaultServer;
let mirror: FaultServer;
let work: string;

function assertClean(run: CliRun): void {
  assert.doesNotMatch(run.stderr, STACK_FRAME, `stack trace on stderr:\n${run.stderr}`);
  assert.doesNotMatch(run.stderr, /Error: .*\n\s+at /);
}

before(async () => {
  primary = await startFaultServer();
  mirror = await startFaultServer();
  work = await mkdtemp(join(tmpdir(), 'http-get-e2e-'));
});

beforeEach(() => {
  primary.reset();
  mirror.reset();
  primary.setResponse({ body: 'primary body\n', cacheControl: 'max-age=60' });
  mirror.setResponse({ body: 'mirror body\n', cacheControl: 'max-age=60' });
});

after(async () => {
  await Promise.all([primary.close(), mirror.close()]);
  await rm(work, { recursive: true, force: true });
});

let dirs = 0;
const freshCacheDir = (): string => join(work, `cache-${++dirs}`);

describe('tiers, end to end', () => {
  it('primary: body on stdout, exit 0, nothing on stderr', async () => {
    const run = await runCli([`${primary.origin}/doc`, '--cache-dir', freshCacheDir()]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.toString(), 'primary body\n');
    assert.equal(run.stderr, '');
  });

  it('fresh cache hit: the second run does not call upstream (--json says fresh-cache)', async () => {
    const cacheDir = freshCacheDir();
    await runCli([`${primary.origin}/doc`, '--cache-dir', cacheDir]);
    const run = await runCli([`${primary.origin}/doc`, '--cache-dir', cacheDir, '--json']);
    assert.equal(run.code, EXIT.OK, run.stderr);
    const doc = parseJson(run);
    assert.equal(doc['schemaVersion'], 2);
    assert.equal(doc['tier'], 'fresh-cache');
    assert.equal(doc['attempts'], 0);
    assert.equal(typeof doc['cacheAgeMs'], 'number');
    assert.equal(primary.requestCount, 1);
    assert.match(run.stderr, /served from the cache/);
  });

  it('a response to a request with credentials is not stored (unless public): no one else is served it', async () => {
    for (const creds of [
      ['-H', 'Authorization: Bearer alice'],
      ['-H', 'Cookie: sid=alice'],
    ]) {
      for (const other of [[], ['-H', 'Authorization: Bearer mallory']]) {
        primary.reset();
        primary.setResponse({ body: 'alice only\n', cacheControl: 'max-age=60' });
        const cacheDir = freshCacheDir();
        const first = await runCli([`${primary.origin}/private`, '--cache-dir', cacheDir, ...creds]);
        assert.equal(first.code, EXIT.OK, first.stderr);
        primary.setResponse({ body: 'not alice\n', cacheControl: 'max-age=60' });
        const run = await runCli([`${primary.origin}/private`, '--cache-dir', cacheDir, '--json', ...other]);
        const doc = parseJson(run);
        assert.equal(doc['tier'], 'primary', `${creds.join(' ')} then ${other.join(' ') || 'none'}`);
        assert.equal(primary.requestCount, 2);
      }
    }
    // user:pass@ in the URL is a credential too
    primary.reset();
    primary.setResponse({ body: 'bob only\n', cacheControl: 'max-age=60' });
    const cacheDir = freshCacheDir();
    await runCli([`http://bob:pw@127.0.0.1:${primary.port}/ui`, '--cache-dir', cacheDir]);
    const after = parseJson(
      await runCli([`http://eve:x@127.0.0.1:${primary.port}/ui`, '--cache-dir', cacheDir, '--json']),
    );
    assert.equal(after['tier'], 'primary');
    // the server may allow it (RFC 9111 §3.5): public, s-maxage or must-revalidate
    primary.reset();
    primary.setResponse({ body: 'for all\n', cacheControl: 'public, max-age=60' });
    const shared = freshCacheDir();
    await runCli([`${primary.origin}/public`, '--cache-dir', shared, '-H', 'Authorization: Bearer alice']);
    const hit = parseJson(await runCli([`${primary.origin}/public`, '--cache-dir', shared, '--json']));
    assert.equal(hit['tier'], 'fresh-cache');
  });

  it('primary down → fallback, announced on stderr', async () => {
    const dead = await deadOrigin();
    const run = await runCli([
      `${dead}/doc`,
      '--fallback',
      `${mirror.origin}/doc`,
      '--no-cache',
      '--retries',
      '0',
    ]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.toString(), 'mirror body\n');
    assert.match(
      run.stderr,
      /warning: served from fallback-1 .* not the primary: primary Connection refused/,
    );
    assertClean(run);
  });

  it('-q: nothing on stderr but errors (no fallback warning), the body still on stdout', async () => {
    const dead = await deadOrigin();
    const args = [`${dead}/doc`, '--fallback', `${mirror.origin}/doc`, '--no-cache', '--retries', '0'];
    const quiet = await runCli([...args, '-q']);
    assert.equal(quiet.code, EXIT.OK, quiet.stderr);
    assert.equal(quiet.stdout.toString(), 'mirror body\n');
    assert.equal(quiet.stderr, '');
    const failed = await runCli([`${dead}/doc`, '--no-cache', '--retries', '0', '-q']);
    assert.equal(failed.code, EXIT.NETWORK);
    assert.match(failed.stderr, /^http-get: error: Connection refused/);
  });

  it('both down → stale copy within --max-stale-ms; beyond it → exit 69; --fail-on-stale → exit 3', async () => {
    primary.setResponse({ body: 'cached body\n', cacheControl: 'max-age=0' });
    const cacheDir = freshCacheDir();
    const url = `${primary.origin}/doc`;
    assert.equal((await runCli([url, '--cache-dir', cacheDir])).code, EXIT.OK);
    primary.setFault({ type: 'status', status: 503 });
    mirror.setFault({ type: 'reset' });
    const args = [url, '--fallback', `${mirror.origin}/doc`, '--cache-dir', cacheDir, '--retries', '0'];

    const stale = await runCli([...args, '--max-stale-ms', '600000', '--json']);
    assert.equal(stale.code, EXIT.OK, stale.stderr);
    const doc = parseJson(stale);
    assert.equal(doc['tier'], 'stale-cache');
    assert.equal(doc['stale'], true);
    assert.ok((doc['stalenessMs'] as number) > 0);
    assert.match(stale.stderr, /served a STALE copy/);
    const plain = await runCli([...args, '--max-stale-ms', '600000']);
    assert.equal(plain.stdout.toString(), 'cached body\n');

    const tooOld = await runCli([...args, '--max-stale-ms', '0']);
    assert.equal(tooOld.code, EXIT.ALL_TIERS_FAILED, tooOld.stderr);
    assert.equal(tooOld.stdout.length, 0);
    assert.match(
      tooOld.stderr,
      /all tiers failed[\s\S]*stale-cache: skipped — stale copy is \d+ ms past freshness; max-stale 0 ms/,
    );
    assertClean(tooOld);

    const refused = await runCli([...args, '--max-stale-ms', '600000', '--fail-on-stale']);
    assert.equal(refused.code, EXIT.STALE_REFUSED);
    assert.equal(refused.stdout.length, 0);
    assertClean(refused);
  });

  it('everything down: exit 7 with a single source, 69 with fallbacks; --json says why', async () => {
    const dead = await deadOrigin();
    const single = await runCli([`${dead}/doc`, '--no-cache', '--retries', '0']);
    assert.equal(single.code, EXIT.NETWORK);
    assert.equal(single.stdout.length, 0);
    assert.match(single.stderr, /error: Connection refused/);
    assertClean(single);

    const all = await runCli([
      `${dead}/doc`,
      '--fallback',
      `${dead}/mirror`,
      '--no-cache',
      '--retries',
      '0',
      '--json',
    ]);
    assert.equal(all.code, EXIT.ALL_TIERS_FAILED);
    const doc = parseJson(all);
    assert.equal(doc['ok'], false);
    assert.equal(doc['exitCode'], EXIT.ALL_TIERS_FAILED);
    assert.deepEqual(doc['error'], {
      code: 'BULWARK_ERR_ALL_SOURCES_FAILED',
      message: `all tiers failed for ${dead}/doc`,
    });
    assert.deepEqual(
      (doc['tiers'] as { tier: string; status: string }[]).map((t) => `${t.tier}:${t.status}`),
      ['fresh-cache:skipped', 'primary:failed', 'fallback-1:failed', 'stale-cache:skipped'],
    );
  });

  it('304 revalidation refreshes the cached copy', async () => {
    primary.setResponse({ body: 'etagged\n', etag: '"e1"', cacheControl: 'max-age=0' });
    const cacheDir = freshCacheDir();
    await runCli([`${primary.origin}/doc`, '--cache-dir', cacheDir]);
    const run = await runCli([
      `${primary.origin}/doc`,
      '--cache-dir',
      cacheDir,
      '--json',
      '-o',
      join(work, 'etag.out'),
    ]);
    const doc = parseJson(run);
    assert.equal(doc['tier'], 'primary');
    assert.equal(doc['revalidated'], true);
    assert.equal(primary.requests.at(-1)!.headers['if-none-match'], '"e1"');
    assert.equal(await readFile(join(work, 'etag.out'), 'utf8'), 'etagged\n');
  });

  it('the proxy comes from the environment (HTTP_PROXY), and NO_PROXY bypasses it', async () => {
    const deadProxy = await deadOrigin();
    const url = `${primary.origin}/doc`;
    const viaProxy = await runCli([url, '--no-cache', '--retries', '0'], {
      env: { HTTP_PROXY: deadProxy, http_proxy: deadProxy, NO_PROXY: '', no_proxy: '' },
    });
    assert.equal(viaProxy.code, EXIT.NETWORK, 'the (dead) proxy was used');
    assert.equal(primary.requestCount, 0);
    const bypass = await runCli([url, '--no-cache', '--retries', '0'], {
      env: { HTTP_PROXY: deadProxy, http_proxy: deadProxy, NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' },
    });
    assert.equal(bypass.code, EXIT.OK, bypass.stderr);
    assert.equal(bypass.stdout.toString(), 'primary body\n');
  });

  it('a corrupted cache is a miss, never a crash', async () => {
    const cacheDir = freshCacheDir();
    await runCli([`${primary.origin}/doc`, '--cache-dir', cacheDir]);
    const entryDir = new DiskCacheStore({ dir: cacheDir }).entryDir(`${primary.origin}/doc`);
    for (const f of (await readdir(entryDir)).filter((n) => n.endsWith('.snap'))) {
      const path = join(entryDir, f);
      const bytes = await readFile(path);
      bytes[bytes.length - 3]! ^= 0x55;
      await writeFile(path, bytes);
    }
    const run = await runCli([`${primary.origin}/doc`, '--cache-dir', cacheDir, '-v']);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.toString(), 'primary body\n');
    assert.match(run.stderr, /\[cache\] read corrupt: .*checksum-mismatch/);
    assert.equal(primary.requestCount, 2);
    assertClean(run);
  });
});

interface FaultCase {
  readonly name: string;
  readonly path: string;
  readonly code: number;
  /** The fault costs time: a deadline, not the fault, ends the primary's tier (its reason says so). */
  readonly slow?: boolean;
}

const FAULTS: readonly FaultCase[] = [
  { name: 'latency beyond the deadline', path: '/latency/8000', code: EXIT.NETWORK, slow: true },
  { name: 'black hole', path: '/blackhole', code: EXIT.NETWORK, slow: true },
  { name: 'reset before the response', path: '/reset', code: EXIT.NETWORK },
  { name: 'reset mid-body', path: '/reset?afterBytes=1000&size=100000', code: EXIT.NETWORK },
  { name: 'truncated body', path: '/truncate?bytes=1000&size=100000', code: EXIT.NETWORK },
  { name: 'slow drip', path: '/drip?bytes=10&intervalMs=100&size=100000', code: EXIT.NETWORK, slow: true },
  { name: 'close without a byte', path: '/close', code: EXIT.NETWORK },
  { name: '503 with Retry-After seconds', path: '/status/503?retryAfter=1', code: EXIT.HTTP },
  { name: '429 with Retry-After HTTP-date', path: '/status/429?retryAfterDate=1000', code: EXIT.HTTP },
  { name: '500', path: '/status/500', code: EXIT.HTTP },
  { name: '404 (final, no retry)', path: '/status/404', code: EXIT.HTTP },
  ...MALFORMED_KINDS.map((kind) => ({
    name: `malformed ${kind}`,
    path: `/malformed/${kind}`,
    code: EXIT.NETWORK,
  })),
];

describe('fault matrix: exit code, tier, clean output', { concurrency: 2 }, () => {
  for (const f of FAULTS) {
    it(`${f.name}: exit ${f.code}, nothing on stdout, no stack trace`, async () => {
      const run = await runCli([
        `${primary.origin}${f.path}`,
        '--no-cache',
        '--timeout-ms',
        String(DEADLINE_MS),
        '--retries',
        '1',
        '--json',
      ]);
      assert.equal(run.code, f.code, run.stderr);
      const doc = parseJson(run); // stdout holds the JSON document and nothing else: no body bytes
      assert.equal(doc['ok'], false);
      assert.equal(doc['tier'], null);
      assert.equal(doc['bytes'], null);
      assertClean(run);
      if (f.path.includes('retryAfter=1')) {
        // both attempts answered 503 with Retry-After: 1, and the run waited it out between them
        assert.equal(doc['attempts'], 2);
        const primaryTier = (doc['tiers'] as { tier: string; reason: string }[]).find(
          (t) => t.tier === 'primary',
        )!;
        assert.match(primaryTier.reason, /retry after 1000 ms/);
      }
      if (f.slow) {
        const primaryTier = (doc['tiers'] as { tier: string; reason: string }[]).find(
          (t) => t.tier === 'primary',
        )!;
        assert.match(primaryTier.reason, /timed out|stalled|total timeout/i, primaryTier.reason);
      }
    });

    if (f.path === '/status/404') continue; // a 404 is an answer: no fallback (tested in the library)
    it(`${f.name} + --fallback: served by the mirror`, async () => {
      const run = await runCli([
        `${primary.origin}${f.path}`,
        '--fallback',
        `${mirror.origin}/doc`,
        '--no-cache',
        '--timeout-ms',
        String(DEADLINE_MS),
        '--retries',
        '1',
        '-o',
        join(work, `fallback-${f.name.replace(/\W+/g, '-')}.out`),
        '--json',
      ]);
      assert.equal(run.code, EXIT.OK, run.stderr);
      const doc = parseJson(run);
      assert.equal(doc['tier'], 'fallback');
      assert.equal(doc['source'], 'fallback-1');
      assert.equal(await readFile(doc['output'] as string, 'utf8'), 'mirror body\n');
      assertClean(run);
    });
  }

  it('plain output (no --json) of a failure: stdout empty, one error line per tier', async () => {
    const run = await runCli([
      `${primary.origin}/truncate?bytes=10&size=5000`,
      '--no-cache',
      '--retries',
      '0',
    ]);
    assert.equal(run.code, EXIT.NETWORK);
    assert.equal(run.stdout.length, 0);
    assert.match(run.stderr, /error: Connection closed before the response was complete/);
    assert.match(run.stderr, /primary: failed/);
    assertClean(run);
  });
});

describe('output and signals', () => {
  it('-o onto an existing file the user may not write (0400): exit 74, one line, the file untouched', async (t) => {
    // root may write any file (W_OK always passes): the CLI runs as an unprivileged user (nobody when the
    // test runs as root); without one the check cannot be made and is skipped
    const user = unprivilegedUser();
    if (user === undefined) return t.skip('running as root with no nobody user: W_OK always passes for root');
    const dir = await mkdtemp(join(tmpdir(), 'http-get-ro-'));
    try {
      await chown(dir, user.uid, user.gid);
      const file = join(dir, 'ro.txt');
      await writeFile(file, 'old\n');
      await chown(file, user.uid, user.gid);
      await chmod(file, 0o400);
      const run = await runCli([`${primary.origin}/doc`, '--no-cache', '-o', file], { ...user, cwd: dir });
      assert.equal(run.code, EXIT.IO, run.stderr);
      assert.match(run.stderr, /^http-get: error: cannot write .*ro\.txt: .*not writable.*\n$/);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
      assert.equal(await readFile(file, 'utf8'), 'old\n');
      assert.equal((await stat(file)).mode & 0o777, 0o400);
      assert.deepEqual(await readdir(dir), ['ro.txt'], 'no temp file left');
      // the control: the same file made writable is replaced
      await chmod(file, 0o600);
      const ok = await runCli([`${primary.origin}/doc`, '--no-cache', '-o', file], { ...user, cwd: dir });
      assert.equal(ok.code, EXIT.OK, ok.stderr);
      assert.notEqual(await readFile(file, 'utf8'), 'old\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('-o writes the whole body atomically and leaves no temp file', async () => {
    const dir = await mkdtemp(join(work, 'out-'));
    const file = join(dir, 'body.bin');
    const run = await runCli([`${primary.origin}/big?size=3000000`, '--no-cache', '-o', file]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.length, 0);
    assert.ok((await readFile(file)).equals(patternBody(3_000_000)));
    assert.deepEqual(await readdir(dir), ['body.bin']);
  });

  it('a large body to stdout is complete (not torn) and no progress bar when stderr is not a terminal', async () => {
    const run = await runCli([`${primary.origin}/big?size=2000000`, '--no-cache']);
    assert.equal(run.code, EXIT.OK);
    assert.ok(run.stdout.equals(patternBody(2_000_000)));
    assert.equal(run.stderr, '');
  });

  it('on a terminal: a progress bar for a large body; colour unless NO_COLOR', async () => {
    // util-linux `script` gives the CLI a pseudo-terminal; its output is the terminal's (stdout + stderr)
    const dir = await mkdtemp(join(work, 'tty-'));
    const tty = (cmd: string, env: NodeJS.ProcessEnv) =>
      new Promise<string>((resolve, reject) => {
        execFile(
          'script',
          ['-qec', cmd, '/dev/null'],
          { env: { ...process.env, TERM: 'xterm-256color', ...env }, timeout: 20_000 },
          (error, stdout) => (error ? reject(error) : resolve(stdout)),
        );
      });
    const bin = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)}`;
    const big = await tty(
      `${bin} --no-cache -o ${dir}/big.bin '${primary.origin}/bandwidth?size=3000000&bytesPerSecond=3000000'`,
      {
        NO_COLOR: '',
      },
    );
    assert.match(big, /\d+% \| [\d.]+\/2\.9 MiB/);
    assert.ok((await readFile(join(dir, 'big.bin'))).equals(patternBody(3_000_000)));

    const dead = await deadOrigin();
    const args = `--no-cache --retries 0 -o ${dir}/small.txt ${dead}/x --fallback ${mirror.origin}/doc`;
    const coloured = await tty(`${bin} ${args}`, { NO_COLOR: '', FORCE_COLOR: '' });
    assert.ok(coloured.includes('\u001b[33mwarning:'), JSON.stringify(coloured));
    const plain = await tty(`${bin} ${args}`, { NO_COLOR: '1' });
    assert.match(plain, /warning: served from fallback-1/);
    assert.ok(!plain.includes('\u001b['), JSON.stringify(plain));
  });

  it('SIGINT while waiting → exit 130, no output file, the old file untouched, no temp file', async () => {
    const dir = await mkdtemp(join(work, 'sigint-'));
    const file = join(dir, 'out.txt');
    await writeFile(file, 'previous content');
    const run = await runCli([`${primary.origin}/latency/10000`, '--no-cache', '-o', file], {
      onSpawn: (child) => {
        void primary.waitForRequests(1, 10_000).then(() => child.kill('SIGINT'));
      },
    });
    assert.equal(run.code, EXIT.INTERRUPTED, run.stderr);
    assert.equal(await readFile(file, 'utf8'), 'previous content');
    assert.deepEqual(await readdir(dir), ['out.txt']);
    assertClean(run);
  });

  it('SIGINT mid-body (slow drip) → exit 130, no partial file', async () => {
    const dir = await mkdtemp(join(work, 'sigint-body-'));
    const file = join(dir, 'out.bin');
    // the body has started when its temp file appears next to out.bin (the drip takes 10 s in all)
    const watcher = watch(dir);
    const run = await runCli(
      [`${primary.origin}/drip?bytes=2000&intervalMs=50&size=400000`, '--no-cache', '-o', file],
      {
        onSpawn: (child) => {
          watcher.once('change', () => child.kill('SIGINT'));
        },
      },
    );
    watcher.close();
    assert.equal(run.code, EXIT.INTERRUPTED, run.stderr);
    assert.deepEqual(await readdir(dir), []);
    assertClean(run);
  });

  it('SIGTERM → exit 143', async () => {
    const run = await runCli([`${primary.origin}/blackhole`, '--no-cache'], {
      onSpawn: (child) => {
        void primary.waitForRequests(1, 10_000).then(() => child.kill('SIGTERM'));
      },
    });
    assert.equal(run.code, EXIT.TERMINATED);
    assert.equal(run.stdout.length, 0);
  });

  it('stdout closed early (| head): exit 141 (128 + SIGPIPE, as a shell reports), quietly', async () => {
    const run = await runCli([`${primary.origin}/big?size=4000000`, '--no-cache'], {
      onSpawn: (child) => child.stdout!.once('data', () => child.stdout!.destroy()),
    });
    assert.equal(run.code, EXIT.BROKEN_PIPE, run.stderr);
    assert.equal(EXIT.BROKEN_PIPE, 141);
    assert.equal(run.stderr, '');
  });

  it('--attempt-timeout-ms bounds each attempt within the total deadline', async () => {
    const run = await runCli([
      `${primary.origin}/latency/5000`,
      '--no-cache',
      '--attempt-timeout-ms',
      '300',
      '--retries',
      '1',
      '--timeout-ms',
      '20000',
      '--json',
    ]);
    assert.equal(run.code, EXIT.NETWORK, run.stderr);
    const doc = parseJson(run);
    assert.equal(doc['attempts'], 2);
    const primaryTier = (doc['tiers'] as { tier: string; reason: string }[]).find(
      (t) => t.tier === 'primary',
    )!;
    assert.match(
      primaryTier.reason,
      /timed out after 300 ms/,
      'each attempt was cut at 300 ms, not the total',
    );
    assertClean(run);
  });

  it('an unwritable output path → exit 74 with a clear message', async () => {
    const run = await runCli([
      `${primary.origin}/doc`,
      '--no-cache',
      '-o',
      join(work, 'no', 'such', 'dir', 'f'),
    ]);
    assert.equal(run.code, EXIT.IO);
    assert.match(run.stderr, /error: cannot write .*ENOENT/);
    assertClean(run);
  });
});

describe('argv validation (exit 2, a message saying what is allowed)', () => {
  const cases: [string[], RegExp][] = [
    [[], /missing required argument 'url'/],
    [['ftp://example.test/'], /expected an http:\/\/ or https:\/\/ URL/],
    [['not a url'], /expected an absolute http:\/\/ or https:\/\/ URL/],
    [['http://a.test/', 'http://b.test/'], /too many arguments/],
    [['http://a.test/', '--timeout-ms', '0'], /--timeout-ms.*integer number of milliseconds from 1 to/],
    [['http://a.test/', '--timeout-ms', '1.5'], /--timeout-ms/],
    [['http://a.test/', '--retries', '-1'], /--retries/],
    [['http://a.test/', '--retries', 'many'], /--retries.*from 0 to 100/],
    [['http://a.test/', '--max-stale-ms', 'x'], /--max-stale-ms/],
    [['http://a.test/', '--fallback', 'file:///etc/passwd'], /--fallback.*http:\/\/ or https:\/\//],
    [['http://a.test/', '--output', ''], /--output.*not an empty string/],
    [['http://a.test/', '--bogus'], /unknown option '--bogus'/],
    [['http://a.test/', '--timout-ms', '5'], /unknown option '--timout-ms'\n\(Did you mean --timeout-ms\?\)/],
    [
      ['http://a.test/', '--attempt-timeout-ms', '0'],
      /--attempt-timeout-ms.*'0' is invalid.*milliseconds from 1 to/,
    ],
    [['http://a.test/', '-m', '0'], /--max-time.*'0' is invalid.*seconds, decimals allowed/],
    [['http://a.test/', '-m', 'soon'], /--max-time.*'soon' is invalid/],
    [
      ['http://a.test/', '-m', '2', '--timeout-ms', '100'],
      /choose one of --max-time \(seconds\) and --timeout-ms/,
    ],
    [['http://a.test/', '--connect-timeout', '-1'], /--connect-timeout.*'-1' is invalid/],
    [['http://a.test/', '-H', 'no colon'], /--header.*"Name: value"/],
    [['http://a.test/', '-H', 'Bad Name: x'], /--header.*"Name: value"/],
    [
      ['http://a.test/', '-H', 'Transfer-Encoding: chunked'],
      /--header.*Transfer-Encoding is set by the HTTP client/,
    ],
    [['http://a.test/', '--cacert', '/nonexistent/ca.pem'], /--cacert.*cannot read it \(ENOENT\)/],
    [['http://a.test/', '-k', '--cacert', '/etc/hostname'], /--cacert.*PEM certificates/],
    [['http://a.test/', '-o', 'x', '-O'], /choose one of -o\/--output and -O\/--remote-name/],
    [['http://a.test/dir/', '-O'], /the URL has no file name to save as/],
    [['http://a.test/', '--no-fail', '--fail-with-body'], /choose one of --no-fail and --fail-with-body/],
    [['http://a.test/', '-s', '-v'], /choose one of --quiet \(or -s\) and --verbose/],
    [['http://a.test/', '--connect-timeout-ms', '2s'], /--connect-timeout-ms.*'2s' is invalid.*milliseconds/],
    [
      ['http://a.test/', '--max-body-bytes', '-1'],
      /--max-body-bytes.*'-1' is invalid.*integer number of bytes from 0/,
    ],
    [
      ['http://a.test/', '--max-redirects', '101'],
      /--max-redirects.*'101' is invalid.*integer from 0 to 100/,
    ],
    [['http://a.test/', '--cache-dir', ' '], /--cache-dir.*expected a directory path, not an empty string/],
    [
      ['http://a.test/', '--no-cache', '--cache-dir', '/tmp/x'],
      /--no-cache cannot be combined with --cache-dir/,
    ],
    [['http://a.test/', '-q', '-v'], /choose one of --quiet \(or -s\) and --verbose/],
  ];
  for (const [args, message] of cases) {
    it(`${JSON.stringify(args)} → exit 2`, async () => {
      const run = await runCli(args);
      assert.equal(run.code, EXIT.USAGE, run.stderr);
      assert.match(run.stderr, message);
      assert.match(run.stderr, /^http-get: /);
      assert.match(run.stderr, /\nTry 'http-get --help' for more information\.\n$/);
      assert.equal(run.stdout.length, 0);
      assertClean(run);
    });
  }

  it('package.json "bin" is the committed shim, which runs the built main.js (npx http-get)', async () => {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
      bin: Record<string, string>;
    };
    assert.deepEqual(pkg.bin, { 'http-get': 'bin/http-get.js' });
    const shim = await readFile(new URL('../../bin/http-get.js', import.meta.url), 'utf8');
    assert.ok(shim.startsWith('#!/usr/bin/env node\n'));
    assert.match(shim, /new URL\('\.\.\/dist\/src\/main\.js', import\.meta\.url\)/);
    assert.equal(BIN, fileURLToPath(new URL('../../dist/src/main.js', import.meta.url)));
  });

  it('-V and --version print the version of package.json, exit 0', async () => {
    const { version } = JSON.parse(
      await readFile(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as {
      version: string;
    };
    for (const flag of ['-V', '--version']) {
      const run = await runCli([flag]);
      assert.equal(run.code, EXIT.OK);
      assert.equal(run.stdout.toString(), `${version}\n`);
      assert.equal(run.stderr, '');
    }
  });

  it('--help lists every exit code, exit 0', async () => {
    const run = await runCli(['--help']);
    assert.equal(run.code, EXIT.OK);
    for (const code of Object.values(EXIT))
      assert.match(run.stdout.toString(), new RegExp(`^\\s+${code}  `, 'm'));
  });
});

describe('defaults on a dead source; a stale-while-revalidate hit', () => {
  it('a black-holed primary gives way to the mirror after 2 s of the default 30 s, not retried', async () => {
    const run = await runCli([
      `${primary.origin}/blackhole`,
      '--fallback',
      `${mirror.origin}/doc`,
      '--no-cache',
      '--json',
    ]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    const doc = parseJson(run);
    assert.equal(doc['source'], 'fallback-1');
    const tier = (doc['tiers'] as { tier: string; reason: string }[]).find((t) => t.tier === 'primary')!;
    assert.match(tier.reason, /timed out after 2000 ms/);
    assert.equal(doc['attempts'], 2, 'one on the primary, one on the mirror');
  });

  it('--retries works on a black hole without --attempt-timeout-ms: the attempt deadline comes from the total', async () => {
    const run = await runCli([
      `${primary.origin}/blackhole`,
      '--no-cache',
      '-m',
      '3',
      '--retries',
      '1',
      '--json',
    ]);
    assert.equal(run.code, EXIT.NETWORK);
    assert.equal(parseJson(run)['attempts'], 2);
  });

  it('a stale-while-revalidate hit with a hanging origin: the body is out at once, the process ends within the 2 s bound', async () => {
    const cacheDir = freshCacheDir();
    primary.setResponse(
      { body: 'cached body\n', cacheControl: 'max-age=0, stale-while-revalidate=600' },
      '/swr',
    );
    assert.equal((await runCli([`${primary.origin}/swr`, '--cache-dir', cacheDir])).code, EXIT.OK);
    primary.setFault({ type: 'blackhole' }, { path: '/swr' });
    // a refresh held for the 60 s total would be killed by the harness (30 s) and fail the test
    const run = await runCli(
      [`${primary.origin}/swr`, '--cache-dir', cacheDir, '--timeout-ms', '60000', '-v'],
      {
        killAfterMs: 30_000,
      },
    );
    assert.equal(run.signal, null, 'not killed');
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.toString(), 'cached body\n');
    assert.match(run.stderr, /\[primary, background refresh\] trying/);
    assert.equal(primary.requests.filter((r) => r.path === '/swr').length, 2, 'the refresh was sent');
  });
});
