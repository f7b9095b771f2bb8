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

/** The generation files of `key`, oldest first (paths). */
async function snapFiles(store: DiskCacheStore, key: string): Promise<string[]> {
  const dir = store.entryDir(key);
  return (await readdir(dir))
    .filter((f) => f.endsWith('.snap'))
    .sort()
    .map((f) => join(dir, f));
}

async function readUsage(root: string): Promise<{ bytes: number; scannedAt: number }> {
  return JSON.parse(await readFile(join(root, 'v2', 'usage.json'), 'utf8')) as {
    bytes: number;
    scannedAt: number;
  };
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
    const keyDir = store.entryDir('http://a.test/x');
    const hash = DiskCacheStore.fileName('http://a.test/x');
    assert.equal(keyDir, join(cacheDir, 'v2', hash.slice(0, 2), hash));
    for (const d of [join(cacheDir, 'v2'), join(cacheDir, 'v2', hash.slice(0, 2)), keyDir])
      assert.equal((await stat(d)).mode & 0o777, 0o700, d);
    const files = await snapFiles(store, 'http://a.test/x');
    assert.equal(files.length, 1);
    assert.match(files[0]!, /\/entry\.\d{16}\.snap$/);
    for (const f of files) assert.equal((await stat(f)).mode & 0o777, 0o600);
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
    const files = await snapFiles(store, 'k');
    assert.equal(files.length, 2);
    const newest = files.at(-1)!;
    const bytes = await readFile(newest);
    bytes[bytes.length - 2]! ^= 0xff; // flip a body byte
    await writeFile(newest, bytes);
    const got = await store.get('k');
    assert.equal(got?.body.toString(), 'old body');
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.kind, 'corrupt');
    assert.match(problems[0]!.detail, /checksum-mismatch/);
    assert.equal(problems[0]!.file, newest, 'the damaged file, reported on its own');
    assert.ok((await readdir(join(store.entryDir('k'), 'quarantine'))).length >= 1);
  });

  it('every generation damaged: one event per file (with `file`), then one for the entry (without)', async () => {
    const store = new DiskCacheStore({ dir });
    await store.set(entry('k', 'old body'));
    await store.set(entry('k', 'new body'));
    const files = await snapFiles(store, 'k');
    for (const f of files) {
      const bytes = await readFile(f);
      bytes[bytes.length - 2]! ^= 0xff;
      await writeFile(f, bytes);
    }
    const problems: DiskCacheEvent[] = [];
    store.onProblem((p) => problems.push(p));
    assert.equal(await store.get('k'), undefined);
    assert.deepEqual(
      problems.map((p) => [p.op, p.kind, p.file]),
      [...files.reverse().map((f) => ['read', 'corrupt', f]), ['read', 'corrupt', undefined]],
    );
    assert.match(problems.at(-1)!.detail, /No intact snapshot/);
    // the files are in quarantine/ now: the next read is a plain miss, with nothing to report
    assert.equal(await store.get('k'), undefined);
    assert.equal(problems.length, 3);
  });

  it('every copy damaged (truncated, garbage) → a miss, never a throw', async () => {
    const store = new DiskCacheStore({ dir });
    await store.set(entry('k', 'x'.repeat(500)));
    const [file] = await snapFiles(store, 'k');
    await truncate(file!, 100);
    assert.equal(await store.get('k'), undefined);
    await mkdir(store.entryDir('k2'), { recursive: true });
    await writeFile(join(store.entryDir('k2'), 'entry.0000000000000001.snap'), 'garbage');
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
    await chmod(store.entryDir('k'), 0o000);
    try {
      const got = await store.get('k');
      if (process.getuid?.() === 0)
        assert.ok(got !== undefined); // root reads anyway
      else {
        assert.equal(got, undefined);
        assert.equal(problems[0]?.kind, 'error');
      }
    } finally {
      await chmod(store.entryDir('k'), 0o700);
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

  it('a save costs its own directory, not the whole cache: the usage hint grows, no scan until the bound', async () => {
    const store = new DiskCacheStore({ dir, maxBytes: 1_000_000 });
    await store.set(entry('first', 'x'));
    const first = await readUsage(dir);
    const firstFile = (await stat((await snapFiles(store, 'first'))[0]!)).size;
    assert.equal(first.bytes, firstFile, 'no hint yet: a full scan counted the one file');
    for (let i = 0; i < 20; i++) await store.set(entry(`k${i}`, 'y'.repeat(100)));
    const after = await readUsage(dir);
    assert.equal(after.scannedAt, first.scannedAt, 'no full scan while under the bound');
    let onDisk = 0;
    for (const k of ['first', ...Array.from({ length: 20 }, (_, i) => `k${i}`)])
      for (const f of await snapFiles(store, k)) onDisk += (await stat(f)).size;
    assert.equal(after.bytes, onDisk);
    // each key sits in its own directory under one of 256 shards
    const shards = (await readdir(join(dir, 'v2'))).filter((n) => n !== 'usage.json');
    assert.ok(shards.every((n) => /^[0-9a-f]{2}$/.test(n)));
    for (const shard of shards)
      for (const key of await readdir(join(dir, 'v2', shard))) assert.match(key, /^[0-9a-f]{64}$/);
  });

  it('a missing or damaged usage hint triggers a full scan that sets it right', async () => {
    const store = new DiskCacheStore({ dir, maxBytes: 1_000_000 });
    for (const k of ['a', 'b', 'c']) await store.set(entry(k, k.repeat(300)));
    const exact = (await readUsage(dir)).bytes;
    await writeFile(join(dir, 'v2', 'usage.json'), '{"bytes": "lots"');
    await store.set(entry('a', 'a'.repeat(300))); // a new generation of a: the older one is still kept
    const healed = await readUsage(dir);
    const aFiles = await snapFiles(store, 'a');
    assert.equal(aFiles.length, 2);
    assert.equal(healed.bytes, exact + (await stat(aFiles[1]!)).size);
    await rm(join(dir, 'v2', 'usage.json'));
    await store.set(entry('b', 'b'));
    assert.ok((await readUsage(dir)).bytes > 0);
  });

  it('entries written through another instance (another process) are counted and evicted', async () => {
    const one = new DiskCacheStore({ dir, maxBytes: 3000 });
    const two = new DiskCacheStore({ dir, maxBytes: 3000 });
    await one.set(entry('a', 'a'.repeat(900)));
    await new Promise((r) => setTimeout(r, 15));
    await two.set(entry('b', 'b'.repeat(900)));
    await new Promise((r) => setTimeout(r, 15));
    await one.set(entry('c', 'c'.repeat(900)));
    assert.equal(await two.get('a'), undefined, 'the oldest, written by the other store, was evicted');
    assert.equal((await one.get('c'))?.body.length, 900);
    assert.ok((await readUsage(dir)).bytes <= 2700, 'evicted down to 90 % of the bound');
  });

  it('removes the directory of the old format (v1: every key in one directory) on the first write', async () => {
    await mkdir(join(dir, 'v1', 'quarantine'), { recursive: true });
    await writeFile(join(dir, 'v1', `${'0'.repeat(64)}.0000000000000001.snap`), 'old');
    const store = new DiskCacheStore({ dir });
    assert.equal(await store.get('k'), undefined);
    await store.set(entry('k', 'v'));
    assert.deepEqual((await readdir(dir)).sort(), ['v2']);
  });

  it('defaults to $XDG_CACHE_HOME/bulwark-http-get, else ~/.cache/bulwark-http-get', () => {
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x/cache' }), '/x/cache/bulwark-http-get');
    assert.match(defaultCacheDir({}), /\/\.cache\/bulwark-http-get$/);
    assert.match(defaultCacheDir({ XDG_CACHE_HOME: 'relative' }), /\/\.cache\/bulwark-http-get$/);
  });
});
