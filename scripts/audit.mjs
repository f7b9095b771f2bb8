#!/usr/bin/env node
// Dependency audit (`npm run audit`; CI runs it): `npm audit` of the runtime tree — what the published
// packages and the programs install, devDependencies left out — with one line per vulnerable package.
// Exit 1 on a high or critical advisory. Exit 0 with a note saying so when the advisory service cannot
// be reached or will not answer (offline, or a registry mirror without the audit endpoint): nothing was
// checked, and CI goes on. Exit 2 when npm audit fails for any other reason (no lockfile, bad config).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const r = spawnSync('npm', ['audit', '--omit=dev', '--json'], {
  cwd: root,
  encoding: 'utf8',
  timeout: 120_000,
});

let report;
try {
  report = JSON.parse(r.stdout);
} catch {
  const why =
    r.error?.code === 'ETIMEDOUT' ? 'no answer within 120 s' : (r.stderr || r.error?.message || '').trim();
  console.log(`audit: NOT CHECKED — the advisory service cannot be reached (${why.split('\n')[0]})`);
  process.exit(0);
}

if (report.error !== undefined) {
  const message = report.message ?? report.error.summary ?? report.error.code ?? 'unknown error';
  if (/\/-\/npm\/v1\/security\//.test(message) || /audit endpoint/i.test(report.error.summary ?? '')) {
    console.log(`audit: NOT CHECKED — the advisory service cannot be reached or will not answer: ${message}`);
    process.exit(0);
  }
  console.log(`audit: npm audit failed: ${message}${report.error.detail ? `\n${report.error.detail}` : ''}`);
  process.exit(2);
}

const counts = report.metadata?.vulnerabilities ?? {};
const failing = (counts.high ?? 0) + (counts.critical ?? 0);
console.log(
  `audit (runtime dependencies): ${['critical', 'high', 'moderate', 'low', 'info'].map((s) => `${counts[s] ?? 0} ${s}`).join(', ')}`,
);
for (const [name, info] of Object.entries(report.vulnerabilities ?? {})) {
  const titles = info.via.filter((v) => typeof v === 'object').map((v) => `${v.title} (${v.url})`);
  const via = titles.length > 0 ? titles.join('; ') : `through ${info.via.join(', ')}`;
  console.log(`  ${info.severity.padEnd(8)} ${name}${info.range ? ` ${info.range}` : ''}: ${via}`);
}
if (failing > 0) {
  console.log(
    `audit: FAILED — ${failing} high or critical; upgrade (npm audit fix, or a newer major) or replace them`,
  );
  process.exit(1);
}
