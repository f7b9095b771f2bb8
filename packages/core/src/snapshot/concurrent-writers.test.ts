// Two processes writing the same store at once: no corruption, unique generations, every acknowledged
// generation holds exactly what its writer saved; a reader polling meanwhile never sees a partial file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapshotNotFoundError } from '../errors.js';
import { createSnapshotStore } from './snapshot-store.js';
import { checkPayload } from './fixtures/payload.js';
import { spawnWriter } from './fixtures/harness.js';

describe('two writer processes on one store', { timeout: 120_000 }, () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'bulwark-writers-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('unique generations; each acknowledged generation holds its writer’s bytes', async (t) => {
    const dir = join(root, 'all');
    const common = {
      mode: 'atomic',
      dir,
      name: 'state',
      maxBytes: 64 * 1024,
      count: 60,
      keepGenerations: 1000,
      waitForGo: true,
    } as const;
    const writers = [spawnWriter({ ...common, writer: 1 }), spawnWriter({ ...common, writer: 2 })];
    await Promise.all(writers.map((w) => w.ready));
    for (const w of writers) w.go();
    const exits = await Promise.all(writers.map((w) => w.exited));
    for (const e of exits) assert.equal(e.code, 0, e.stderr);
    const acks = writers.flatMap((w, i) => w.acks.map((a) => ({ ...a, writer: i + 1 })));
    assert.equal(acks.length, 120);
    const generations = acks.map((a) => a.generation);
    assert.equal(new Set(generations).size, 120, 'no generation acknowledged twice');
    const store = createSnapshotStore<Uint8Array>({ dir, name: 'state', keepGenerations: 1000 });
    const inv = await store.inspect();
    assert.equal(inv.generations.length, 120);
    assert.ok(inv.generations.every((g) => g.ok));
    assert.deepEqual(inv.tempFiles, []);
    for (const a of acks) {
      const loaded = await store.load({ generation: a.generation });
      assert.deepEqual(checkPayload(loaded.data), { writer: a.writer, seq: a.seq });
    }
    // how much the two overlapped (the OS decides; under heavy load one may run mostly alone)
    const order = [...acks].sort((x, y) => x.generation - y.generation).map((a) => a.writer);
    const switches = order.filter((w, i) => i > 0 && w !== order[i - 1]).length;
    t.diagnostic(`the writers alternated ${switches} times over 120 generations`);
  });

  it('with pruning (keep 3) and a reader polling: 0 corrupt or failed loads', async (t) => {
    const dir = join(root, 'pruned');
    const common = {
      mode: 'atomic',
      dir,
      name: 'state',
      maxBytes: 64 * 1024,
      count: 150,
      keepGenerations: 3,
      waitForGo: true,
    } as const;
    const writers = [spawnWriter({ ...common, writer: 1 }), spawnWriter({ ...common, writer: 2 })];
    await Promise.all(writers.map((w) => w.ready));
    for (const w of writers) w.go();
    let running = true;
    const done = Promise.all(writers.map((w) => w.exited)).finally(() => (running = false));
    const reader = createSnapshotStore<Uint8Array>({ dir, name: 'state' });
    let loads = 0;
    let notFound = 0;
    const problems: string[] = [];
    while (running) {
      try {
        const loaded = await reader.load();
        loads++;
        if (loaded.recoveredFrom) problems.push(`corrupt: ${JSON.stringify(loaded.recoveredFrom)}`);
        const payload = checkPayload(loaded.data);
        if (typeof payload === 'string') problems.push(`generation ${loaded.generation}: ${payload}`);
      } catch (error) {
        if (error instanceof SnapshotNotFoundError && writers.every((w) => w.acks.length === 0)) notFound++;
        else problems.push(`load threw: ${(error as Error).message}`);
      }
    }
    const exits = await done;
    for (const e of exits) assert.equal(e.code, 0, e.stderr);
    t.diagnostic(`${loads} loads during 300 saves by 2 writers (${notFound} before the first save)`);
    assert.deepEqual(problems, []);
    assert.ok(loads >= 20, `only ${loads} loads overlapped the writers`);
    const generations = writers.flatMap((w) => w.acks.map((a) => a.generation));
    assert.equal(new Set(generations).size, 300);
    const inv = await reader.inspect();
    assert.ok(inv.generations.length <= 3 + 2);
    assert.deepEqual(inv.tempFiles, []);
  });
});
