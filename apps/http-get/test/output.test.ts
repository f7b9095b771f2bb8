// Where the body goes, as a user meets it (the BUILT binary, @bulwark/fault-server over loopback): -o like
// curl (atomic, through a symlink, keeping a file's mode, temp files that the next run cleans up), stdout
// held until complete (in memory, then an unlinked spool file), and write errors as errors.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants, openSync } from 'node:fs';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { patternBody, startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { EXIT } from '../src/config.js';
import { BIN, STACK_FRAME, parseJson, runCli } from './harness.js';

let server: FaultServer;
let work: string;
let n = 0;
async function dir(): Promise<string> {
  const d = join(work, `d${++n}`);
  await mkdir(d);
  return d;
}

before(async () => {
  server = await startFaultServer();
  work = await mkdtemp(join(tmpdir(), 'http-get-out-'));
});
after(async () => {
  await server.close();
  await rm(work, { recursive: true, force: true });
});

/** The pid of a process that has exited. */
function deadPid(): number {
  return Number(
    spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
      .stdout,
  );
}

const TEMP = /^\.body\.bin\.http-get\.\d+\.[0-9a-f]{12}\.tmp$/;

describe('-o like curl', () => {
  it('writes through a symlink: the link stays, the file it names gets the body', async () => {
    const d = await dir();
    await writeFile(join(d, 'real.txt'), 'old\n');
    await symlink('real.txt', join(d, 'latest'));
    const run = await runCli([`${server.origin}/ok?body=new`, '--no-cache', '-o', join(d, 'latest')]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.ok((await lstat(join(d, 'latest'))).isSymbolicLink(), 'still a symlink');
    assert.equal(await readlink(join(d, 'latest')), 'real.txt');
    assert.equal(await readFile(join(d, 'real.txt'), 'utf8'), 'new');
    // a dangling link: the file it names is created
    await symlink('made.txt', join(d, 'dangling'));
    const made = await runCli([`${server.origin}/ok?body=made`, '--no-cache', '-o', join(d, 'dangling')]);
    assert.equal(made.code, EXIT.OK, made.stderr);
    assert.equal(await readFile(join(d, 'made.txt'), 'utf8'), 'made');
    assert.deepEqual((await readdir(d)).sort(), ['dangling', 'latest', 'made.txt', 'real.txt']);
  });

  it("keeps an existing file's mode (0600 stays 0600); a new file gets 0666 less the umask", async () => {
    const d = await dir();
    const secret = join(d, 'secret.txt');
    await writeFile(secret, 'old');
    await chmod(secret, 0o600);
    const run = await runCli([`${server.origin}/ok?body=new`, '--no-cache', '-o', secret]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal((await stat(secret)).mode & 0o777, 0o600);
    assert.equal(await readFile(secret, 'utf8'), 'new');
    const fresh = join(d, 'fresh.txt');
    const umask = process.umask();
    assert.equal((await runCli([`${server.origin}/ok`, '--no-cache', '-o', fresh])).code, EXIT.OK);
    assert.equal((await stat(fresh)).mode & 0o777, 0o666 & ~umask);
  });

  it('-o a FIFO: the body goes into it (not a regular file renamed over it), and no temp file is left', async () => {
    const d = await dir();
    const fifo = join(d, 'pipe');
    execFileSync('mkfifo', [fifo]);
    // the reader is there before the writer (opened without blocking), as `cat pipe &` would be
    const reader = new Socket({
      fd: openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK),
      readable: true,
    });
    const got: Buffer[] = [];
    reader.on('data', (c: Buffer) => got.push(c));
    const ended = once(reader, 'end');
    try {
      const run = await runCli([`${server.origin}/ok?size=300000`, '--no-cache', '-o', fifo]);
      assert.equal(run.code, EXIT.OK, run.stderr);
      assert.ok((await lstat(fifo)).isFIFO(), 'the FIFO is still a FIFO');
      await ended;
      assert.ok(Buffer.concat(got).equals(patternBody(300_000)));
      assert.deepEqual(await readdir(d), ['pipe'], 'no temp file beside it');
    } finally {
      reader.destroy();
    }
  });

  it('-o /dev/stdout with stdout on a pipe (`| cat`): the body goes down the pipe', async () => {
    // a shell's pipe (node's own stdio pipes are sockets, which /dev/stdout cannot be opened on)
    const child = spawn(
      'bash',
      [
        '-c',
        'set -o pipefail; "$0" "$@" | cat',
        process.execPath,
        BIN,
        `${server.origin}/ok?size=100000`,
        '--no-cache',
        '-o',
        '/dev/stdout',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
    );
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    const [code] = (await once(child, 'close')) as [number | null];
    assert.equal(code, EXIT.OK, stderr);
    assert.ok(Buffer.concat(out).equals(patternBody(100_000)));
  });

  it('-o a character device (a null device made with mknod): written into, not replaced', async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip('mknod needs root');
      return;
    }
    const d = await dir();
    const dev = join(d, 'null');
    execFileSync('mknod', ['-m', '666', dev, 'c', '1', '3']);
    const run = await runCli([`${server.origin}/ok?size=1000`, '--no-cache', '-o', dev, '--json']);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(parseJson(run)['output'], dev);
    assert.ok((await lstat(dev)).isCharacterDevice(), 'still the device');
    assert.deepEqual(await readdir(d), ['null'], 'no temp file beside it');
    // a cut body is not written into it either: the run fails and the device saw nothing to replace
    const cut = await runCli([
      `${server.origin}/truncate?bytes=10&size=1000`,
      '--no-cache',
      '--retries',
      '0',
      '-o',
      dev,
    ]);
    assert.equal(cut.code, EXIT.NETWORK, cut.stderr);
    assert.ok((await lstat(dev)).isCharacterDevice());
  });

  it('temp files are recognisable, and the next run removes those whose process is gone', async () => {
    const d = await dir();
    const dead = join(d, `.body.bin.http-get.${deadPid()}.abcdef012345.tmp`);
    const alive = join(d, `.body.bin.http-get.${process.pid}.abcdef012345.tmp`);
    const foreign = join(d, '.body.bin.swp');
    for (const f of [dead, alive, foreign]) await writeFile(f, 'x');
    const run = await runCli([`${server.origin}/ok`, '--no-cache', '-o', join(d, 'body.bin')]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.deepEqual(
      (await readdir(d)).sort(),
      ['.body.bin.http-get.' + process.pid + '.abcdef012345.tmp', '.body.bin.swp', 'body.bin'].sort(),
    );
  });

  it('kill -9 mid-download leaves a temp file (and the old file intact); the next run removes it', async () => {
    const d = await dir();
    const file = join(d, 'body.bin');
    await writeFile(file, 'the previous version');
    const child = spawn(
      process.execPath,
      [BIN, `${server.origin}/drip?bytes=20000&intervalMs=20&size=4000000`, '--no-cache', '-o', file],
      { stdio: 'ignore' },
    );
    const exited = new Promise((resolve) => child.on('close', resolve));
    // the temp file appears once the body has started to arrive
    for (;;) {
      if ((await readdir(d)).some((f) => TEMP.test(f))) break;
      await new Promise((r) => setImmediate(r));
    }
    child.kill('SIGKILL');
    await exited;
    const left = (await readdir(d)).filter((f) => TEMP.test(f));
    assert.equal(left.length, 1, 'the killed writer left its temp file');
    assert.equal(await readFile(file, 'utf8'), 'the previous version');
    const next = await runCli([`${server.origin}/ok?size=1000`, '--no-cache', '-o', file]);
    assert.equal(next.code, EXIT.OK, next.stderr);
    assert.deepEqual(await readdir(d), ['body.bin'], "the killed writer's temp file is gone");
    assert.ok((await readFile(file)).equals(patternBody(1000)));
  });

  it('--max-body-bytes cuts a body off cleanly: no -o file, nothing on stdout', async () => {
    const d = await dir();
    const file = join(d, 'big.bin');
    const viaFile = await runCli([
      `${server.origin}/drip?bytes=50000&intervalMs=1&size=2000000`,
      '--no-cache',
      '--max-body-bytes',
      '100000',
      '-o',
      file,
    ]);
    assert.equal(viaFile.code, EXIT.NETWORK, viaFile.stderr);
    assert.match(viaFile.stderr, /exceeds the limit of 100000 bytes/);
    assert.deepEqual(await readdir(d), []);
    const viaStdout = await runCli([
      `${server.origin}/drip?bytes=50000&intervalMs=1&size=2000000`,
      '--no-cache',
      '--max-body-bytes',
      '100000',
    ]);
    assert.equal(viaStdout.code, EXIT.NETWORK);
    assert.equal(viaStdout.stdout.length, 0);
  });

  it('-o naming a directory: exit 74, one line', async () => {
    const d = await dir();
    const run = await runCli([`${server.origin}/ok`, '--no-cache', '-o', d]);
    assert.equal(run.code, EXIT.IO, run.stderr);
    assert.match(run.stderr, /^http-get: error: cannot write .*(EISDIR|is a directory)/);
    assert.doesNotMatch(run.stderr, STACK_FRAME);
  });
});

describe('stdout', () => {
  it('a body larger than the in-memory spool goes out whole, and its spool file leaves nothing in $TMPDIR', async () => {
    const spoolDir = await dir();
    const run = await runCli([`${server.origin}/ok?size=20000000`, '--no-cache'], {
      env: { TMPDIR: spoolDir },
    });
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.ok(run.stdout.equals(patternBody(20_000_000)));
    assert.deepEqual(await readdir(spoolDir), []);
  });

  it('a full disk (stdout is /dev/full): exit 74 and one line saying so', async () => {
    const fd = openSync('/dev/full', 'w');
    try {
      const plain = await runCli([`${server.origin}/ok?size=100000`, '--no-cache'], { stdoutFd: fd });
      assert.equal(plain.code, EXIT.IO, plain.stderr);
      assert.match(plain.stderr, /^http-get: error: cannot write stdout: .*ENOSPC/);
      assert.equal(plain.stderr.trim().split('\n').length, 1, plain.stderr);
      assert.doesNotMatch(plain.stderr, STACK_FRAME);
      const json = await runCli([`${server.origin}/ok`, '--no-cache', '--json'], { stdoutFd: fd });
      assert.equal(json.code, EXIT.IO, json.stderr);
      assert.match(json.stderr, /^http-get: error: cannot write stdout: .*ENOSPC/);
      assert.equal(json.stderr.trim().split('\n').length, 1, json.stderr);
    } finally {
      closeSync(fd);
    }
  });

  it('stdout on a file that cannot take the whole body (a short write): exit 74, never 0 with a torn body', async () => {
    // the file-size limit (prlimit --fsize) makes the write that crosses it return a short count, and the
    // next one fail with EFBIG; a tail that fits in one write(2) used to be dropped without a word
    const d = await dir();
    // (bodies under the 8 MiB spool: a larger one would be held in a temp file the limit applies to too)
    for (const [limit, size] of [
      [1_000_000, 1_000_100],
      [2_000_000, 2_000_010],
    ] as const) {
      const file = join(d, `out-${size}`);
      const fd = openSync(file, 'w');
      try {
        const child = spawn(
          'prlimit',
          [`--fsize=${limit}`, process.execPath, BIN, `${server.origin}/ok?size=${size}`, '--no-cache'],
          { stdio: ['ignore', fd, 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
        );
        let stderr = '';
        child.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr += t));
        const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
        assert.equal(code, EXIT.IO, `a ${size}-byte body into a ${limit}-byte limit: ${stderr}`);
        assert.match(stderr, /^http-get: error: cannot write stdout: .*EFBIG/);
        assert.equal(stderr.trim().split('\n').length, 1, stderr);
        assert.ok((await stat(file)).size < size);
      } finally {
        closeSync(fd);
      }
    }
  });

  it('stdout open only for reading (EBADF): exit 74 and one line saying so, --json too', async () => {
    const d = await dir();
    const file = join(d, 'read-only');
    await writeFile(file, '');
    const fd = openSync(file, 'r');
    try {
      for (const extra of [[], ['--json']]) {
        const run = await runCli([`${server.origin}/ok`, '--no-cache', ...extra], { stdoutFd: fd });
        assert.equal(run.code, EXIT.IO, run.stderr);
        assert.match(run.stderr, /^http-get: error: cannot write stdout: .*EBADF/);
        assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
        assert.doesNotMatch(run.stderr, STACK_FRAME);
      }
    } finally {
      closeSync(fd);
    }
  });

  it('--json with -o: the file holds the body, the document its size and SHA-256', async () => {
    const d = await dir();
    const run = await runCli([
      `${server.origin}/ok?size=3000000`,
      '--no-cache',
      '--json',
      '-o',
      join(d, 'b'),
    ]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    const doc = parseJson(run);
    assert.equal(doc['bytes'], 3_000_000);
    const { createHash } = await import('node:crypto');
    assert.equal(doc['sha256'], createHash('sha256').update(patternBody(3_000_000)).digest('hex'));
    assert.equal(doc['output'], join(d, 'b'));
  });
});
