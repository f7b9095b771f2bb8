// --metrics-file: the BUILT binary against @bulwark/fault-server, the file it leaves checked by promtool,
// and the file's names held against ops/prometheus/rules.yml and the runbook.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { DiskCacheStore } from '@bulwark/http';
import { EXIT } from '../src/config.js';
import {
  RunRecord,
  SERVED_TIERS,
  SNAPSHOT_OPERATIONS,
  renderMetrics,
  writeMetricsFileSync,
} from '../src/metrics.js';
import { STACK_FRAME, deadOrigin, runCli } from './harness.js';

let primary: FaultServer;
let work: string;

before(async () => {
  primary = await startFaultServer();
  work = await mkdtemp(join(tmpdir(), 'http-get-metrics-'));
});
beforeEach(() => {
  primary.reset();
  primary.setResponse({ body: 'primary body\n', cacheControl: 'max-age=60' });
});
after(async () => {
  await primary.close();
  await rm(work, { recursive: true, force: true });
});

let n = 0;
/** A fresh directory for one test: its metrics file and its cache. */
async function place(): Promise<{ dir: string; prom: string; cache: string }> {
  const dir = join(work, `t${++n}`);
  await mkdir(dir);
  return { dir, prom: join(dir, 'http-get.prom'), cache: join(dir, 'cache') };
}

