import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile, truncate, chmod, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import CachePolicy from 'http-cache-semantics';
import {
  DiskCacheStore,
  decodeEntry,
  defaultCacheDir,
  encodeEntry,
  type DiskCacheEvent,
} from './disk-store.js';
import type { CachedResponse } from './store.js';

function entry(key: string, body: string): CachedResponse {
  const policy = new CachePolicy(
    { url: '/x', method: 'GET', headers: { host: 'example.test' } },
    { status: 200, headers: { 'cache-control': 'max-age=60', etag: '"a"' } },
    { shared: false },
  );
  return { key, url: key, policy: policy.toObject(), body: Buffer.from(body) };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulwark-disk-cache-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function snapFiles(root: string): Promise<string[]> {
  return (await readdir(join(root, 'v1'))).filter((f) => f.endsWith('.snap')).sort();
}

describe('DiskCacheStore', () => {
  it('round-trips an entry; directory 0700, files 0600', async () => {
    const cacheDir = join(dir, 'cache');
    const store = new DiskCacheStore({ dir: cacheDir });
    const e = entry('http://a.test/x', 'hello');
    await store.set(e);
    const got = await store.get('http://a.test/x');
    assert.deepEqual(got, e);
    assert.equal((await stat(cacheDir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(cacheDir, 'v1'))).mode & 0o777, 0o700);
    for (const f of await snapFiles(cacheDir))
      assert.equal((await stat(join(cacheDir, 'v1', f))).mode & 0o777, 0o600);
    assert.equal(await store.get('http://a.test/other'), undefined);
  });

  it('tightens an existing world-readable cache directory to 0700', async () => {
    const cacheDir = join(dir, 'loose');
    await mkdir(cacheDir, { mode: 0o755 });
    await chmod(cacheDir, 0o755);
    await new DiskCacheStore({ dir: cacheDir }).set(entry('k', 'v'));
    assert.equal((await stat(cacheDir)).mode & 0o777, 0o700);
  });

  it('a corrupted newest generation is quarantined and the previous intact one is served', async () => {
    const store = new DiskCacheStore({ dir });
    const problems: DiskCacheEvent[] = [];
    store.onProblem((p) => problems.push(p));
    await store.set(entry('k', 'old body'));
    await store.set(entry('k', 'new body'));
    const files = await snapFiles(dir);
    assert.equal(files.length, 2);
    const newest = join(dir, 'v1', files.at(-1)!);
    const bytes = await readFile(newest);
    bytes[bytes.length - 2]! ^= 0xff; // flip a body byte
    await writeFile(newest, bytes);
    const got = await store.get('k');
    assert.equal(got?.body.toString(), 'old body');
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.kind, 'corrupt');
    assert.match(problems[0]!.detail, /checksum-mismatch/);
    assert.ok((await readdir(join(dir, 'v1', 'quarantine'))).length >= 1);
  });

  it('every copy damaged (truncated, garbage) → a miss, never a throw', async () => {
    const store = new DiskCacheStore({ dir });
    await store.set(entry('k', 'x'.repeat(500)));
    const [file] = await snapFiles(dir);
    await truncate(join(dir, 'v1', file!), 100);
    assert.equal(await store.get('k'), undefined);
    await writeFile(join(dir, 'v1', `${DiskCacheStore.fileName('k2')}.0000000000000001.snap`), 'garbage');
    assert.equal(await store.get('k2'), undefined);
    // and the cache heals: the next write is read back
    await store.set(entry('k', 'healed'));
    assert.equal((await store.get('k'))?.body.toString(), 'healed');
  });

  it('an unreadable directory is a miss with a reported problem', async () => {
    const store = new DiskCacheStore({ dir });
    await store.set(entry('k', 'v'));
    const problems: DiskCacheEvent[] = [];
    store.onProblem((p) => problems.push(p));
    await chmod(join(dir, 'v1'), 0o000);
    try {
      const got = await store.get('k');
      if (process.getuid?.() === 0)
        assert.ok(got !== undefined); // root reads anyway
      else {
        assert.equal(got, undefined);
        assert.equal(problems[0]?.kind, 'error');
      }
    } finally {
      await chmod(join(dir, 'v1'), 0o700);
    }
  });

  it('decodeEntry rejects payloads that do not add up', () => {
    const good = encodeEntry(entry('k', 'body'));
    assert.ok(decodeEntry(good));
    assert.equal(decodeEntry(good.subarray(0, good.length - 1)), undefined, 'body shorter than declared');
    assert.equal(decodeEntry(Buffer.from([0, 0, 0, 99, 1])), undefined);
    assert.equal(decodeEntry(Buffer.alloc(2)), undefined);
  });

  it('evicts the least recently written entries past maxBytes', async () => {
    const store = new DiskCacheStore({ dir, maxBytes: 3000 });
    for (const k of ['a', 'b', 'c', 'd']) {
      await store.set(entry(k, k.repeat(900)));
      await new Promise((r) => setTimeout(r, 15)); // distinct mtimes
    }
    assert.equal(await store.get('a'), undefined);
    assert.equal((await store.get('d'))?.body.length, 900);
  });

  it('defaults to $XDG_CACHE_HOME/bulwark-http-get, else ~/.cache/bulwark-http-get', () => {
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x/cache' }), '/x/cache/bulwark-http-get');
    assert.match(defaultCacheDir({}), /\/\.cache\/bulwark-http-get$/);
    assert.match(defaultCacheDir({ XDG_CACHE_HOME: 'relative' }), /\/\.cache\/bulwark-http-get$/);
  });
});
