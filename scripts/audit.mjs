#!/usr/bin/env node
// Dependency audit: `npm audit` on the runtime tree, reported in one line per severity.
// Exit 0 when the advisory service cannot be reached (offline CI must not fail on it); exit 1 on
// high or critical advisories in runtime dependencies.
import { spawnSync } from 'node:child_process';

const r = spawnSync('npm', ['audit', '--omit=dev', '--json'], { encoding: 'utf8', timeout: 60_000 });
let report;
try {
  report = JSON.parse(r.stdout);
} catch {
  console.log(
    `audit: no report (advisory service unreachable?): ${(r.stderr || r.error?.message || '').trim().split('\n')[0]}`,
  );
  process.exit(0);
}
if (report.error) {
  console.log(`audit: advisory service unavailable: ${report.error.summary ?? report.error.code}`);
  process.exit(0);
}
const v = report.metadata?.vulnerabilities ?? {};
console.log(`audit (runtime deps): ${JSON.stringify(v)}`);
for (const [name, info] of Object.entries(report.vulnerabilities ?? {})) {
  console.log(`  ${info.severity.padEnd(8)} ${name} ${info.range ?? ''}`);
}
process.exit((v.high ?? 0) + (v.critical ?? 0) > 0 ? 1 : 0);