/** `promtool check metrics < file`: exit 0 and nothing to say. */
function promtoolCheck(text: string): void {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.error, undefined, 'promtool runs');
  assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}\n---\n${text}`);
}

/** `name{labels}` → value, for every sample line. */
function samples(text: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+) (\S+)$/.exec(line);
    assert.ok(m, `sample line: ${line}`);
    map.set(m[1]!, Number(m[2]));
  }
  return map;
}

const snap = (op: string): string =>
  `bulwark_snapshot_failures_last_run{program="http-get",operation="${op}"}`;
const tier = (t: string): string => `bulwark_http_get_last_run_tier{tier="${t}"}`;

/** The tiers series: `served` at 1, the others at 0 (all 0 when `served` is undefined). */
function assertTier(m: Map<string, number>, served: string | undefined): void {
  for (const t of SERVED_TIERS) assert.equal(m.get(tier(t)), t === served ? 1 : 0, tier(t));
}

/** Reads the file, checks it with promtool, and that no temp file was left beside it. */
async function readMetrics(dir: string, prom: string): Promise<Map<string, number>> {
  const text = await readFile(prom, 'utf8');
  promtoolCheck(text);
  const left = (await readdir(dir)).filter((f) => f !== 'cache');
  assert.deepEqual(left, ['http-get.prom'], 'no temp file left');
  return samples(text);
}

describe('--metrics-file, end to end', () => {
  it('a served run: exit code 0, tier primary, no snapshot failures, timestamp and duration', async () => {
    const { dir, prom, cache } = await place();
    const before = Date.now() / 1000;
    const run = await runCli([`${primary.origin}/doc`, '--cache-dir', cache, '--metrics-file', prom]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.toString(), 'primary body\n');
    assert.equal(run.stderr, '');
    const m = await readMetrics(dir, prom);
    for (const op of SNAPSHOT_OPERATIONS) assert.equal(m.get(snap(op)), 0, op);
    assert.equal(m.get('bulwark_http_get_last_run_exit_code'), 0);
    assertTier(m, 'primary');
    const ts = m.get('bulwark_http_get_last_run_timestamp_seconds')!;
    assert.ok(ts >= before - 1 && ts <= Date.now() / 1000 + 1, `timestamp ${ts}`);
    const duration = m.get('bulwark_http_get_last_run_duration_seconds')!;
    assert.ok(duration > 0, `duration ${duration} s`);

    // the next run replaces it: served from the fresh cache
    const again = await runCli([`${primary.origin}/doc`, '--cache-dir', cache, '--metrics-file', prom]);
    assert.equal(again.code, EXIT.OK, again.stderr);
    assertTier(await readMetrics(dir, prom), 'fresh-cache');
  });

  it('all tiers failed: written with exit code 69 and no tier', async () => {
    const { dir, prom, cache } = await place();
    const dead = await deadOrigin();
    const run = await runCli([
      `${dead}/doc`,
      '--fallback',
      `${dead}/mirror`,
      '--cache-dir',
      cache,
      '--retries',
      '0',
      '--metrics-file',
      prom,
    ]);
    assert.equal(run.code, EXIT.ALL_TIERS_FAILED, run.stderr);
    const m = await readMetrics(dir, prom);
    assert.equal(m.get('bulwark_http_get_last_run_exit_code'), EXIT.ALL_TIERS_FAILED);
    assertTier(m, undefined);
    for (const op of SNAPSHOT_OPERATIONS) assert.equal(m.get(snap(op)), 0, op);
  });

  it('a corrupted cache entry: load and quarantine counted, the run still served by the primary', async () => {
    const { dir, prom, cache } = await place();
    const url = `${primary.origin}/doc`;
    assert.equal((await runCli([url, '--cache-dir', cache])).code, EXIT.OK);
    const entryDir = new DiskCacheStore({ dir: cache }).entryDir(url);
    const files = (await readdir(entryDir)).filter((f) => f.endsWith('.snap'));
    assert.equal(files.length, 1);
    const path = join(entryDir, files[0]!);
    const bytes = await readFile(path);
    bytes[bytes.length - 3]! ^= 0x55; // a body byte: the checksum no longer matches
    await writeFile(path, bytes);

    const run = await runCli([url, '--cache-dir', cache, '--metrics-file', prom]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.toString(), 'primary body\n');
    assert.equal(primary.requestCount, 2, 'the damaged copy was a miss');
    const m = await readMetrics(dir, prom);
    assert.equal(m.get(snap('quarantine')), 1, 'the damaged file');
    assert.equal(m.get(snap('load')), 1, 'no intact generation was left');
    assert.equal(m.get(snap('save')), 0, 'the fresh response was saved');
    assertTier(m, 'primary');

    // the cache healed: the next run reports no failures
    assert.equal((await runCli([url, '--cache-dir', cache, '--metrics-file', prom])).code, EXIT.OK);
    const healed = await readMetrics(dir, prom);
    for (const op of SNAPSHOT_OPERATIONS) assert.equal(healed.get(snap(op)), 0, op);
    assertTier(healed, 'fresh-cache');
  });

  it('a cache that cannot save (its entry directory is a file): save counted, the body still served', async () => {
    const { dir, prom, cache } = await place();
    const url = `${primary.origin}/doc`;
    const entryDir = new DiskCacheStore({ dir: cache }).entryDir(url);
    await mkdir(join(entryDir, '..'), { recursive: true });
    await writeFile(entryDir, 'not a directory');
    const run = await runCli([url, '--cache-dir', cache, '--metrics-file', prom]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.toString(), 'primary body\n');
    assert.match(run.stderr, /warning: cache write failed/);
    const m = await readMetrics(dir, prom);
    assert.equal(m.get(snap('save')), 1);
    assert.equal(m.get(snap('load')), 1, 'nor could it be read');
    assert.equal(m.get(snap('quarantine')), 0);
  });

  it('Ctrl-C: written with exit code 130', async () => {
    const { dir, prom } = await place();
    const run = await runCli([`${primary.origin}/latency/10000`, '--no-cache', '--metrics-file', prom], {
      onSpawn: (child) => {
        void primary.waitForRequests(1, 10_000).then(() => child.kill('SIGINT'));
      },
    });
    assert.equal(run.code, EXIT.INTERRUPTED, run.stderr);
    const m = await readMetrics(dir, prom);
    assert.equal(m.get('bulwark_http_get_last_run_exit_code'), EXIT.INTERRUPTED);
    assertTier(m, undefined);
  });

  it('HTTP_GET_METRICS_FILE sets it; --metrics-file wins over it; empty is unset', async () => {
    const a = await place();
    const b = await place();
    const url = `${primary.origin}/doc`;
    const viaEnv = await runCli([url, '--no-cache'], { env: { HTTP_GET_METRICS_FILE: a.prom } });
    assert.equal(viaEnv.code, EXIT.OK, viaEnv.stderr);
    assert.equal((await readMetrics(a.dir, a.prom)).get('bulwark_http_get_last_run_exit_code'), 0);

    await rm(a.prom);
    const both = await runCli([url, '--no-cache', '--metrics-file', b.prom], {
      env: { HTTP_GET_METRICS_FILE: a.prom },
    });
    assert.equal(both.code, EXIT.OK, both.stderr);
    assert.deepEqual(await readdir(a.dir), [], 'not the environment one');
    await readMetrics(b.dir, b.prom);

    const empty = await runCli([url, '--no-cache'], { env: { HTTP_GET_METRICS_FILE: '' } });
    assert.equal(empty.code, EXIT.OK, empty.stderr);
  });

  it('a metrics file that cannot be written at the end: an error line, the exit code stays the run’s', async () => {
    const { dir } = await place();
    const sub = join(dir, 'gone');
    await mkdir(sub);
    const prom = join(sub, 'http-get.prom');
    const run = await runCli([`${primary.origin}/latency/1000`, '--no-cache', '--metrics-file', prom], {
      onSpawn: () => {
        void primary.waitForRequests(1, 10_000).then(() => rm(sub, { recursive: true }));
      },
    });
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.match(run.stderr, /^http-get: error: cannot write the metrics file .*http-get\.prom: .*ENOENT/m);
    assert.doesNotMatch(run.stderr, STACK_FRAME);
  });
});

describe('--metrics-file validation (exit 2, nothing fetched)', () => {
  const cases: [string, (dir: string) => string[], Record<string, string>, RegExp][] = [
    [
      'not *.prom',
      (d) => ['--metrics-file', join(d, 'http-get.txt')],
      {},
      /option '--metrics-file <path>' argument '.*http-get\.txt' is invalid\. expected a file name ending in \.prom \(node-exporter's textfile collector reads only \*\.prom files\)\./,
    ],
    [
      'only ".prom"',
      (d) => ['--metrics-file', join(d, '.prom')],
      {},
      /--metrics-file.*expected a file name ending in \.prom/,
    ],
    [
      'a directory that does not exist',
      (d) => ['--metrics-file', join(d, 'no', 'such', 'dir', 'x.prom')],
      {},
      /--metrics-file.*is invalid\. expected a file in an existing directory; .*\/no\/such\/dir does not exist\./,
    ],
    [
      'a "directory" that is a file',
      (d) => ['--metrics-file', join(d, 'file', 'x.prom')],
      {},
      /--metrics-file.*expected a file in a directory; .*\/file is not a directory\./,
    ],
    [
      'a directory, not a file',
      (d) => ['--metrics-file', join(d, 'dir.prom')],
      {},
      /--metrics-file.*expected a file, not the directory .*\/dir\.prom\./,
    ],
    [
      'the environment variable, checked the same way',
      () => [],
      { HTTP_GET_METRICS_FILE: '/no/such/dir/x.prom' },
      /^http-get: environment variable HTTP_GET_METRICS_FILE '\/no\/such\/dir\/x\.prom' is invalid\. expected a file in an existing directory; \/no\/such\/dir does not exist\./,
    ],
    [
      'the environment variable, not *.prom',
      () => [],
      { HTTP_GET_METRICS_FILE: 'metrics.txt' },
      /environment variable HTTP_GET_METRICS_FILE 'metrics\.txt' is invalid\. expected a file name ending in \.prom/,
    ],
  ];
  for (const [name, args, env, message] of cases) {
    it(`${name} → exit 2`, async () => {
      const { dir } = await place();
      await writeFile(join(dir, 'file'), '');
      await mkdir(join(dir, 'dir.prom'));
      const run = await runCli([`${primary.origin}/doc`, '--no-cache', ...args(dir)], { env });
      assert.equal(run.code, EXIT.USAGE, run.stderr);
      assert.match(run.stderr, message);
      assert.match(run.stderr, /^http-get: /);
      assert.match(run.stderr, /\nTry 'http-get --help' for more information\.\n$/);
      assert.equal(run.stdout.length, 0);
      assert.equal(primary.requestCount, 0, 'nothing fetched');
      assert.deepEqual((await readdir(dir)).sort(), ['dir.prom', 'file'], 'nothing written');
    });
  }

  it('a directory it may not write to → exit 2 (not as root, who may write anywhere)', async (t) => {
    if (process.getuid?.() === 0) {
      // root passes access(W_OK) everywhere: the check cannot fail, so assert that it lets the run through
      t.diagnostic('running as root: checking that a read-only directory is accepted instead');
    }
    const { dir } = await place();
    const ro = join(dir, 'ro');
    await mkdir(ro, { mode: 0o555 });
    const run = await runCli([`${primary.origin}/doc`, '--no-cache', '--metrics-file', join(ro, 'x.prom')]);
    if (process.getuid?.() === 0) assert.equal(run.code, EXIT.OK, run.stderr);
    else {
      assert.equal(run.code, EXIT.USAGE, run.stderr);
      assert.match(run.stderr, /expected a file in a writable directory; .*\/ro is not writable\./);
    }
  });
});

describe('the file against ops/prometheus and the runbook', () => {
  const repo = new URL('../../../../', import.meta.url);
  const rules = readFileSync(new URL('ops/prometheus/rules.yml', repo), 'utf8');
  const runbook = readFileSync(new URL('docs/ops/runbook.md', repo), 'utf8');
  const served = new RunRecord();
  served.servedTier = 'primary';
  /** A run served by the primary without cache failures. */
  const example = renderMetrics(served, { exitCode: 0, endedAtMs: 0, durationMs: 0 });

  it('passes promtool check metrics for every exit code', () => {
    for (const code of Object.values(EXIT)) {
      const record = new RunRecord();
      record.servedTier = 'stale-cache';
      record.snapshotFailures.quarantine = 2;
      promtoolCheck(renderMetrics(record, { exitCode: code, endedAtMs: Date.now(), durationMs: 1234.5 }));
    }
  });

  it("the alert's expression reads a series the file has, with the operations the rules name", () => {
    const expr = /alert: HttpGetSnapshotFailures\n\s+expr: (.*)/.exec(rules)?.[1];
    assert.ok(expr, 'rules.yml: HttpGetSnapshotFailures');
    const selector = /(bulwark_snapshot_failures_last_run)\{program="([^"]+)"\}/.exec(expr);
    assert.ok(selector, expr);
    assert.match(example, new RegExp(`^${selector[1]}\\{program="${selector[2]}",`, 'm'));
    const named = /bulwark_snapshot_failures_last_run\{program="http-get",operation="([a-z|]+)"\}/.exec(
      rules,
    );
    assert.ok(named, 'rules.yml: the comment naming the operations');
    assert.deepEqual(named[1]!.split('|'), [...SNAPSHOT_OPERATIONS]);
  });

  it("the runbook's example is what a run served by the primary without cache failures writes", () => {
    const entry = runbook.slice(runbook.indexOf('### HttpGetSnapshotFailures'));
    const block = /```text\n([\s\S]*?)```/.exec(entry)?.[1];
    assert.ok(block, 'runbook: the example file');
    const generic = (text: string): string[] =>
      text
        .trim()
        .split('\n')
        .map((l) => l.replace(/(_seconds(?:\{[^}]*\})?) \S+$/, '$1 <n>'));
    assert.deepEqual(generic(block), generic(example));
  });
});

describe('the synchronous writer (a second Ctrl-C exits through it)', () => {
  it('replaces the file whole, leaves no temp file, and never throws', async () => {
    const { dir, prom } = await place();
    await writeFile(prom, 'previous\n');
    const record = new RunRecord();
    record.snapshotFailures.save = 3;
    const end = { exitCode: EXIT.INTERRUPTED, endedAtMs: Date.now(), durationMs: 2500 };
    writeMetricsFileSync(prom, record, end);
    assert.equal(await readFile(prom, 'utf8'), renderMetrics(record, end));
    const m = await readMetrics(dir, prom);
    assert.equal(m.get(snap('save')), 3);
    assert.equal(m.get('bulwark_http_get_last_run_exit_code'), EXIT.INTERRUPTED);

    const gone = join(dir, 'gone', 'x.prom');
    assert.doesNotThrow(() => writeMetricsFileSync(gone, record, end));
    assert.deepEqual(await readdir(dir), ['http-get.prom']);
  });
});
