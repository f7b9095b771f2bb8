// Per-call cost of the issue-14 additions to @bulwark/core, beside a bare call and beside the core before
// them (built from git): chaos policies switched off (should cost about nothing), the circuit breaker with
// its shared wake-up queue (no regression on the hot path), a per-call and an ambient deadline, the hedge's
// fast path (the first attempt answers before the delay), the adaptive throttle, the rate limiter.
// Writes results/core-issue14.md.
//
// Usage: node bench/core-issue14.mjs [repetitions=5] [--baseline-ref=b548de1]
// The baseline core is `git archive <ref> packages/core` compiled into the system temp directory (kept
// between runs). Each repetition is a fresh process running every case once in a seeded shuffled order
// (mitata `measure`), pinned to CPU 1 with taskset when there are two CPUs.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { canPin, fmt, machineLine, median, shuffle } from './lib.mjs';

/** [case, against, bar]: measured in alternation in each process, so a burst of noise hits both. */
const BARS = [
  ['chaos.fault, switched off', 'baseline: await fn()', undefined],
  ['chaos.latency, switched off', 'baseline: await fn()', undefined],
  ['chaos.fault, on at rate 0 (rolls the dice)', 'chaos.fault, switched off', undefined],
  [
    'README pipeline: this core, with chaos.fault and chaos.latency switched off',
    'README pipeline: this core',
    1.1,
  ],
  ['breaker (consecutive, closed): this core', 'breaker (consecutive, closed): previous core', 1.1],
  [
    'breaker (consecutive, closed): this core, in a process that uses runWithDeadline',
    'breaker (consecutive, closed): previous core',
    undefined,
  ],
  ['open breaker rejection: this core', 'open breaker rejection: previous core', 1.1],
  ['README pipeline: this core', 'README pipeline: previous core', 1.1],
  ['breaker with a per-call deadline (timeoutMs)', 'breaker (consecutive, closed): this core', undefined],
  [
    'breaker under an ambient deadline (runWithDeadline)',
    'breaker (consecutive, closed): this core',
    undefined,
  ],
  ['hedge, first attempt answers before the delay', 'baseline: await fn()', undefined],
  ['adaptiveThrottle (one key)', 'baseline: await fn()', undefined],
  ['rateLimiter with maxWaitMs, token available', 'rateLimiter, token available', 1.1],
];
/** Alternations per pair, and CPU time per measurement. */
const ROUNDS = 5;
const MEASURE_NS = 100 * 1e6;

const self = fileURLToPath(import.meta.url);
const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));

if (process.argv[2] === '--cases') await cases(Number(process.argv[3]), process.argv[4]);
else orchestrate();

// ---------------------------------------------------------------------------------------------------------

