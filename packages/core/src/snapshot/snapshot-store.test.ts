// The snapshot store against real files in a temp dir, with faults injected through its fs interface.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import {
  InvalidOptionError,
  SnapshotCorruptError,
  SnapshotNotFoundError,
  SnapshotWriteError,
} from '../errors.js';
import { encodeSnapshot, type CorruptSnapshot } from './format.js';
import { nodeSnapshotFs, type SnapshotFileHandle, type SnapshotFs } from './fs.js';
import { createSnapshotStore, snapshotFileName, type SnapshotCorruptionEvent } from './snapshot-store.js';
import { seeded } from './fixtures/harness.js';

let root: string;
let n = 0;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'bulwark-snap-'));
});
after(() => rmSync(root, { recursive: true, force: true }));
const freshDir = (): string => join(root, `d${++n}`);

interface Call {
  readonly op: string;
  readonly path: string;
  readonly flags?: string | number;
  readonly mode?: number;
}

type Inject = (op: string, path: string) => Error | undefined;

function fault(code: string): Error {
  return Object.assign(new Error(`${code}: injected`), { code });
}

/** node:fs/promises, recording every call and failing the ones `inject` says. */
function recordingFs(inject: Inject = () => undefined): { fs: SnapshotFs; calls: Call[] } {
  const calls: Call[] = [];
  const base = nodeSnapshotFs;
  const step = async <R>(
    op: string,
    path: string,
    run: () => Promise<R>,
    extra: Partial<Call> = {},
  ): Promise<R> => {
    calls.push({ op, path, ...extra });
    const error = inject(op, path);
    if (error) throw error;
    return run();
  };
  const fs: SnapshotFs = {
    async open(path, flags, mode) {
      const handle = await step('open', path, () => base.open(path, flags, mode), { flags, mode });
      const wrapped: SnapshotFileHandle = {
        write: (buffer, offset, length, position) =>
          step('write', path, () => handle.write(buffer, offset, length, position)),
        sync: () => step('sync', path, () => handle.sync()),
        // close(2) releases the descriptor even when it reports an error: close first, then fail
        close: () => step('close', path, () => Promise.resolve(), {}).finally(() => handle.close()),
      };
      return wrapped;
    },
    readFile: (path) => step('readFile', path, () => base.readFile(path)),
    readdir: (path) => step('readdir', path, () => base.readdir(path)),
    link: (a, b) => step('link', b, () => base.link(a, b), { flags: a }),
    rename: (a, b) => step('rename', b, () => base.rename(a, b), { flags: a }),
    unlink: (path) => step('unlink', path, () => base.unlink(path)),
    mkdir: (path, o) => step('mkdir', path, () => base.mkdir(path, o)),
    stat: (path) => step('stat', path, () => base.stat(path)),
  };
  return { fs, calls };
}

const tmpFiles = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.tmp'));

