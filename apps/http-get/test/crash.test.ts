// kill -9 proof of the streaming writers: the BUILT http-get downloads a body (streamed into the -o temp
// file and into the cache's body file) and is SIGKILLed at a random moment — during start-up, mid-body,
// during the fsyncs and renames. After every kill: the -o file is absent, or a complete body of some
// earlier run (never torn); the cache yields nothing or a complete, checked body; at most the killed
// writer's temp files are left, and the next run removes them. The same harness on a naive writer
// (createWriteStream straight into the file) must catch torn files: proof that the harness can fail.
//
// Cycles: 300 when CI is set, 60 otherwise; BULWARK_KILL_CYCLES overrides. BULWARK_SEED replays a run.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { patternBody, startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { DiskCacheStore } from '@bulwark/http';
import { BIN } from './harness.js';

const CYCLES = Number(process.env['BULWARK_KILL_CYCLES'] ?? (process.env['CI'] ? 300 : 60));
const SEED = Number(process.env['BULWARK_SEED'] ?? Date.now() % 2 ** 31);
/** The naive control stops once it caught this many torn files, or after this many cycles. */
const NAIVE_ENOUGH = 5;
const NAIVE_MAX_CYCLES = 60;
/** 2 MB bodies at 20 MB/s: ~100 ms of body per run, so kills land in every step of it. */
const BASE_SIZE = 2_000_000;
const BYTES_PER_SECOND = 20_000_000;
const NAIVE = fileURLToPath(new URL('./fixtures/naive-download.js', import.meta.url));

/** mulberry32: replayable randomness (print the seed). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The body size of cycle `k`: distinct per cycle, so a torn file's length names no complete body. */
const sizeOf = (k: number): number => BASE_SIZE + k * 7;

/** Whether `bytes` is the complete body of one of the cycles so far. */
function completeBody(bytes: Buffer, sizes: ReadonlySet<number>): boolean {
  return sizes.has(bytes.length) && bytes.equals(patternBody(bytes.length));
}

let server: FaultServer;
let root: string;

before(async () => {
  server = await startFaultServer();
  root = await mkdtemp(join(tmpdir(), 'http-get-crash-'));
});
after(async () => {
  await server.close();
  await rm(root, { recursive: true, force: true });
});

interface Cycle {
  /** How the child ended: killed, or exited on its own before the kill (with its code). */
  readonly killed: boolean;
  readonly code: number | null;
}

/**
 * One cycle: spawn `argv`, kill it `delayMs` after it starts (`from: 'spawn'`) or after the server saw
 * its request (`from: 'request'`), wait until it is gone.
 */
async function killCycle(
  argv: string[],
  delayMs: number,
  from: 'spawn' | 'request',
  seen: number,
): Promise<Cycle> {
  const child = spawn(process.execPath, argv, { stdio: 'ignore' });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  let done = false;
  void exited.then(() => (done = true));
  if (from === 'request')
    await Promise.race([server.waitForRequests(seen + 1, 30_000).catch(() => {}), exited]);
  await Promise.race([sleep(delayMs), exited]);
  if (!done) child.kill('SIGKILL');
  const { code, signal } = await exited;
  return { killed: signal === 'SIGKILL', code };
}

interface LaneResult {
  cycles: number;
  killedMidRun: number;
  completed: number;
  problems: string[];
}

