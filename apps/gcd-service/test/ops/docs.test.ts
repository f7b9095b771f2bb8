/**
 * docs/ops and deploy/README.md: every relative link resolves (file and heading), the load-testing
 * report and the capacity plan carry the numbers of the committed load-test run (ops/loadtest/last-run.json)
 * with the command that produced them, and the Deployment's memory request covers the RSS measured there.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { loadYamlDocuments, readRepoFile, REPO_ROOT, repoPath } from './support.js';

const DOCS = [
  ...readdirSync(repoPath('docs', 'ops'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join('docs', 'ops', f)),
  join('deploy', 'README.md'),
];

/** GitHub's anchor for a heading. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function headings(markdown: string): Set<string> {
  const withoutCode = markdown.replace(/```[\s\S]*?```/g, '');
  return new Set([...withoutCode.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchor(m[1]!)));
}

interface LoadTestRun {
  date: string;
  command: string;
  quick: boolean;
  machine: { cores: number; node: string };
  service: { idleRssMiB: number; endRssMiB: number; shutdown: { exitCode: number } };
  points: Array<{
    name: string;
    scenario: string;
    okPerSecond: number;
    okPerServerCore: number;
    rssMiB: number;
  }>;
}

const RUN = JSON.parse(readRepoFile('ops', 'loadtest', 'last-run.json')) as LoadTestRun;

describe('docs/ops links', () => {
  test('every relative link points at an existing file, and at an existing heading', () => {
    const broken: string[] = [];
    for (const doc of DOCS) {
      const text = readRepoFile(doc).replace(/```[\s\S]*?```/g, '');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const [file, hash] = target!.split('#') as [string, string | undefined];
        const path = file === '' ? repoPath(doc) : join(REPO_ROOT, dirname(doc), file);
        if (!existsSync(path)) {
          broken.push(`${doc}: ${target} (no file ${relative(REPO_ROOT, path)})`);
          continue;
        }
        if (
          hash !== undefined &&
          path.endsWith('.md') &&
          !headings(readRepoFile(relative(REPO_ROOT, path))).has(hash)
        ) {
          broken.push(`${doc}: ${target} (no heading #${hash})`);
        }
      }
    }
    assert.deepEqual(broken, []);
  });

  test('the ops pages exist', () => {
    for (const page of [
      'runbook.md',
      'incident-response.md',
      'backup-and-recovery.md',
      'load-testing.md',
      'capacity-plan.md',
      'checklist.md',
    ]) {
      assert.ok(existsSync(repoPath('docs', 'ops', page)), page);
    }
  });
});

describe('the load-testing report and the capacity plan', () => {
  const report = readRepoFile('docs', 'ops', 'load-testing.md');
  const plan = readRepoFile('docs', 'ops', 'capacity-plan.md');
  const small = RUN.points.filter((p) => p.scenario === 'small');
  const big = RUN.points.filter((p) => p.scenario === 'big');
  const best = small.reduce((a, b) => (b.okPerSecond > a.okPerSecond ? b : a));
  const bestBig = big.reduce((a, b) => (b.okPerSecond > a.okPerSecond ? b : a));

  test('come from a full run (not --quick) that stopped cleanly, made with `npm run loadtest`', () => {
    assert.equal(RUN.quick, false, 'ops/loadtest/last-run.json is from a --quick run');
    assert.equal(RUN.command, 'npm run loadtest');
    assert.equal(RUN.service.shutdown.exitCode, 0);
    const scripts = (JSON.parse(readRepoFile('package.json')) as { scripts: Record<string, string> }).scripts;
    assert.equal(scripts.loadtest, 'npm run build && node ops/loadtest/run.mjs');
  });

  test('the report names the command, the machine (shared) and the numbers of the run', () => {
    assert.match(report, /`npm run loadtest`/);
    assert.match(report, /shared/i);
    assert.ok(report.includes(RUN.date.slice(0, 10)), 'the run date');
    assert.ok(report.includes(`Node ${RUN.machine.node}`), 'the Node version');
    for (const p of RUN.points) {
      assert.ok(report.includes(`| ${p.name} |`), `a row for ${p.name}`);
      assert.ok(
        report.includes(`| ${p.okPerSecond.toFixed(0)} |`),
        `${p.name}: ${p.okPerSecond.toFixed(0)} ok req/s`,
      );
    }
  });

  test('the capacity plan block carries the same run', () => {
    const block = /<!-- loadtest:begin[\s\S]*?<!-- loadtest:end -->/.exec(plan)?.[0] ?? '';
    assert.ok(block.includes(RUN.date.slice(0, 10)), 'the block is from the committed run');
    assert.ok(block.includes(`| ${best.okPerServerCore.toFixed(0)} req/s |`), 'small inputs per core');
    assert.ok(block.includes(`| ${bestBig.okPerServerCore.toFixed(0)} req/s |`), 'big inputs per core');
    const maxRss = Math.max(...RUN.points.map((p) => p.rssMiB), RUN.service.endRssMiB);
    assert.ok(block.includes(`${maxRss.toFixed(0)} MiB`), 'largest RSS');
  });

  test('the Deployment requests at least the largest RSS the load test measured', () => {
    const deployment = loadYamlDocuments<Record<string, any>>('deploy', 'k8s', 'deployment.yaml')[0]!; // eslint-disable-line @typescript-eslint/no-explicit-any
    const memory = String(deployment.spec.template.spec.containers[0].resources.requests.memory);
    const m = /^(\d+)Mi$/.exec(memory);
    assert.ok(m !== null, `memory request ${memory} in Mi`);
    const maxRss = Math.max(...RUN.points.map((p) => p.rssMiB), RUN.service.endRssMiB);
    assert.ok(Number(m[1]) >= maxRss, `memory request ${memory} < largest RSS ${maxRss.toFixed(0)} MiB`);
  });
});
