// Runs core-cases.mjs in fresh processes (shuffled order each), then core-memory.mjs per subject, and
// writes results/core.md; then core-paths.mjs (the slow paths of issue 14, results/core-paths.md) and
// core-issue14.mjs (the cost of the issue-14 additions, results/core-issue14.md) with the same repetitions.
// Usage: node core-run.mjs [repetitions=5] [calls=1000000] [--node=<binary>]...
// (--node: run every child on that Node binary as well as on this one, e.g. the Node 22 floor).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const positional = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const extraNodes = process.argv.slice(2).filter((a) => a.startsWith('--node='));
const reps = Number(positional[0] ?? 5);
const calls = Number(positional[1] ?? 1_000_000);
const here = fileURLToPath(new URL('.', import.meta.url));
const node = (args) =>
  JSON.parse(
    execFileSync(process.execPath, ['--expose-gc', ...args], {
      cwd: here,
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    }),
  );
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

const runs = [];
for (let r = 1; r <= reps; r++) {
  process.stderr.write(`core cases: repetition ${r}/${reps}\n`);
  runs.push(node(['core-cases.mjs', String(r)]));
}
const names = Object.keys(runs[0]);
const ratio = (a, b) => median(runs.map((run) => run[a].avgNs / run[b].avgNs));
const rows = names.sort().map((n) => ({
  n,
  avg: median(runs.map((r) => r[n].avgNs)),
  min: Math.min(...runs.map((r) => r[n].avgNs)),
  max: Math.max(...runs.map((r) => r[n].avgNs)),
  vsBase: ratio(n, 'baseline: await fn()'),
}));

// The comparisons the foundation issue asks for (ratio of per-call cost, median of per-repetition ratios).
// The pipeline targets compare like for like: the same four policies with the same timeout strategy.
// The rows without a target report the other pairings honestly.
const P = (who, strategy, op) => `pipeline: ${who} (${strategy} timeout), op ${op} signal`;
const compare = [
  [P('bulwark', 'cooperative', 'ignores'), P('cockatiel wrap', 'cooperative', 'ignores'), 1 / 25],
  [P('bulwark', 'cooperative', 'reads'), P('cockatiel wrap', 'cooperative', 'reads'), 1 / 4],
  [P('bulwark', 'aggressive', 'ignores'), P('cockatiel wrap', 'aggressive', 'ignores'), 1 / 25],
  [P('bulwark', 'aggressive', 'reads'), P('cockatiel wrap', 'aggressive', 'reads'), 1 / 4],
  [P('bulwark', 'aggressive', 'ignores'), P('cockatiel wrap', 'cooperative', 'ignores'), undefined],
  [P('bulwark', 'aggressive', 'reads'), P('cockatiel wrap', 'cooperative', 'reads'), undefined],
  ['breaker: bulwark (consecutive)', 'breaker: cockatiel (consecutive)', 1],
  ['breaker: bulwark (consecutive)', 'breaker: cockatiel 3 (consecutive)', undefined],
  ['breaker: bulwark (consecutive)', 'breaker: opossum (timeout: false)', undefined],
  ['breaker: bulwark (consecutive)', 'breaker: opossum 9 (timeout: false)', undefined],
  ['retry: bulwark', 'retry: cockatiel', 1],
  ['retry: bulwark', 'retry: cockatiel 3', undefined],
  [P('bulwark', 'aggressive', 'ignores'), P('cockatiel 3 wrap', 'aggressive', 'ignores'), undefined],
  ['timeout: bulwark (aggressive)', 'timeout: cockatiel (aggressive)', 1],
  ['timeout: bulwark (cooperative)', 'timeout: cockatiel (cooperative)', 1],
  ['bulkhead: bulwark', 'bulkhead: cockatiel', 1],
  ['open breaker: bulwark rejection', 'open breaker: cockatiel rejection', 1 / 3],
  ['open breaker: bulwark rejection', 'open breaker: cockatiel 3 rejection', undefined],
  ['open breaker: bulwark rejection', 'open breaker: opossum rejection', undefined],
  ['open breaker: bulwark rejection', 'open breaker: opossum 9 rejection', undefined],
  ['open breaker: bulwark rejection', 'reject floor: await a pre-allocated rejection', undefined],
];

