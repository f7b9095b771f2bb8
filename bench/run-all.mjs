// `npm run bench`: runs the benchmark suites named on the command line (default: all), each writing
// results/<suite>.md, then assembles docs/benchmarks.md from every results/*.md with the machine header.
// Usage: npm run bench [-- core gcd-service many-requests]   (`-- --assemble-only` rewrites the page from
// the committed results without measuring)
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const suites = {
  core: ['core-run.mjs'],
  hedge: ['hedge.mjs'],
  throttle: ['throttle.mjs'],
  'gcd-service': ['gcd-service.mjs'],
  'gcd-cost': ['gcd-cost.mjs'],
  'many-requests': ['many-requests.mjs'],
  'http-get': ['http-get.mjs'],
};
const args = process.argv.slice(2);
const assembleOnly = args.includes('--assemble-only');
const named = args.filter((a) => !a.startsWith('--'));
const chosen = assembleOnly ? [] : named.length ? named : Object.keys(suites);
for (const name of chosen) {
  if (!suites[name]) throw new Error(`unknown suite ${name}; one of ${Object.keys(suites).join(', ')}`);
  if (!existsSync(`${here}${suites[name][0]}`)) {
    console.error(`skipping ${name}: ${suites[name][0]} not found`);
    continue;
  }
  console.error(`== ${name}`);
  execFileSync(process.execPath, suites[name], { cwd: here, stdio: ['ignore', 'ignore', 'inherit'] });
}

const versions = Object.fromEntries(
  ['cockatiel', 'opossum', 'mitata', 'autocannon', 'undici', 'fastify'].map((p) => {
    try {
      return [
        p,
        JSON.parse(readFileSync(new URL(`../node_modules/${p}/package.json`, import.meta.url), 'utf8'))
          .version,
      ];
    } catch {
      return [p, 'n/a'];
    }
  }),
);
const cpu = os.cpus();
let md = `# Benchmarks\n\nEvery number here was measured by a committed script, side by side with its competitor and a bare baseline in the same run; compare the ratios, not the absolute numbers (the machine is a shared VM).\n\n`;
md += `- Machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()}\n`;
md += `- Node ${process.version}; ${Object.entries(versions)
  .map(([k, v]) => `${k} ${v}`)
  .join(', ')}\n`;
md += `- Regenerate: \`npm run bench\` (all suites) or \`npm run bench -- core\`; each suite's section says its own command.\n\n`;
for (const f of readdirSync(`${here}results`)
  .filter((f) => f.endsWith('.md'))
  .sort())
  md += readFileSync(`${here}results/${f}`, 'utf8') + '\n';
writeFileSync(new URL('../docs/benchmarks.md', import.meta.url), md);
console.error('wrote docs/benchmarks.md');