describe('snapshot store: save and load', () => {
  it('round-trips bytes, strings and JSON; generations count up; files are named by generation', async () => {
    const dir = freshDir();
    const store = createSnapshotStore({ dir, name: 'state', now: () => 1_700_000_000_000 });
    await assert.rejects(store.load(), SnapshotNotFoundError);
    const a = await store.save(Buffer.from([1, 2, 3]));
    assert.deepEqual(a, {
      generation: 1,
      path: join(dir, 'state.0000000000000001.snap'),
      bytes: 72 + 3,
      createdAt: 1_700_000_000_000,
    });
    assert.ok(Buffer.from([1, 2, 3]).equals((await store.load()).data as Buffer));
    await store.save('text');
    assert.equal((await store.load()).data, 'text');
    await store.save({ n: 1, list: [1, 2] });
    const loaded = await store.load();
    assert.deepEqual(loaded.data, { n: 1, list: [1, 2] });
    assert.equal(loaded.generation, 3);
    assert.equal(loaded.encoding, 'json');
    assert.equal(loaded.createdAt, 1_700_000_000_000);
    assert.equal(loaded.recoveredFrom, undefined);
  });

  it('keeps the last keepGenerations generations and can load any of them', async () => {
    const dir = freshDir();
    const store = createSnapshotStore<number>({ dir, name: 'state', keepGenerations: 2 });
    for (let i = 1; i <= 5; i++) await store.save(i);
    assert.deepEqual(readdirSync(dir).sort(), [snapshotFileName('state', 4), snapshotFileName('state', 5)]);
    assert.equal((await store.load({ generation: 4 })).data, 4);
    await assert.rejects(store.load({ generation: 2 }), {
      code: 'BULWARK_ERR_SNAPSHOT_NOT_FOUND',
      generation: 2,
    });
    const inv = await store.inspect();
    assert.deepEqual(
      inv.generations.map((g) => [g.generation, g.ok]),
      [
        [5, true],
        [4, true],
      ],
    );
  });

  it('a new store on the same directory continues the generation count', async () => {
    const dir = freshDir();
    await createSnapshotStore({ dir, name: 's' }).save('a');
    await createSnapshotStore({ dir, name: 's' }).save('b');
    const loaded = await createSnapshotStore({ dir, name: 's' }).load();
    assert.equal(loaded.generation, 2);
    assert.equal(loaded.data, 'b');
  });

  it('stores with different names share a directory without seeing each other', async () => {
    const dir = freshDir();
    const a = createSnapshotStore({ dir, name: 'a' });
    const ab = createSnapshotStore({ dir, name: 'a.b' });
    await a.save('A');
    await ab.save('AB');
    await ab.save('AB2');
    assert.equal((await a.load()).generation, 1);
    assert.equal((await ab.load()).data, 'AB2');
  });

  it('follows the protocol: temp (O_EXCL, 0600) → write all → fsync → close → link → unlink temp → fsync dir', async () => {
    const dir = freshDir();
    const { fs, calls } = recordingFs();
    const store = createSnapshotStore({ dir, name: 'state', fs, keepGenerations: 100 });
    for (let i = 0; i < 100; i++) {
      calls.length = 0;
      const saved = await store.save(Buffer.alloc(i * 100, i));
      const ops = calls.filter((c) => !['readdir', 'mkdir', 'stat'].includes(c.op));
      const tmp = ops[0]!.path;
      assert.equal(dirname(tmp), dir, 'the temp file is in the same directory');
      assert.match(basename(tmp), new RegExp(`^state\\.\\d{16}\\.${process.pid}-[0-9a-f]+\\.tmp$`));
      assert.deepEqual(ops[0], { op: 'open', path: tmp, flags: 'wx', mode: 0o600 });
      let k = 1;
      while (ops[k]?.op === 'write') assert.equal(ops[k++]!.path, tmp);
      assert.ok(k >= 2, 'at least one write');
      assert.deepEqual(
        ops.slice(k).map((c) => [c.op, c.path]),
        [
          ['sync', tmp],
          ['close', tmp],
          ['link', saved.path],
          ['unlink', tmp],
          ['open', dir],
          ['sync', dir],
          ['close', dir],
        ],
      );
      assert.ok(!calls.some((c) => c.op === 'write' && c.path.endsWith('.snap')), 'never writes a live name');
    }
  });

  it('loops on short writes until every byte is written', async () => {
    const dir = freshDir();
    const store = createSnapshotStore({
      dir,
      name: 's',
      fs: {
        ...nodeSnapshotFs,
        async open(path, flags, mode) {
          const h = await nodeSnapshotFs.open(path, flags, mode);
          return {
            write: (b, o, l, p) => h.write(b, o, Math.min(l, 1000), p),
            sync: () => h.sync(),
            close: () => h.close(),
          };
        },
      },
    });
    const data = Buffer.alloc(10_000, 9);
    await store.save(data);
    assert.ok(data.equals((await store.load()).data as Buffer));
  });

  it('saves from one store run one at a time, generations in call order', async () => {
    const dir = freshDir();
    const store = createSnapshotStore<number>({ dir, name: 's', keepGenerations: 50 });
    const saved = await Promise.all(Array.from({ length: 20 }, (_, i) => store.save(i)));
    assert.deepEqual(
      saved.map((s) => s.generation),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    for (const s of saved)
      assert.equal((await store.load({ generation: s.generation })).data, s.generation - 1);
  });

  it('two store instances racing on one directory never share a generation (EEXIST → renumber)', async () => {
    const dir = freshDir();
    const { fs, calls } = recordingFs();
    const a = createSnapshotStore<string>({ dir, name: 's', keepGenerations: 1000, fs });
    const b = createSnapshotStore<string>({ dir, name: 's', keepGenerations: 1000, fs });
    const saved = await Promise.all(
      Array.from({ length: 30 }, (_, i) => [a.save(`a${i}`), b.save(`b${i}`)]).flat(),
    );
    const gens = saved.map((s) => s.generation);
    assert.equal(new Set(gens).size, gens.length, 'generations are unique');
    const inv = await a.inspect();
    assert.equal(inv.generations.length, 60);
    assert.ok(inv.generations.every((g) => g.ok));
    assert.deepEqual(inv.tempFiles, []);
    assert.ok(
      calls.filter((c) => c.op === 'link').length > 60,
      'some publishes collided and were renumbered',
    );
  });

  it('records createdAt from the injected clock', async () => {
    let t = 1000;
    const store = createSnapshotStore({ dir: freshDir(), name: 's', now: () => t });
    await store.save('x');
    t = 2000;
    assert.equal((await store.save('y')).createdAt, 2000);
    assert.equal((await store.load({ generation: 1 })).createdAt, 1000);
  });
});

describe('snapshot store: injected fs faults', () => {
  const cases: { title: string; op: string; code: string; step: string; which?: 'tmp' | 'dir' }[] = [
    { title: 'ENOSPC creating the temp file', op: 'open', code: 'ENOSPC', step: 'open', which: 'tmp' },
    { title: 'ENOSPC on write', op: 'write', code: 'ENOSPC', step: 'write' },
    { title: 'EIO on write', op: 'write', code: 'EIO', step: 'write' },
    { title: 'EIO on fsync', op: 'sync', code: 'EIO', step: 'fsync', which: 'tmp' },
    { title: 'EIO on close', op: 'close', code: 'EIO', step: 'close', which: 'tmp' },
    { title: 'ENOSPC on publish (link)', op: 'link', code: 'ENOSPC', step: 'publish' },
    { title: 'EXDEV on publish (link)', op: 'link', code: 'EXDEV', step: 'publish' },
    { title: 'EIO on the directory fsync', op: 'sync', code: 'EIO', step: 'fsync-dir', which: 'dir' },
  ];
  for (const c of cases) {
    it(`${c.title}: save rejects, no temp file is left, the previous generation still loads`, async () => {
      const dir = freshDir();
      let armed = false;
      const { fs, calls } = recordingFs((op, path) => {
        if (!armed || op !== c.op) return undefined;
        if (c.which === 'dir' && path !== dir) return undefined;
        if (c.which === 'tmp' && !path.endsWith('.tmp')) return undefined;
        return fault(c.code);
      });
      const store = createSnapshotStore({ dir, name: 'state', fs });
      const previous = Buffer.from('previous generation');
      await store.save(previous);
      armed = true;
      calls.length = 0;
      const t0 = performance.now();
      const error = await store.save(Buffer.alloc(50_000, 1)).then(
        () => assert.fail('save must reject'),
        (e: unknown) => e,
      );
      // promptly, and without retrying the failed step (a real write + fsync runs first: the bound is loose
      // for a busy shared machine; ~5 ms idle)
      assert.ok(performance.now() - t0 < 5000, 'rejects promptly');
      assert.equal(calls.filter((x) => x.op === c.op && (c.which !== 'dir' || x.path === dir)).length, 1);
      assert.ok(error instanceof SnapshotWriteError, String(error));
      assert.equal(error.code, 'BULWARK_ERR_SNAPSHOT_WRITE');
      assert.equal(error.step, c.step);
      assert.equal((error.cause as { code?: string }).code, c.code);
      assert.match(error.message, new RegExp(`${c.step}.*${c.code}`));
      // fsync is never retried on the same file
      assert.ok(calls.filter((x) => x.op === 'sync' && x.path.endsWith('.tmp')).length <= 1);
      assert.deepEqual(tmpFiles(dir), []);
      const loaded = await store.load();
      assert.equal(loaded.generation, 1);
      assert.ok(previous.equals(loaded.data as Buffer));
      armed = false;
      const next = await store.save('after the fault');
      assert.equal((await store.load()).data, 'after the fault');
      assert.ok(next.generation >= 2);
    });
  }

  it('without hard links (EPERM) it publishes with rename; a failing rename rejects cleanly', async () => {
    const dir = freshDir();
    let renameFails = false;
    const { fs, calls } = recordingFs((op) =>
      op === 'link' ? fault('EPERM') : op === 'rename' && renameFails ? fault('ENOSPC') : undefined,
    );
    const store = createSnapshotStore({ dir, name: 's', fs });
    await store.save('one');
    assert.ok(calls.some((c) => c.op === 'rename'));
    assert.equal((await store.load()).data, 'one');
    renameFails = true;
    await assert.rejects(store.save('two'), { code: 'BULWARK_ERR_SNAPSHOT_WRITE', step: 'publish' });
    assert.deepEqual(tmpFiles(dir), []);
    assert.equal((await store.load()).data, 'one');
  });

  it('a failing directory read on load is surfaced, not turned into "no snapshot"', async () => {
    const dir = freshDir();
    const { fs } = recordingFs((op) => (op === 'readdir' ? fault('EACCES') : undefined));
    await assert.rejects(createSnapshotStore({ dir, name: 's', fs }).load(), { code: 'EACCES' });
  });

  it('unserialisable data rejects with step "serialize" and writes nothing', async () => {
    const dir = freshDir();
    const store = createSnapshotStore({ dir, name: 's' });
    await assert.rejects(store.save(10n), { code: 'BULWARK_ERR_SNAPSHOT_WRITE', step: 'serialize' });
    assert.equal(existsSync(dir), false);
  });
});

describe('snapshot store: corruption and recovery', () => {
  async function threeGenerations(keepQuarantined?: number) {
    const dir = freshDir();
    const store = createSnapshotStore<string>({
      dir,
      name: 'state',
      ...(keepQuarantined === undefined ? {} : { keepQuarantined }),
    });
    const events: SnapshotCorruptionEvent[] = [];
    store.onCorruption((e) => events.push(e));
    for (const v of ['g1', 'g2', 'g3']) await store.save(v);
    return { dir, store, events, path: (g: number) => join(dir, snapshotFileName('state', g)) };
  }

  it('a flipped byte in the newest file: falls back to the previous one and quarantines the bad one', async () => {
    const { dir, store, events, path } = await threeGenerations();
    const bytes = readFileSync(path(3));
    bytes[bytes.length - 1]! ^= 0x01;
    writeFileSync(path(3), bytes);
    const loaded = await store.load();
    assert.equal(loaded.generation, 2);
    assert.equal(loaded.data, 'g2');
    const report = loaded.recoveredFrom?.[0] as CorruptSnapshot;
    assert.equal(loaded.recoveredFrom?.length, 1);
    assert.equal(report.generation, 3);
    assert.equal(report.reason, 'checksum-mismatch');
    assert.equal(report.quarantinedTo, join(dir, 'quarantine', snapshotFileName('state', 3)));
    assert.ok(existsSync(report.quarantinedTo!));
    assert.ok(!existsSync(path(3)));
    assert.equal(events.length, 1);
    assert.equal(events[0]!.name, 'state');
    assert.equal(events[0]!.reason, 'checksum-mismatch');
    // the next load is clean, and the next save does not reuse the quarantined generation
    assert.equal((await store.load()).recoveredFrom, undefined);
    assert.equal((await store.save('g4')).generation, 4);
    assert.deepEqual((await store.inspect()).quarantined, [report.quarantinedTo]);
  });

  it('a truncated newest file (torn, or cut inside the header) falls back too', async () => {
    const { store, path } = await threeGenerations();
    truncateSync(path(3), 80);
    truncateSync(path(2), 10);
    const loaded = await store.load();
    assert.equal(loaded.data, 'g1');
    assert.deepEqual(
      loaded.recoveredFrom?.map((c) => [c.generation, c.reason]),
      [
        [3, 'length-mismatch'],
        [2, 'truncated-header'],
      ],
    );
  });

  it('every generation corrupt: a typed error listing each, never an empty state', async () => {
    const { store, path } = await threeGenerations();
    writeFileSync(path(3), '');
    writeFileSync(path(2), 'not a snapshot at all, just some text that is long enough to have a header....');
    const bytes = readFileSync(path(1));
    bytes[20]! ^= 0x80;
    writeFileSync(path(1), bytes);
    const error = await store.load().then(
      () => assert.fail('must throw'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof SnapshotCorruptError);
    assert.equal(error.code, 'BULWARK_ERR_SNAPSHOT_CORRUPT');
    assert.deepEqual(
      error.corrupt.map((c) => [c.generation, c.reason]),
      [
        [3, 'truncated-header'],
        [2, 'bad-magic'],
        [1, 'generation-mismatch'],
      ],
    );
    // quarantined files are not loaded again: now there is nothing at all
    await assert.rejects(store.load(), SnapshotNotFoundError);
  });

  it('a file from a newer format version is skipped but left in place', async () => {
    const { store, path } = await threeGenerations();
    const bytes = readFileSync(path(3));
    bytes.writeUInt16BE(99, 8);
    writeFileSync(path(3), bytes);
    const loaded = await store.load();
    assert.equal(loaded.data, 'g2');
    assert.equal(loaded.recoveredFrom?.[0]?.reason, 'unsupported-version');
    assert.equal(loaded.recoveredFrom?.[0]?.quarantinedTo, undefined);
    assert.ok(existsSync(path(3)));
  });

  it('keeps at most keepQuarantined corrupt files', async () => {
    const dir = freshDir();
    const store = createSnapshotStore<number>({ dir, name: 's', keepGenerations: 10, keepQuarantined: 2 });
    for (let i = 1; i <= 6; i++) await store.save(i);
    for (let g = 2; g <= 6; g++) writeFileSync(join(dir, snapshotFileName('s', g)), 'x');
    assert.equal((await store.load()).data, 1);
    assert.deepEqual(readdirSync(join(dir, 'quarantine')).sort(), [
      snapshotFileName('s', 5),
      snapshotFileName('s', 6),
    ]);
  });

  it('random damage to random generations: load always returns the newest intact one (300 runs)', async (t) => {
    const seed = Number(process.env.BULWARK_SEED ?? Date.now() % 2 ** 31);
    t.diagnostic(`seed ${seed}`);
    const random = seeded(seed);
    const pick = (k: number) => Math.floor(random() * k);
    for (let run = 0; run < 300; run++) {
      const dir = freshDir();
      const store = createSnapshotStore<Uint8Array>({ dir, name: 's' });
      const payloads: Buffer[] = [];
      for (let g = 1; g <= 3; g++) {
        const p = Buffer.alloc(pick(5000), g);
        payloads.push(p);
        await store.save(p);
      }
      const damaged = new Set<number>();
      for (let g = 1; g <= 3; g++) {
        if (random() < 0.5) continue;
        damaged.add(g);
        const file = join(dir, snapshotFileName('s', g));
        const bytes = readFileSync(file);
        switch (pick(5)) {
          case 0: // bit flip
            bytes[pick(bytes.length)]! ^= 1 << pick(8);
            writeFileSync(file, bytes);
            break;
          case 1: // truncation
            writeFileSync(file, bytes.subarray(0, pick(bytes.length)));
            break;
          case 2: // a zeroed 4 KiB page
            bytes.fill(0, 0, Math.min(bytes.length, 4096));
            writeFileSync(file, bytes);
            break;
          case 3: // appended garbage
            writeFileSync(file, Buffer.concat([bytes, Buffer.from([1 + pick(255)])]));
            break;
          default: // deleted: not corrupt, simply absent
            rmSync(file);
            damaged.delete(g);
            damaged.add(-g);
        }
      }
      const intact = [3, 2, 1].find((g) => !damaged.has(g) && !damaged.has(-g));
      const corruptCount = [...damaged].filter((g) => g > 0).length;
      if (intact === undefined) {
        await assert.rejects(store.load(), corruptCount > 0 ? SnapshotCorruptError : SnapshotNotFoundError);
        continue;
      }
      const loaded = await store.load();
      assert.equal(loaded.generation, intact, `run ${run}`);
      assert.ok(payloads[intact - 1]!.equals(loaded.data as Buffer));
      const skipped = [...damaged].filter((g) => g > intact).length;
      assert.equal(loaded.recoveredFrom?.length ?? 0, skipped, `run ${run}`);
    }
  });
});

describe('snapshot store: temp files, abort, options', () => {
  it('the first save sweeps temp files of dead writers and stale ones, but not a live fresh one', async () => {
    const dir = freshDir();
    const store = createSnapshotStore({ dir, name: 's', staleTempMs: 60_000 });
    await store.save('first');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const deadTmp = join(dir, `s.0000000000000002.${dead}-abcdef.tmp`);
    const liveTmp = join(dir, `s.0000000000000002.${process.pid}-123456.tmp`);
    const oldTmp = join(dir, `s.0000000000000002.${process.pid}-0000ff.tmp`);
    for (const p of [deadTmp, liveTmp, oldTmp]) writeFileSync(p, 'partial');
    const old = new Date(Date.now() - 120_000);
    utimesSync(oldTmp, old, old);
    assert.equal((await store.inspect()).tempFiles.length, 3);
    await createSnapshotStore({ dir, name: 's', staleTempMs: 60_000 }).save('second');
    assert.deepEqual(tmpFiles(dir), [basename(liveTmp)]);
  });

  it('a signal aborted before the call rejects with its reason and writes nothing', async () => {
    const dir = freshDir();
    const store = createSnapshotStore({ dir, name: 's' });
    const reason = new Error('stop');
    await assert.rejects(store.save('x', { signal: AbortSignal.abort(reason) }), (e) => e === reason);
    await assert.rejects(store.load({ signal: AbortSignal.abort(reason) }), (e) => e === reason);
    assert.equal(existsSync(dir), false);
  });

  it('an abort while queued behind another save rejects at once and publishes nothing', async () => {
    const dir = freshDir();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const { fs } = recordingFs();
    const slowFs: SnapshotFs = {
      ...fs,
      async link(a, b) {
        await gate;
        return fs.link(a, b);
      },
    };
    const store = createSnapshotStore<string>({ dir, name: 's', fs: slowFs });
    const first = store.save('first');
    const controller = new AbortController();
    const second = store.save('second', { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 10));
    controller.abort(new Error('user gave up'));
    await assert.rejects(second, /user gave up/);
    release();
    assert.equal((await first).generation, 1);
    await new Promise((r) => setTimeout(r, 20));
    const inv = await store.inspect();
    assert.deepEqual(
      inv.generations.map((g) => g.generation),
      [1],
    );
    assert.deepEqual(inv.tempFiles, []);
  });

  it('validates options at construction, naming the option', () => {
    const bad: [object, string][] = [
      [{ name: 's' }, 'snapshotStore.dir'],
      [{ dir: '/tmp/x' }, 'snapshotStore.name'],
      [{ dir: '/tmp/x', name: '../evil' }, 'snapshotStore.name'],
      [{ dir: '/tmp/x', name: '.hidden' }, 'snapshotStore.name'],
      [{ dir: '/tmp/x', name: 's', keepGenerations: 0 }, 'snapshotStore.keepGenerations'],
      [{ dir: '/tmp/x', name: 's', keepQuarantined: -1 }, 'snapshotStore.keepQuarantined'],
      [{ dir: '/tmp/x', name: 's', fileMode: 0o1777 }, 'snapshotStore.fileMode'],
      [{ dir: '/tmp/x', name: 's', now: 5 }, 'snapshotStore.now'],
      [{ dir: '/tmp/x', name: 's', keep: 3 }, 'snapshotStore.keep'],
    ];
    for (const [options, option] of bad) {
      assert.throws(
        () => createSnapshotStore(options as never),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option,
        option,
      );
    }
  });

  it('an existing header with a wrong generation for its name is refused (a renamed file)', async () => {
    const dir = freshDir();
    const store = createSnapshotStore<string>({ dir, name: 's' });
    await store.save('one');
    writeFileSync(join(dir, snapshotFileName('s', 9)), encodeSnapshot(1, 0, 'utf8', Buffer.from('moved')));
    const loaded = await store.load();
    assert.equal(loaded.generation, 1);
    assert.equal(loaded.recoveredFrom?.[0]?.reason, 'generation-mismatch');
  });
});