const memory = [];
for (const subject of [
  'baseline',
  'bulwark-breaker',
  'bulwark-pipeline',
  'cockatiel-wrap',
  'opossum-timeout',
]) {
  process.stderr.write(`memory: ${subject}\n`);
  memory.push(node(['core-memory.mjs', subject, String(calls)]));
}

const versions = ['cockatiel', 'cockatiel3', 'opossum', 'opossum9'].map(
  (p) =>
    `${p} ${JSON.parse(readFileSync(new URL(`../node_modules/${p}/package.json`, import.meta.url), 'utf8')).version}`,
);
let md = `## Policies: per-call cost (\`bench/core-run.mjs\`)\n\n`;
md += `Node ${process.version}; ${versions.join(', ')}. Taken on a shared machine while other work ran: compare the ratios, and re-run in a quiet window for the record.\n\n`;
md += `Command: \`node bench/core-run.mjs ${reps} ${calls}${extraNodes.map((a) => ` ${a}`).join('')}\` (run by \`npm run bench\`; it then runs \`bench/core-paths.mjs\`, the slow paths, on this Node and each one given). ${reps} fresh processes, each runs every case once in a seeded shuffled order with mitata \`measure\` (≥ 300 ms CPU per case); the table gives the median over processes of each case's mean ns/op, and ratios are medians of per-process ratios. The operation is \`async () => 1\`; "reads signal" is \`async (ctx) => ctx.signal.aborted\`. Policies are built once and reused; cockatiel's pipeline is \`wrap(retry, breaker, timeout(strategy), bulkhead)\` and ours is \`pipeline(retry, circuitBreaker, timeout({ strategy }), bulkhead)\` in the same order, each with a cooperative timeout (cockatiel's usual choice, the headline comparison) and with an aggressive one (our default).\n\n`;
md += `| case | mean ns/op (median) | range | × baseline |\n|---|---:|---:|---:|\n`;
for (const r of rows)
  md += `| ${r.n} | ${fmt(r.avg)} | ${fmt(r.min)} – ${fmt(r.max)} | ${fmt(r.vsBase, 2)} |\n`;
md += `\n### Against the targets\n\n| ours | theirs | ours ÷ theirs (median) | target | met |\n|---|---|---:|---:|:-:|\n`;
for (const [a, b, target] of compare) {
  const q = ratio(a, b);
  md +=
    target === undefined
      ? `| ${a} | ${b} | ${fmt(q, 3)} | (reported) | |\n`
      : `| ${a} | ${b} | ${fmt(q, 3)} | ≤ ${fmt(target, 3)} | ${q <= target ? 'yes' : '**no**'} |\n`;
}
md += `\n### Heap growth over ${fmt(calls)} sequential calls\n\nCommand: \`node --expose-gc bench/core-memory.mjs <subject> ${calls}\` (fresh process each; heap after 4 forced GCs, after a 10,000-call warm-up and after the loop).\n\n| subject | heap growth KiB | bytes/call | wall ns/call | max RSS MiB |\n|---|---:|---:|---:|---:|\n`;
for (const m of memory)
  md += `| ${m.subject} | ${fmt(m.growthKiB, 1)} | ${fmt((m.growthKiB * 1024) / m.calls, 2)} | ${fmt(m.wallNsPerCall)} | ${fmt(m.maxRssMiB, 0)} |\n`;
writeFileSync(new URL('results/core.md', import.meta.url), md);
process.stdout.write(md);

// the slow paths of issue 14, on this Node and any other given
execFileSync(
  process.execPath,
  ['core-paths.mjs', String(reps), `--node=${process.execPath}`, ...extraNodes],
  {
    cwd: here,
    stdio: ['ignore', 'ignore', 'inherit'],
  },
);

// the issue-14 additions (chaos off, the breaker's wake-up queue against the previous core, deadlines, …)
execFileSync(process.execPath, ['core-issue14.mjs', String(reps)], {
  cwd: here,
  stdio: ['ignore', 'ignore', 'inherit'],
});