async function cases(seed, baselineDir) {
  const { measure, do_not_optimize } = await import('mitata');
  const bw = await import('@bulwark/core');
  const old = await import(pathToFileURL(join(baselineDir, 'dist/index.js')).href);
  const fn = async () => 1;

  const readme = (core, extra = []) =>
    core.pipeline(
      core.timeout({ timeoutMs: 2_000 }),
      core.retry({ maxAttempts: 3, initialDelayMs: 50 }),
      core.circuitBreaker({ strategy: { type: 'count', size: 20, minimumCalls: 10 } }),
      ...extra,
      core.timeout({ timeoutMs: 500 }),
    );
  const consecutive = (core) =>
    core.circuitBreaker({ strategy: { type: 'consecutive', threshold: 5 }, openDurationMs: 10_000 });
  const opened = async (core) => {
    const b = core.circuitBreaker({ strategy: { type: 'consecutive', threshold: 1 }, openDurationMs: 1e9 });
    await b.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    return b;
  };
  const off = bw.chaos.fault({ rate: 1, enabled: false });
  const neverInjects = bw.chaos.fault({ rate: 0 });
  const offLatency = bw.chaos.latency({ rate: 1, latencyMs: 100, enabled: false });
  const readmeNew = readme(bw);
  const readmeOld = readme(old);
  const readmeChaosOff = readme(bw, [
    bw.chaos.fault({ rate: 1, enabled: false }),
    bw.chaos.latency({ rate: 1, latencyMs: 5, enabled: false }),
  ]);
  const bNew = consecutive(bw);
  const bOld = consecutive(old);
  const openNew = await opened(bw);
  const openOld = await opened(old);
  const bDeadline = consecutive(bw);
  const bAmbient = consecutive(bw);
  const hedge = bw.hedge({ idempotent: true, delayMs: 1_000 });
  const throttle = bw.adaptiveThrottle();
  const limiter = bw.rateLimiter({ ratePerSecond: 1e9, burst: 1e6 });
  const waitingLimiter = bw.rateLimiter({ ratePerSecond: 1e9, burst: 1e6, maxWaitMs: 100 });
  // The ambient-deadline storage is created by the first runWithDeadline of a process; until then an
  // execute pays one global read, after it an AsyncLocalStorage lookup. Cases that name it run with the
  // storage present; every other case without (it is dropped before them).
  const registry = globalThis[Symbol.for('bulwark.deadline.registry')];
  const storage = (present) => {
    if (present) bw.runWithDeadline({ timeoutMs: 1 }, () => {});
    else registry.storage = undefined;
  };
  const bUsesAls = consecutive(bw);

  const all = {
    'baseline: await fn()': async () => do_not_optimize(await fn()),
    'chaos.fault, switched off': async () => do_not_optimize(await off.execute(fn)),
    'chaos.latency, switched off': async () => do_not_optimize(await offLatency.execute(fn)),
    'chaos.fault, on at rate 0 (rolls the dice)': async () => do_not_optimize(await neverInjects.execute(fn)),
    'README pipeline: this core': async () => do_not_optimize(await readmeNew.execute(fn)),
    'README pipeline: this core, with chaos.fault and chaos.latency switched off': async () =>
      do_not_optimize(await readmeChaosOff.execute(fn)),
    'README pipeline: previous core': async () => do_not_optimize(await readmeOld.execute(fn)),
    'breaker (consecutive, closed): this core': async () => do_not_optimize(await bNew.execute(fn)),
    'breaker (consecutive, closed): previous core': async () => do_not_optimize(await bOld.execute(fn)),
    'open breaker rejection: this core': async () => {
      try {
        await openNew.execute(fn);
      } catch (e) {
        do_not_optimize(e);
      }
    },
    'open breaker rejection: previous core': async () => {
      try {
        await openOld.execute(fn);
      } catch (e) {
        do_not_optimize(e);
      }
    },
    'breaker (consecutive, closed): this core, in a process that uses runWithDeadline': async () =>
      do_not_optimize(await bUsesAls.execute(fn)),
    'breaker with a per-call deadline (timeoutMs)': async () =>
      do_not_optimize(await bDeadline.execute(fn, { timeoutMs: 60_000 })),
    'breaker under an ambient deadline (runWithDeadline)': async () =>
      do_not_optimize(await bAmbient.execute(fn)),
    'hedge, first attempt answers before the delay': async () => do_not_optimize(await hedge.execute(fn)),
    'adaptiveThrottle (one key)': async () => do_not_optimize(await throttle.execute(fn)),
    'rateLimiter, token available': async () => do_not_optimize(await limiter.execute(fn)),
    'rateLimiter with maxWaitMs, token available': async () =>
      do_not_optimize(await waitingLimiter.execute(fn)),
  };
  const one = async (name) => {
    storage(/runWithDeadline/.test(name));
    const run = () => measure(all[name], { min_cpu_time: MEASURE_NS });
    // the ambient case runs entirely inside one runWithDeadline (as the calls of one request do)
    const stats = name.includes('ambient') ? await bw.runWithDeadline({ timeoutMs: 1e9 }, run) : await run();
    return stats.avg;
  };
  const samples = {};
  const ratios = {};
  for (const [a, b] of shuffle(BARS, seed)) {
    const rs = (ratios[`${a}|${b}`] = []);
    for (let r = 0; r < ROUNDS; r++) {
      // alternate which goes first
      const [first, second] = r % 2 ? [b, a] : [a, b];
      const x = await one(first);
      const y = await one(second);
      const [na, nb] = r % 2 ? [y, x] : [x, y];
      (samples[a] ??= []).push(na);
      (samples[b] ??= []).push(nb);
      rs.push(na / nb);
    }
  }
  const med = (xs) => [...xs].sort((p, q) => p - q)[xs.length >> 1];
  process.stdout.write(
    JSON.stringify({
      samples: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, med(v)])),
      ratios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, med(v)])),
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------

