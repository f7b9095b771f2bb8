// T3.3: kill -9 loop. A child saves snapshots continuously and prints each acknowledged generation; the
// parent SIGKILLs it at a random moment, then loads. The atomic store must show 0 corrupt loads and 0 lost
// acknowledged generations; the same harness on a naive writer (plain writeFile over the live file) must
// catch corruption, which proves the harness can fail.
//
// Cycles: 300 when CI is set, 60 otherwise; BULWARK_KILL_CYCLES overrides. BULWARK_SEED replays a run.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapshotNotFoundError } from '../errors.js';
import { createSnapshotStore } from './snapshot-store.js';
import { checkPayload } from './fixtures/payload.js';
import { seeded, sleep, spawnWriter, type Ack } from './fixtures/harness.js';

const CYCLES = Number(process.env.BULWARK_KILL_CYCLES ?? (process.env.CI ? 300 : 60));
const NAIVE_CYCLES = 60;
const SEED = Number(process.env.BULWARK_SEED ?? Date.now() % 2 ** 31);
const KEEP = 3;
/**
 * Kill 0–50 ms after the child is ready: a save takes ~2 ms on an idle machine (more under load), so kills
 * land in every step of it, and some before the first save finishes.
 */
const MAX_KILL_DELAY_MS = 50;

/** Runs one cycle: spawn, wait until ready, sleep a random time, SIGKILL, wait until gone. */
async function killCycle(args: Parameters<typeof spawnWriter>[0], delayMs: number): Promise<Ack[]> {
  const w = spawnWriter(args);
  try {
    await w.ready;
  } catch (error) {
    w.child.kill('SIGKILL');
    throw error;
  }
  await sleep(delayMs);
  w.child.kill('SIGKILL');
  const { signal, stderr } = await w.exited;
  assert.equal(signal, 'SIGKILL', `the writer died on its own: ${stderr}`);
  return w.acks;
}

describe('kill -9 harness', { timeout: 300_000 }, () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'bulwark-crash-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it(`atomic store: ${CYCLES} random SIGKILLs, 0 corrupt loads, 0 lost acknowledged generations`, async (t) => {
    const dir = join(root, 'atomic');
    const random = seeded(SEED);
    const store = createSnapshotStore<Uint8Array>({ dir, name: 'state', keepGenerations: KEEP });
    const problems: string[] = [];
    let last: Ack | undefined;
    let acks = 0;
    let cyclesWithAcks = 0;
    let maxEntries = 0;
    const t0 = performance.now();
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      const got = await killCycle(
        { mode: 'atomic', dir, name: 'state', writer: 1, maxBytes: 256 * 1024, keepGenerations: KEEP },
        Math.floor(random() * (MAX_KILL_DELAY_MS + 1)),
      );
      acks += got.length;
      if (got.length > 0) {
        cyclesWithAcks++;
        last = got.at(-1);
      }
      const entries = readdirSync(dir).filter((n) => n !== 'quarantine');
      if (entries.length > KEEP + 2)
        problems.push(`cycle ${cycle}: ${entries.length} entries: ${entries.join(' ')}`);
      maxEntries = Math.max(maxEntries, entries.length);
      try {
        const loaded = await store.load();
        if (loaded.recoveredFrom)
          problems.push(`cycle ${cycle}: corrupt file found: ${JSON.stringify(loaded.recoveredFrom)}`);
        const payload = checkPayload(loaded.data);
        if (typeof payload === 'string')
          problems.push(`cycle ${cycle}: generation ${loaded.generation}: ${payload}`);
        else if (last) {
          if (loaded.generation < last.generation)
            problems.push(
              `cycle ${cycle}: lost: loaded ${loaded.generation} < acknowledged ${last.generation}`,
            );
          else if (loaded.generation === last.generation && payload.seq !== last.seq)
            problems.push(
              `cycle ${cycle}: generation ${loaded.generation} holds seq ${payload.seq}, acknowledged ${last.seq}`,
            );
          else if (payload.seq < last.seq)
            problems.push(`cycle ${cycle}: seq ${payload.seq} < acknowledged ${last.seq}`);
        }
      } catch (error) {
        if (!(error instanceof SnapshotNotFoundError && last === undefined))
          problems.push(`cycle ${cycle}: load threw ${(error as Error).message}`);
      }
    }
    const elapsedS = (performance.now() - t0) / 1000;
    t.diagnostic(
      `seed ${SEED}: ${CYCLES} cycles in ${elapsedS.toFixed(1)} s, ${acks} acknowledged saves, ` +
        `${cyclesWithAcks} cycles killed after ≥ 1 ack, ${problems.length} problems, max ${maxEntries} entries in the directory`,
    );
    assert.deepEqual(problems, []);
    // the harness really exercised saves: most cycles saved something before the kill
    assert.ok(cyclesWithAcks >= CYCLES / 4, `only ${cyclesWithAcks} of ${CYCLES} cycles saved anything`);
    assert.ok(acks >= CYCLES, `only ${acks} acknowledged saves in ${CYCLES} cycles`);
    // the next save sweeps the temp files the killed writers left behind
    await store.save(new Uint8Array(0));
    assert.deepEqual((await store.inspect()).tempFiles, []);
  });

  it(`naive writeFile over the live file: the same harness detects corruption`, async (t) => {
    const dir = join(root, 'naive');
    const random = seeded(SEED + 1);
    const live = join(dir, 'state.live');
    let detected = 0;
    let checked = 0;
    const kinds = new Map<string, number>();
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir, { recursive: true });
    for (let cycle = 1; cycle <= NAIVE_CYCLES; cycle++) {
      await killCycle(
        {
          mode: 'naive',
          dir,
          name: 'state',
          writer: 1,
          maxBytes: 2 * 1024 * 1024,
          fixedBytes: 2 * 1024 * 1024,
        },
        Math.floor(random() * (MAX_KILL_DELAY_MS + 1)),
      );
      let bytes: Buffer;
      try {
        bytes = await readFile(live);
      } catch {
        continue; // killed before the first write
      }
      checked++;
      const verdict = checkPayload(bytes);
      if (typeof verdict === 'string') {
        detected++;
        const kind = bytes.length === 0 ? 'empty' : verdict.startsWith('length') ? 'torn' : 'damaged';
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
    }
    t.diagnostic(
      `seed ${SEED + 1}: naive writer: ${detected} corrupt of ${checked} checked (${NAIVE_CYCLES} cycles): ` +
        [...kinds].map(([k, n]) => `${n} ${k}`).join(', '),
    );
    assert.ok(detected >= 1, 'the harness must catch the naive writer at least once');
  });
});
