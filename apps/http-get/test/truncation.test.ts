// Never a cut body: every truncation shape, the BUILT binary against @bulwark/fault-server over loopback —
// served to stdout, with a mirror, over a cached copy, and with -o. A cut body is never printed, never
// cached, never written to -o, and the ladder falls to the next tier.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { patternBody, startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { DiskCacheStore } from '@bulwark/http';
import { EXIT } from '../src/config.js';
import { STACK_FRAME, parseJson, runCli } from './harness.js';

interface Shape {
  readonly name: string;
  /** The fault for the primary's path (the body is 200 000 bytes; 1000 of them arrive). */
  readonly path: string;
  readonly kind: RegExp;
  /** The total deadline (--timeout-ms). */
  readonly timeoutMs: number;
}

const SHAPES: readonly Shape[] = [
  {
    name: 'no length + reset',
    path: '/reset?afterBytes=1000&size=200000&framing=close',
    kind: /Connection reset/,
    timeoutMs: 60_000,
  },
  {
    name: 'short Content-Length',
    path: '/truncate?bytes=1000&size=200000',
    // a FIN after the bytes (the server may also end it with an RST: either way it is cut)
    kind: /closed before the response was complete|Connection reset/,
    timeoutMs: 60_000,
  },
  {
    name: 'broken chunking',
    path: '/truncate?bytes=1000&size=200000&framing=chunked',
    kind: /closed before the response was complete|Connection reset/,
    timeoutMs: 60_000,
  },
  {
    // the silence lasts until the server closes: the deadline (here 3 s of the total) cuts it, as the idle
    // timeout between chunks (10 s) would a moment later
    name: 'stall past the body timeout',
    path: '/stall?afterBytes=1000&size=200000',
    kind: /stalled|timed out/,
    timeoutMs: 3000,
  },
];

let primary: FaultServer;
let mirror: FaultServer;
let work: string;
let n = 0;
const fresh = (what: string): string => join(work, `${what}-${++n}`);

before(async () => {
  primary = await startFaultServer();
  mirror = await startFaultServer({ response: { body: 'mirror body\n', cacheControl: 'max-age=60' } });
  work = await mkdtemp(join(tmpdir(), 'http-get-cut-'));
});
after(async () => {
  await Promise.all([primary.close(), mirror.close()]);
  await rm(work, { recursive: true, force: true });
});

const args = (shape: Shape): string[] => ['--retries', '0', '--timeout-ms', String(shape.timeoutMs)];

describe('the truncation matrix: shape × served / mirror / cached / -o', { concurrency: 2 }, () => {
  for (const shape of SHAPES) {
    it(`${shape.name}, served: nothing on stdout, exit 7, one line saying why`, async () => {
      const run = await runCli([`${primary.origin}${shape.path}`, '--no-cache', ...args(shape)]);
      assert.equal(run.code, EXIT.NETWORK, run.stderr);
      assert.equal(run.stdout.length, 0, 'not one byte of the cut body reached stdout');
      assert.match(run.stderr, shape.kind);
      assert.doesNotMatch(run.stderr, STACK_FRAME);
    });

    it(`${shape.name}, with a mirror: the mirror's body, whole`, async () => {
      const run = await runCli([
        `${primary.origin}${shape.path}`,
        '--fallback',
        `${mirror.origin}/doc`,
        '--no-cache',
        ...args(shape),
      ]);
      assert.equal(run.code, EXIT.OK, run.stderr);
      assert.equal(run.stdout.toString(), 'mirror body\n');
      assert.match(run.stderr, /served from fallback-1/);
    });

    it(`${shape.name}, cached: never stored; a stale intact copy is served instead`, async () => {
      const cacheDir = fresh('cache');
      // a path of its own: tests run side by side on one server
      const path = `/doc-${n}`;
      const url = `${primary.origin}${path}`;
      // an intact copy, stale at once
      primary.setResponse({ size: 200_000, cacheControl: 'max-age=0' }, path);
      const first = await runCli([url, '--cache-dir', cacheDir]);
      assert.equal(first.code, EXIT.OK, first.stderr);
      const stored = await new DiskCacheStore({ dir: cacheDir }).get(url);
      assert.ok(stored?.body.equals(patternBody(200_000)));
      // now every refetch is cut
      const q = new URL(shape.path, 'http://x').searchParams;
      if (q.get('framing') !== null)
        primary.setResponse(
          { size: 200_000, cacheControl: 'max-age=0', framing: q.get('framing') as 'close' },
          path,
        );
      primary.setFault(
        shape.path.startsWith('/reset')
          ? { type: 'reset', afterBytes: 1000 }
          : shape.path.startsWith('/truncate')
            ? { type: 'truncate', bytes: 1000 }
            : { type: 'stall', afterBytes: 1000 },
        { path },
      );
      const run = await runCli([url, '--cache-dir', cacheDir, '--json', ...args(shape)]);
      assert.equal(run.code, EXIT.OK, run.stderr);
      const doc = parseJson(run);
      assert.equal(doc['tier'], 'stale-cache');
      assert.equal(doc['bytes'], 200_000);
      const again = await new DiskCacheStore({ dir: cacheDir }).get(url);
      assert.ok(again?.body.equals(patternBody(200_000)), 'the cache still holds the intact copy');
      const entry = new DiskCacheStore({ dir: cacheDir }).entryDir(url);
      assert.deepEqual(
        (await readdir(entry)).filter((f) => f.endsWith('.tmp')),
        [],
        'no temp file of the cut body left',
      );
    });

    it(`${shape.name}, -o: the file is not written; an existing one is untouched; no temp left`, async () => {
      const dir = fresh('out');
      await rm(dir, { recursive: true, force: true });
      await import('node:fs/promises').then((fs) => fs.mkdir(dir));
      const file = join(dir, 'body.bin');
      await writeFile(file, 'the previous version\n');
      const run = await runCli([`${primary.origin}${shape.path}`, '--no-cache', '-o', file, ...args(shape)]);
      assert.equal(run.code, EXIT.NETWORK, run.stderr);
      assert.equal(await readFile(file, 'utf8'), 'the previous version\n');
      assert.deepEqual(await readdir(dir), ['body.bin']);
    });
  }
});

describe('what undici cannot tell, gzip can', () => {
  it('a gzip body cut by a clean close (no length) is not served: its end marker is missing', async () => {
    primary.setResponse({ size: 500_000, gzip: true, framing: 'close' }, '/gz');
    primary.setFault({ type: 'truncate', bytes: 2000 }, { path: '/gz' });
    const run = await runCli([`${primary.origin}/gz`, '--no-cache', '--retries', '0']);
    assert.equal(run.code, EXIT.NETWORK, run.stderr);
    assert.equal(run.stdout.length, 0);
    assert.match(run.stderr, /ended before its end marker/);
  });

  it('a complete close-delimited body is served (the control)', async () => {
    const run = await runCli([`${primary.origin}/ok?size=300000&framing=close`, '--no-cache']);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.ok(run.stdout.equals(patternBody(300_000)));
  });
});
