import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  truncate,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import CachePolicy from 'http-cache-semantics';
import { DiskCacheStore, defaultCacheDir, type DiskCacheEvent } from './disk-store.js';
import { readAll, type CachedResponse } from './store.js';

function policy(extra: Record<string, string> = {}): CachePolicy.CachePolicyObject {
  return new CachePolicy(
    { url: '/x', method: 'GET', headers: { host: 'example.test' } },
    { status: 200, headers: { 'cache-control': 'max-age=60', etag: '"a"', ...extra } },
    { shared: false },
  ).toObject();
}

function entry(key: string, body: string | Buffer): CachedResponse {
  return { key, url: key, policy: policy(), body: Buffer.isBuffer(body) ? body : Buffer.from(body) };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulwark-disk-cache-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The files of `key`'s directory matching `pattern`, sorted (paths). */
async function files(store: DiskCacheStore, key: string, pattern: RegExp): Promise<string[]> {
  const d = store.entryDir(key);
  return (await readdir(d))
    .filter((f) => pattern.test(f))
    .sort()
    .map((f) => join(d, f));
}
const SNAP = /\.snap$/;
const BODY = /^body-[0-9a-f]{64}$/;
const TEMP = /\.tmp$/;

async function readUsage(root: string): Promise<{ bytes: number; scannedAt: number }> {
  return JSON.parse(await readFile(join(root, 'v3', 'usage.json'), 'utf8')) as {
    bytes: number;
    scannedAt: number;
  };
}

/** Sets the modification time of every entry file of `key` to `secondsAgo` in the past. */
async function age(store: DiskCacheStore, key: string, secondsAgo: number): Promise<void> {
  const when = Date.now() / 1000 - secondsAgo;
  for (const f of await readdir(store.entryDir(key)))
    if (SNAP.test(f) || BODY.test(f)) await utimes(join(store.entryDir(key), f), when, when);
}

/** The pid of a process that has exited (its temp files are fair game). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
}

describe('DiskCacheStore (format 3: metadata snapshots, bodies streamed into their own files)', () => {
  it('round-trips an entry; directories 0700, files 0600; one snapshot and one body named by its hash', async () => {
    const cacheDir = join(dir, 'cache');
    const store = new DiskCacheStore({ dir: cacheDir });
    const e = entry('http://a.test/x', 'hello');
    await store.set(e);
    assert.deepEqual(await store.get('http://a.test/x'), e);
    assert.equal((await stat(cacheDir)).mode & 0o777, 0o700);
    const keyDir = store.entryDir('http://a.test/x');
    const hash = DiskCacheStore.fileName('http://a.test/x');
    assert.equal(keyDir, join(cacheDir, 'v3', hash.slice(0, 2), hash));
    for (const d of [join(cacheDir, 'v3'), join(cacheDir, 'v3', hash.slice(0, 2)), keyDir])
      assert.equal((await stat(d)).mode & 0o777, 0o700, d);
    const snaps = await files(store, 'http://a.test/x', SNAP);
    const bodies = await files(store, 'http://a.test/x', BODY);
    assert.equal(snaps.length, 1);
    assert.match(snaps[0]!, /\/entry\.\d{16}\.snap$/);
    assert.equal(bodies.length, 1);
    assert.equal(await readFile(bodies[0]!, 'utf8'), 'hello');
    for (const f of [...snaps, ...bodies]) assert.equal((await stat(f)).mode & 0o777, 0o600);
    assert.equal(await store.get('http://a.test/other'), undefined);
  });

  it('a body written in chunks is read back in chunks, checked; nothing is visible before commit', async () => {
    const store = new DiskCacheStore({ dir });
    const body = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const w = store.writer('k', 'http://a.test/k');
    for (let i = 0; i < body.length; i += 100_000) await w.write(body.subarray(i, i + 100_000));
    await w.close();
    assert.equal(await store.open('k'), undefined, 'not visible before commit');
    assert.equal((await files(store, 'k', TEMP)).length, 1, 'a temp file while it is written');
    await w.commit(policy());
    assert.deepEqual(await files(store, 'k', TEMP), []);
    const handle = (await store.open('k'))!;
    assert.equal(handle.size, body.length);
    let chunks = 0;
    const read: Buffer[] = [];
    for await (const c of handle.read()) {
      chunks++;
      read.push(c);
    }
    assert.ok(chunks > 1, 'read in chunks');
    assert.ok(Buffer.concat(read).equals(body));
    assert.ok((await readAll(handle)).equals(body), 'and again');
  });

  it('a body larger than maxBytes is dropped as soon as it is known: no file left, nothing stored', async () => {
    const store = new DiskCacheStore({ dir, maxBytes: 1000 });
    const w = store.writer('big', 'http://a.test/big');
    await w.write(Buffer.alloc(600));
    assert.equal((await files(store, 'big', TEMP)).length, 1);
    await w.write(Buffer.alloc(600));
    assert.deepEqual(await readdir(store.entryDir('big')), []);
    await w.close();
    await w.commit(policy());
    assert.equal(await store.open('big'), undefined);
  });

  it('abort removes the temp file and stores nothing; the previous entry stays', async () => {
    const store = new DiskCacheStore({ dir });
    await store.set(entry('k', 'old'));
    const w = store.writer('k', 'k');
    await w.write(Buffer.from('half of a new bo'));
    await w.abort();
    assert.deepEqual(await files(store, 'k', TEMP), []);
    assert.equal((await store.get('k'))?.body.toString(), 'old');
  });

  it("temp files of a process that is gone are removed by the next write; the store's own are not", async () => {
    const store = new DiskCacheStore({ dir });
    await store.set(entry('k', 'v1'));
    const leftover = join(store.entryDir('k'), `.body.${deadPid()}-abcdef012345.tmp`);
    const live = join(store.entryDir('k'), `.body.${process.pid}-abcdef012345.tmp`);
    await writeFile(leftover, 'partial body of a killed writer');
    await writeFile(live, 'a body this process is writing');
    await store.set(entry('k', 'v2'));
    assert.deepEqual(await files(store, 'k', TEMP), [live]);
  });

  it('refresh stores a new policy and keeps the body (one body file, two generations)', async () => {
    const store = new DiskCacheStore({ dir });
    await store.set(entry('k', 'the body'));
    const handle = (await store.open('k'))!;
    await store.refresh(handle, policy({ 'cache-control': 'max-age=120' }));
    const again = (await store.open('k'))!;
    assert.equal(again.policy.resh['cache-control'], 'max-age=120');
    assert.equal((await readAll(again)).toString(), 'the body');
    assert.equal((await files(store, 'k', SNAP)).length, 2);
    assert.equal((await files(store, 'k', BODY)).length, 1);
  });

  it('bodies no kept generation names are removed once they are old enough (a minute)', async () => {
    const store = new DiskCacheStore({ dir });
    await store.set(entry('k', 'one'));
    await store.set(entry('k', 'two'));
    await store.set(entry('k', 'three'));
    // 'one' is no longer named (2 generations kept), but it is fresh: another writer may be about to name it
    assert.equal((await files(store, 'k', BODY)).length, 3);
    await age(store, 'k', 120);
    await store.set(entry('k', 'four'));
    const bodies = await Promise.all((await files(store, 'k', BODY)).map((f) => readFile(f, 'utf8')));
    assert.deepEqual(bodies.sort(), ['four', 'three']);
  });

  it('a corrupted newest metadata snapshot is quarantined and the previous generation is served', async () => {
    const store = new DiskCacheStore({ dir });
    const problems: DiskCacheEvent[] = [];
    store.onProblem((p) => problems.push(p));
    await store.set(entry('k', 'old body'));
    await store.set(entry('k', 'new body'));
    const snaps = await files(store, 'k', SNAP);
    const newest = snaps.at(-1)!;
    const bytes = await readFile(newest);
    bytes[bytes.length - 2]! ^= 0xff;
    await writeFile(newest, bytes);
    assert.equal((await store.get('k'))?.body.toString(), 'old body');
    assert.deepEqual(
      problems.map((p) => [p.kind, p.file]),
      [['corrupt', newest]],
    );
    assert.match(problems[0]!.detail, /checksum-mismatch/);
    assert.ok((await readdir(join(store.entryDir('k'), 'quarantine'))).length >= 1);
  });

  it('a body with a flipped byte fails its read (quarantined); the next open serves the older generation', async () => {
    const store = new DiskCacheStore({ dir });
    await store.set(entry('k', 'old body'));
    await store.set(entry('k', 'new body'));
    const handle = (await store.open('k'))!;
    const bodies = await files(store, 'k', BODY);
    const texts = await Promise.all(bodies.map((f) => readFile(f, 'utf8')));
    const target = bodies[texts.indexOf('new body')]!;
    const bytes = await readFile(target);
    bytes[0]! ^= 0x01;
    await writeFile(target, bytes);
    const problems: DiskCacheEvent[] = [];
    store.onProblem((p) => problems.push(p));
    await assert.rejects(readAll(handle), /damaged/);
    assert.deepEqual(
      problems.map((p) => [p.kind, p.file]),
      [
        ['corrupt', target],
        ['corrupt', undefined],
      ],
      'the file (quarantined), then the entry',
    );
    assert.match(problems[0]!.detail, /checksum-mismatch/);
    assert.equal((await store.get('k'))?.body.toString(), 'old body');
  });

  it('a body of the wrong size is noticed at open (no read needed): the older generation is served', async () => {
    const store = new DiskCacheStore({ dir });
    await store.set(entry('k', 'old body'));
    await store.set(entry('k', 'a new, longer body'));
    const bodies = await files(store, 'k', BODY);
    for (const f of bodies) if ((await readFile(f, 'utf8')).startsWith('a new')) await truncate(f, 5);
    const problems: DiskCacheEvent[] = [];
    store.onProblem((p) => problems.push(p));
    assert.equal((await store.get('k'))?.body.toString(), 'old body');
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.detail, /length-mismatch/);
    assert.ok(problems[0]!.file);
  });

  it('every copy damaged (truncated, garbage, missing body) → a miss, never a throw; the next write heals it', async () => {
    const store = new DiskCacheStore({ dir });
    await store.set(entry('k', 'x'.repeat(500)));
    const [snap] = await files(store, 'k', SNAP);
    await truncate(snap!, 100);
    const problems: DiskCacheEvent[] = [];
    store.onProblem((p) => problems.push(p));
    assert.equal(await store.get('k'), undefined);
    assert.deepEqual(
      problems.map((p) => p.file === undefined),
      [false, true],
      'the damaged file, then the entry (no intact generation)',
    );
    await mkdir(store.entryDir('k2'), { recursive: true });
    await writeFile(join(store.entryDir('k2'), 'entry.0000000000000001.snap'), 'garbage');
    assert.equal(await store.get('k2'), undefined);
    await store.set(entry('k3', 'v'));
    for (const f of await files(store, 'k3', BODY)) await rm(f);
    assert.equal(await store.get('k3'), undefined);
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

  it('evicts whole entries, least recently written first, past maxBytes', async () => {
    const store = new DiskCacheStore({ dir, maxBytes: 5000 });
    const keys = ['a', 'b', 'c', 'd'];
    for (const [i, k] of keys.entries()) {
      await store.set(entry(k, k.repeat(900)));
      await age(store, k, 100 - i * 10); // a oldest, d newest
    }
    await store.set(entry('e', 'e'.repeat(900)));
    assert.equal(await store.get('a'), undefined);
    const shard = await readdir(join(store.entryDir('a'), '..'));
    assert.ok(!shard.includes(DiskCacheStore.fileName('a')), "the evicted entry's directory went too");
    assert.equal((await store.get('e'))?.body.length, 900);
    assert.ok((await readUsage(dir)).bytes <= 4500, 'evicted down to 90 % of the bound');
  });

  it('a save costs its own directory, not the whole cache: the usage hint grows, no scan until the bound', async () => {
    const store = new DiskCacheStore({ dir, maxBytes: 1_000_000 });
    await store.set(entry('first', 'x'));
    const first = await readUsage(dir);
    const sizeOf = async (k: string): Promise<number> => {
      let n = 0;
      for (const f of [...(await files(store, k, SNAP)), ...(await files(store, k, BODY))])
        n += (await stat(f)).size;
      return n;
    };
    assert.equal(first.bytes, await sizeOf('first'), 'no hint yet: a full scan counted the entry');
    for (let i = 0; i < 20; i++) await store.set(entry(`k${i}`, 'y'.repeat(100)));
    const after = await readUsage(dir);
    assert.equal(after.scannedAt, first.scannedAt, 'no full scan while under the bound');
    let onDisk = await sizeOf('first');
    for (let i = 0; i < 20; i++) onDisk += await sizeOf(`k${i}`);
    assert.equal(after.bytes, onDisk);
    const shards = (await readdir(join(dir, 'v3'))).filter((n) => n !== 'usage.json');
    assert.ok(shards.every((n) => /^[0-9a-f]{2}$/.test(n)));
    for (const shard of shards)
      for (const key of await readdir(join(dir, 'v3', shard))) assert.match(key, /^[0-9a-f]{64}$/);
  });

  it('a missing or damaged usage hint triggers a full scan that sets it right', async () => {
    const store = new DiskCacheStore({ dir, maxBytes: 1_000_000 });
    for (const k of ['a', 'b', 'c']) await store.set(entry(k, k.repeat(300)));
    await writeFile(join(dir, 'v3', 'usage.json'), '{"bytes": "lots"');
    await store.set(entry('d', 'd'));
    let onDisk = 0;
    for (const k of ['a', 'b', 'c', 'd'])
      for (const f of [...(await files(store, k, SNAP)), ...(await files(store, k, BODY))])
        onDisk += (await stat(f)).size;
    assert.equal((await readUsage(dir)).bytes, onDisk);
    await rm(join(dir, 'v3', 'usage.json'));
    await store.set(entry('b', 'b'));
    assert.ok((await readUsage(dir)).bytes > 0);
  });

  it('entries written through another instance (another process) are counted and evicted', async () => {
    const one = new DiskCacheStore({ dir, maxBytes: 5000 });
    const two = new DiskCacheStore({ dir, maxBytes: 5000 });
    await one.set(entry('a', 'a'.repeat(1200)));
    await age(one, 'a', 60);
    await two.set(entry('b', 'b'.repeat(1200)));
    await age(two, 'b', 30);
    await one.set(entry('c', 'c'.repeat(1200)));
    await two.set(entry('d', 'd'.repeat(1200)));
    assert.equal(await two.get('a'), undefined, 'the oldest, written by the other store, was evicted');
    assert.equal((await one.get('d'))?.body.length, 1200);
  });

  it('removes the directories of older formats (v1, v2) on the first write', async () => {
    await mkdir(join(dir, 'v1', 'quarantine'), { recursive: true });
    await writeFile(join(dir, 'v1', `${'0'.repeat(64)}.0000000000000001.snap`), 'old');
    await mkdir(join(dir, 'v2', 'ab', 'ab'.repeat(32)), { recursive: true });
    const store = new DiskCacheStore({ dir });
    assert.equal(await store.get('k'), undefined);
    await store.set(entry('k', 'v'));
    assert.deepEqual((await readdir(dir)).sort(), ['v3']);
  });

  it('defaults to $XDG_CACHE_HOME/bulwark-http, else ~/.cache/bulwark-http; an app passes its own name', () => {
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x/cache' }), '/x/cache/bulwark-http');
    assert.match(defaultCacheDir({}), /\/\.cache\/bulwark-http$/);
    assert.match(defaultCacheDir({ XDG_CACHE_HOME: 'relative' }), /\/\.cache\/bulwark-http$/);
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x/cache' }, 'my-app'), '/x/cache/my-app');
  });
});