function buildBaseline(ref) {
  const sha = execFileSync('git', ['rev-parse', '--short', ref], { cwd: root, encoding: 'utf8' }).trim();
  const dir = join(tmpdir(), `bulwark-core-baseline-${sha}`);
  if (existsSync(join(dir, 'dist/index.js'))) return { dir, sha };
  mkdirSync(dir, { recursive: true });
  const tar = execFileSync('git', ['archive', sha, 'packages/core/src', 'packages/core/package.json'], {
    cwd: root,
    maxBuffer: 1 << 28,
  });
  execFileSync('tar', ['-x', '--strip-components=2', '-C', dir], { input: tar });
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        skipLibCheck: true,
        rootDir: 'src',
        outDir: 'dist',
        types: ['node'],
        typeRoots: [join(root, 'node_modules/@types')],
      },
      include: ['src/**/*.ts'],
      exclude: ['src/**/*.test.ts', 'src/**/fixtures/**'],
    }),
  );
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], {
    stdio: 'inherit',
  });
  return { dir, sha };
}

function orchestrate() {
  const args = process.argv.slice(2);
  const reps = Number(args.find((a) => /^\d+$/.test(a)) ?? 5);
  const ref = args.find((a) => a.startsWith('--baseline-ref='))?.slice('--baseline-ref='.length) ?? 'b548de1';
  const { dir, sha } = buildBaseline(ref);
  const pin = canPin();
  const runs = [];
  for (let r = 1; r <= reps; r++) {
    process.stderr.write(`core issue 14: repetition ${r}/${reps}\n`);
    const cmd = pin ? ['taskset', ['-c', '1', process.execPath]] : [process.execPath, []];
    runs.push(
      JSON.parse(
        execFileSync(cmd[0], [...cmd[1], self, '--cases', String(r), dir], {
          cwd: here,
          encoding: 'utf8',
          maxBuffer: 1 << 24,
        }),
      ),
    );
  }
  const names = Object.keys(runs[0].samples).sort();
  const med = (n) => median(runs.map((r) => r.samples[n]));
  const ratio = (a, b) => median(runs.map((r) => r.ratios[`${a}|${b}`]));
  const version = (p) => {
    try {
      return JSON.parse(readFileSync(join(root, 'node_modules', p, 'package.json'), 'utf8')).version;
    } catch {
      return 'n/a';
    }
  };
  let md = `## Issue 14 additions: per-call cost (\`bench/core-issue14.mjs\`)\n\n`;
  md += `Command: \`node bench/core-issue14.mjs ${reps}${ref === 'b548de1' ? '' : ` --baseline-ref=${ref}`}\`. Node ${process.version}, mitata ${version('mitata')}; ${machineLine()}. **Taken on a busy shared machine**: compare the ratios, measured side by side in each process.\n\n`;
  md += `"Previous core" is \`packages/core\` at ${sha} (before the issue-14 additions), compiled from git by the script. ${reps} fresh processes${pin ? ' pinned to CPU 1 (`taskset`)' : ''}, each measuring every pair of the second table ${ROUNDS} times in alternation (mitata \`measure\`, ≥ ${MEASURE_NS / 1e6} ms CPU each, pairs in a seeded shuffled order), so that a burst of load from elsewhere hits both sides of a ratio; a case's figure is the median of its measurements in a process, then over processes, and a ratio the median of the per-round ratios, then over processes. The operation is \`async () => 1\`. The README pipeline is \`timeout(2 s), retry, circuitBreaker (count window), timeout(500 ms)\`. A process that has called \`runWithDeadline\` pays an \`AsyncLocalStorage\` lookup in every \`execute\` (one that never has, a global read): the cases naming it are measured that way, the others not.\n\n`;
  md += `| case | ns per call (median) | range |\n|---|---:|---:|\n`;
  for (const n of names) {
    const xs = runs.map((r) => r.samples[n]);
    md += `| ${n} | ${fmt(med(n))} | ${fmt(Math.min(...xs))} – ${fmt(Math.max(...xs))} |\n`;
  }
  md += `\n| case | against | ratio (median) | bar | met |\n|---|---|---:|---:|:-:|\n`;
  for (const [a, b, bar] of BARS) {
    const q = ratio(a, b);
    md += `| ${a} | ${b} | ${fmt(q, 3)} | ${bar === undefined ? '(reported)' : `≤ ${bar}`} | ${bar === undefined ? '' : q <= bar ? 'yes' : '**no**'} |\n`;
  }
  md += `\nA chaos policy that is switched off is one boolean check: on its own it costs what any policy's \`execute\` costs over a bare call (a context and a promise); inside a pipeline it is a stage entered inline that does nothing, so the bar is on the pipeline. The breaker's wake-up queue is touched only by transitions, never by a closed breaker's call; "≤ 1.1" leaves room for the noise of a busy machine.\n`;
  writeFileSync(new URL('results/core-issue14.md', import.meta.url), md);
  process.stdout.write(md);
}
