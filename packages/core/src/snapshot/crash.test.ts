// T3.3: kill -9 loop. A child saves snapshots continuously and prints each acknowledged generation; the
// parent SIGKILLs it at a random moment, then loads. The atomic store must show 0 corrupt loads and 0 lost
// acknowledged generations; the same harness on a naive writer (plain writeFile over the live file) must
// catch corruption, which proves the harness can fail.
//
// Cycles: 300 when CI is set, 60 otherwise; BULWARK_KILL_CYCLES overrides. BULWARK_SEED replays a run.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapshotNotFoundError } from '../errors.js';
import { createSnapshotStore } from './snapshot-store.js';
import { checkPayload } from './fixtures/payload.js';
import { seeded, sleep, spawnWriter, type Ack } from './fixtures/harness.js';

const CYCLES = Number(process.env.BULWARK_KILL_CYCLES ?? (process.env.CI ? 300 : 60));
/** The naive control stops once it caught this many corrupt files, or after NAIVE_MAX_CYCLES. */
const NAIVE_ENOUGH = 5;
const NAIVE_MAX_CYCLES = 60;
const SEED = Number(process.env.BULWARK_SEED ?? Date.now() % 2 ** 31);
const KEEP = 3;
/**
 * Kill 0–50 ms after the child is ready: a save takes ~2 ms on an idle machine (more under load), so kills
 * land in every step of it, and some before the first save finishes.
 */
const MAX_KILL_DELAY_MS = 50;

/**
 * Runs one cycle: spawn, wait until ready (or until the first acknowledged save), sleep a random time,
 * SIGKILL, wait until the process is gone and its output read.
 */
async function killCycle(
  args: Parameters<typeof spawnWriter>[0],
  delayMs: number,
  from: 'ready' | 'first-ack',
): Promise<Ack[]> {
  const w = spawnWriter(args);
  try {
    await (from === 'ready' ? w.ready : w.firstAck);
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

interface LaneResult {
  acks: number;
  cyclesWithAcks: number;
  maxEntries: number;
  problems: string[];
}

/**
 * One lane: `cycles` kill cycles in sequence on its own directory, checking after each kill that the
 * store loads the last acknowledged generation (or a newer one) with intact bytes.
 */
async function atomicLane(dir: string, cycles: number, seed: number): Promise<LaneResult> {
  mkdirSync(dir, { recursive: true });
  const random = seeded(seed);
  const store = createSnapshotStore<Uint8Array>({ dir, name: 'state', keepGenerations: KEEP });
  const r: LaneResult = { acks: 0, cyclesWithAcks: 0, maxEntries: 0, problems: [] };
  let last: Ack | undefined;
  for (let cycle = 1; cycle <= cycles; cycle++) {
    const tag = `${dir} cycle ${cycle}`;
    // even cycles: kill anywhere from start-up on (sweep, prune, first save); odd: in steady-state saves
    const got = await killCycle(
      { mode: 'atomic', dir, name: 'state', writer: 1, maxBytes: 256 * 1024, keepGenerations: KEEP },
      Math.floor(random() * (MAX_KILL_DELAY_MS + 1)),
      cycle % 2 === 0 ? 'ready' : 'first-ack',
    );
    r.acks += got.length;
    if (got.length > 0) {
      r.cyclesWithAcks++;
      last = got.at(-1);
    }
    const entries = readdirSync(dir).filter((n) => n !== 'quarantine');
    if (entries.length > KEEP + 2) r.problems.push(`${tag}: ${entries.length} entries: ${entries.join(' ')}`);
    r.maxEntries = Math.max(r.maxEntries, entries.length);
    try {
      const loaded = await store.load();
      if (loaded.recoveredFrom)
        r.problems.push(`${tag}: corrupt file found: ${JSON.stringify(loaded.recoveredFrom)}`);
      const payload = checkPayload(loaded.data);
      if (typeof payload === 'string') r.problems.push(`${tag}: generation ${loaded.generation}: ${payload}`);
      else if (last) {
        if (loaded.generation < last.generation)
          r.problems.push(`${tag}: lost: loaded ${loaded.generation} < acknowledged ${last.generation}`);
        else if (loaded.generation === last.generation && payload.seq !== last.seq)
          r.problems.push(
            `${tag}: generation ${loaded.generation} holds seq ${payload.seq}, acknowledged ${last.seq}`,
          );
        else if (payload.seq < last.seq)
          r.problems.push(`${tag}: seq ${payload.seq} < acknowledged ${last.seq}`);
      }
    } catch (error) {
      if (!(error instanceof SnapshotNotFoundError && last === undefined))
        r.problems.push(`${tag}: load threw ${(error as Error).message}`);
    }
  }
  // the next save sweeps the temp files the killed writers left behind
  await store.save(new Uint8Array(0));
  const left = (await store.inspect()).tempFiles;
  if (left.length > 0) r.problems.push(`${dir}: temp files left after a sweep: ${left.join(' ')}`);
  return r;
}

describe('kill -9 harness', { timeout: 300_000 }, () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'bulwark-crash-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it(`atomic store: ${CYCLES} random SIGKILLs, 0 corrupt loads, 0 lost acknowledged generations`, async (t) => {
    const t0 = performance.now();
    // two lanes (own directories) run side by side: node start-up dominates a cycle, so this halves the time
    const half = Math.ceil(CYCLES / 2);
    const lanes = await Promise.all([
      atomicLane(join(root, 'atomic-1'), half, SEED),
      atomicLane(join(root, 'atomic-2'), CYCLES - half, SEED + 7),
    ]);
    const elapsedS = (performance.now() - t0) / 1000;
    const sum = (f: (r: LaneResult) => number): number => lanes.reduce((n, r) => n + f(r), 0);
    const problems = lanes.flatMap((r) => r.problems);
    t.diagnostic(
      `seed ${SEED}: ${CYCLES} cycles in ${elapsedS.toFixed(1)} s (2 lanes), ${sum((r) => r.acks)} acknowledged ` +
        `saves, ${sum((r) => r.cyclesWithAcks)} cycles killed after ≥ 1 ack, ${problems.length} problems, ` +
        `max ${Math.max(...lanes.map((r) => r.maxEntries))} entries in a directory`,
    );
    assert.deepEqual(problems, []);
    // the harness really exercised saves: every odd cycle waits for an acknowledged save before the kill
    assert.ok(sum((r) => r.cyclesWithAcks) >= CYCLES / 2, 'too few cycles saved anything');
    assert.ok(sum((r) => r.acks) >= CYCLES, 'too few acknowledged saves');
  });

  it(`naive writeFile over the live file: the same harness detects corruption`, async (t) => {
    const dir = join(root, 'naive');
    const random = seeded(SEED + 1);
    const live = join(dir, 'state.live');
    let detected = 0;
    let checked = 0;
    const kinds = new Map<string, number>();
    mkdirSync(dir, { recursive: true });
    let cycle = 0;
    while (cycle < NAIVE_MAX_CYCLES && detected < NAIVE_ENOUGH) {
      cycle++;
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
        cycle % 2 === 0 ? 'ready' : 'first-ack',
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
      `seed ${SEED + 1}: naive writer: ${detected} corrupt of ${checked} checked (${cycle} cycles): ` +
        [...kinds].map(([k, n]) => `${n} ${k}`).join(', '),
    );
    assert.ok(detected >= 1, 'the harness must catch the naive writer at least once');
  });
});