/** One lane of the atomic writer: the real CLI, its own directory, its own path on the server. */
async function atomicLane(lane: number, cycles: number, seed: number): Promise<LaneResult> {
  const random = seeded(seed);
  const dir = join(root, `atomic-${lane}`);
  const outDir = join(dir, 'out');
  const cacheDir = join(dir, 'cache');
  await mkdir(outDir, { recursive: true });
  const file = join(outDir, 'body.bin');
  const path = `/lane-${lane}`;
  const url = `${server.origin}${path}`;
  const store = new DiskCacheStore({ dir: cacheDir });
  const sizes = new Set<number>();
  const r: LaneResult = { cycles, killedMidRun: 0, completed: 0, problems: [] };
  server.setFault({ type: 'bandwidth', bytesPerSecond: BYTES_PER_SECOND }, { path });
  for (let k = 1; k <= cycles; k++) {
    const tag = `lane ${lane} cycle ${k}`;
    const size = sizeOf(lane * 10_000 + k);
    sizes.add(size);
    server.setResponse({ size, cacheControl: 'max-age=0' }, path);
    const seenBefore = server.requests.filter((q) => q.path === path).length;
    // a quarter from start-up on (sweeps, cache reads), the rest aimed at the body and the commit; every
    // tenth run is left to finish, so the checks of a finished run run however slow the machine is
    const from = k % 4 === 0 ? 'spawn' : 'request';
    const random01 = random();
    const delay = k % 10 === 5 ? 120_000 : Math.floor(random01 * (from === 'spawn' ? 700 : 250));
    const cycle = await killCycle(
      [BIN, url, '--cache-dir', cacheDir, '-o', file, '--retries', '0', '-q'],
      delay,
      from,
      server.requestCount,
    );
    if (cycle.killed && server.requests.filter((q) => q.path === path).length > seenBefore) r.killedMidRun++;
    if (!cycle.killed) {
      if (cycle.code !== 0) r.problems.push(`${tag}: exited ${cycle.code} on its own`);
      else r.completed++;
    }
    // the -o file: absent, or a complete body; after a run that finished, exactly its body
    let bytes: Buffer | undefined;
    try {
      bytes = await readFile(file);
    } catch {
      if (r.completed > 0) r.problems.push(`${tag}: the -o file vanished after a completed run`);
    }
    if (bytes !== undefined && !completeBody(bytes, sizes))
      r.problems.push(`${tag}: torn -o file (${bytes.length} bytes)`);
    if (!cycle.killed && cycle.code === 0 && bytes?.length !== size)
      r.problems.push(`${tag}: the finished run's body is not in the -o file`);
    // the cache: nothing, or a complete body that passes its checksum
    try {
      const entry = await store.get(url);
      if (entry !== undefined && !completeBody(entry.body, sizes))
        r.problems.push(`${tag}: torn cache body (${entry.body.length} bytes)`);
    } catch (error) {
      r.problems.push(`${tag}: the cache threw ${(error as Error).message}`);
    }
    // at most the killed writer's temp files: one beside -o (the next run removes it)
    const temps = (await readdir(outDir)).filter((f) => f.endsWith('.tmp'));
    if (temps.length > 1) r.problems.push(`${tag}: ${temps.length} temp files beside -o: ${temps.join(' ')}`);
  }
  // a last, clean run removes what the killed ones left
  const last = await killCycle(
    [BIN, url, '--cache-dir', cacheDir, '-o', file, '--retries', '0', '-q'],
    120_000,
    'spawn',
    0,
  );
  if (last.killed || last.code !== 0) r.problems.push(`lane ${lane}: the clean run failed (${last.code})`);
  const left = (await readdir(outDir)).filter((f) => f !== 'body.bin');
  if (left.length > 0) r.problems.push(`lane ${lane}: left beside -o after a clean run: ${left.join(' ')}`);
  const entryTemps = (await readdir(store.entryDir(url)).catch(() => ['(no entry directory)'])).filter(
    (f) => f.endsWith('.tmp') || f.startsWith('('),
  );
  if (entryTemps.length > 0)
    r.problems.push(`lane ${lane}: cache temps after a clean run: ${entryTemps.join(' ')}`);
  return r;
}

describe('kill -9 of the streaming writers', { timeout: 900_000 }, () => {
  it(`the real CLI, ${CYCLES} random SIGKILLs: never a torn -o file or cache body, no temp file left`, async (t) => {
    const half = Math.ceil(CYCLES / 2);
    const t0 = performance.now();
    const lanes = await Promise.all([atomicLane(1, half, SEED), atomicLane(2, CYCLES - half, SEED + 7)]);
    const problems = lanes.flatMap((l) => l.problems);
    const sum = (f: (l: LaneResult) => number): number => lanes.reduce((n, l) => n + f(l), 0);
    t.diagnostic(
      `seed ${SEED}: ${CYCLES} cycles in ${((performance.now() - t0) / 1000).toFixed(1)} s (2 lanes), ` +
        `${sum((l) => l.killedMidRun)} killed after their request reached the server, ` +
        `${sum((l) => l.completed)} finished before the kill, ${problems.length} problems`,
    );
    assert.deepEqual(problems, []);
    // the harness really hit the writer: most kills came after the download had started
    assert.ok(sum((l) => l.killedMidRun) >= CYCLES / 3, 'too few kills after the request went out');
    assert.ok(sum((l) => l.completed) >= 1, 'no run ever finished: the checks of a finished run never ran');
  });

  it('the same harness catches a naive writer (createWriteStream into the file) leaving torn files', async (t) => {
    const random = seeded(SEED + 1);
    const dir = join(root, 'naive');
    await mkdir(dir, { recursive: true });
    const file = join(dir, 'body.bin');
    const path = '/naive';
    server.setFault({ type: 'bandwidth', bytesPerSecond: BYTES_PER_SECOND }, { path });
    const sizes = new Set<number>();
    let torn = 0;
    let checked = 0;
    let cycle = 0;
    while (cycle < NAIVE_MAX_CYCLES && torn < NAIVE_ENOUGH) {
      cycle++;
      const size = sizeOf(90_000 + cycle);
      sizes.add(size);
      server.setResponse({ size }, path);
      await killCycle(
        [NAIVE, `${server.origin}${path}`, file],
        Math.floor(random() * 150),
        'request',
        server.requestCount,
      );
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch {
        continue; // killed before it created the file
      }
      checked++;
      if (!completeBody(bytes, sizes)) torn++;
    }
    t.diagnostic(
      `seed ${SEED + 1}: naive writer: ${torn} torn files of ${checked} checked (${cycle} cycles)`,
    );
    assert.ok(torn >= 1, 'the harness must catch the naive writer at least once');
  });
});
