/**
 * ops/prometheus: `promtool check rules` and `promtool test rules` on the committed files, and the
 * structure around them — every alert has severity, summary, description and a runbook link; every alert
 * has a runbook entry and every entry an alert; every alert has a firing and a non-firing unit test.
 *
 * promtool comes from the Debian package `prometheus` (.ci/run installs it). When it is missing the
 * promtool test fails with a message saying how to install it; outside CI, `BULWARK_SKIP_PROMTOOL=1`
 * turns that failure into a passing test that says it did not run.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadYaml, promqlSelectors, readRepoFile, repoPath } from './support.js';

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: Array<{ name: string; interval?: string; rules: Rule[] }>;
}
interface AlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts?: Array<{ exp_labels?: Record<string, string>; exp_annotations?: Record<string, string> }>;
}
interface TestFile {
  rule_files: string[];
  evaluation_interval?: string;
  tests: Array<{ name?: string; interval?: string; alert_rule_test?: AlertTest[] } & Record<string, unknown>>;
}

const RULES = loadYaml<RuleFile>('ops', 'prometheus', 'rules.yml');
const rules = RULES.groups.flatMap((g) => g.rules);
const alerts = rules.filter((r): r is Rule & { alert: string } => r.alert !== undefined);
const records = rules.filter((r): r is Rule & { record: string } => r.record !== undefined);
const TEST_FILES = readdirSync(repoPath('ops', 'prometheus'))
  .filter((f) => f.endsWith('.test.yml'))
  .sort();
const RUNBOOK = readRepoFile('docs', 'ops', 'runbook.md');

/** GitHub's anchor for a heading: lower case, spaces to dashes, punctuation dropped. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The `### Name` entries under `## Alerts`, with their text. */
function runbookEntries(): Map<string, string> {
  const start = RUNBOOK.indexOf('\n## Alerts\n');
  assert.ok(start !== -1, 'docs/ops/runbook.md has an "## Alerts" section');
  const rest = RUNBOOK.slice(start + '\n## Alerts\n'.length);
  const end = rest.search(/\n## /);
  const section = end === -1 ? rest : rest.slice(0, end);
  const entries = new Map<string, string>();
  const parts = section.split(/^### /m).slice(1);
  for (const part of parts) {
    const newline = part.indexOf('\n');
    entries.set(part.slice(0, newline).trim(), part.slice(newline + 1));
  }
  return entries;
}

describe('ops/prometheus/rules.yml', () => {
  test('has alerts and recording rules', () => {
    assert.ok(alerts.length >= 10, `expected at least 10 alerts, found ${alerts.length}`);
    assert.ok(records.length >= 10, `expected at least 10 recording rules, found ${records.length}`);
  });

  test('recording rules are named level:metric:operations and defined once', () => {
    const seen = new Set<string>();
    for (const r of records) {
      assert.match(r.record, /^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/, r.record);
      assert.ok(!seen.has(r.record), `${r.record} defined twice`);
      seen.add(r.record);
    }
  });

  test('a recording rule is used only after it is defined in the same group, or in an earlier group', () => {
    // Rules in one group run in order; a rule reading a later one would see the previous evaluation.
    const defined = new Set<string>();
    for (const group of RULES.groups) {
      for (const rule of group.rules) {
        for (const s of promqlSelectors(rule.expr)) {
          if (records.some((r) => r.record === s.name)) {
            assert.ok(
              defined.has(s.name),
              `${rule.alert ?? rule.record} reads ${s.name} before it is recorded`,
            );
          }
        }
        if (rule.record !== undefined) defined.add(rule.record);
      }
    }
  });

  test('every alert has a unique name, severity page|ticket, summary, description and runbook_url', () => {
    const names = new Set<string>();
    for (const a of alerts) {
      assert.match(a.alert, /^[A-Z][A-Za-z0-9]+$/, `alert name ${a.alert}`);
      assert.ok(!names.has(a.alert), `${a.alert} defined twice`);
      names.add(a.alert);
      assert.ok(['page', 'ticket'].includes(a.labels?.severity ?? ''), `${a.alert}: severity page|ticket`);
      for (const key of ['summary', 'description', 'runbook_url']) {
        const value = a.annotations?.[key];
        assert.ok(typeof value === 'string' && value.trim().length > 10, `${a.alert}: annotation ${key}`);
      }
      assert.equal(
        a.annotations!.runbook_url,
        `docs/ops/runbook.md#${anchor(a.alert)}`,
        `${a.alert}: runbook_url`,
      );
    }
  });

  test('the SLO alerts use the SRE workbook burn rates and windows', () => {
    const expr = (name: string) => alerts.find((a) => a.alert === name)?.expr.replace(/\s+/g, ' ') ?? '';
    for (const [alert, budget, metric] of [
      ['GcdServiceErrorBudgetBurn', '0.001', 'slo_errors_per_request'],
      ['GcdServiceLatencyBudgetBurn', '0.01', 'slo_latency_slow_per_request'],
    ] as const) {
      const e = expr(alert);
      assert.ok(e.includes(`job:${metric}:ratio_rate1h{job="gcd-service"} > (14.4 * ${budget})`), alert);
      assert.ok(e.includes(`job:${metric}:ratio_rate5m{job="gcd-service"} > (14.4 * ${budget})`), alert);
      assert.ok(e.includes(`job:${metric}:ratio_rate6h{job="gcd-service"} > (6 * ${budget})`), alert);
      assert.ok(e.includes(`job:${metric}:ratio_rate30m{job="gcd-service"} > (6 * ${budget})`), alert);
      assert.equal(alerts.find((a) => a.alert === alert)?.labels?.severity, 'page');
      const slow = expr(`${alert}Slow`);
      assert.ok(slow.includes(`job:${metric}:ratio_rate3d{job="gcd-service"} > ${budget}`), `${alert}Slow`);
      assert.ok(slow.includes(`job:${metric}:ratio_rate6h{job="gcd-service"} > ${budget}`), `${alert}Slow`);
      assert.equal(alerts.find((a) => a.alert === `${alert}Slow`)?.labels?.severity, 'ticket');
    }
  });

  test('a missing target is alerted with absent(up{job="gcd-service"})', () => {
    assert.ok(alerts.some((a) => a.expr.replace(/\s/g, '') === 'absent(up{job="gcd-service"})'));
  });
});

describe('docs/ops/runbook.md', () => {
  const entries = runbookEntries();

  test('every alert has a runbook entry', () => {
    const missing = alerts.map((a) => a.alert).filter((name) => !entries.has(name));
    assert.deepEqual(missing, [], 'alerts without a "### <AlertName>" entry under "## Alerts"');
  });

  test('every runbook entry has an alert', () => {
    const names = new Set(alerts.map((a) => a.alert));
    const orphans = [...entries.keys()].filter((name) => !names.has(name));
    assert.deepEqual(orphans, [], 'runbook entries for alerts that rules.yml does not define');
  });

  test('every entry says what it means, how to check, mitigate and roll back, with the alert severity', () => {
    for (const a of alerts) {
      const text = entries.get(a.alert) ?? '';
      for (const part of ['What it means.', 'How to check.', 'How to mitigate.', 'How to roll back.']) {
        assert.ok(text.includes(`**${part}**`), `${a.alert}: "**${part}**"`);
      }
      assert.match(
        text,
        new RegExp(`\\*\\*Severity\\*\\*: ${a.labels!.severity}\\b`),
        `${a.alert}: severity line`,
      );
    }
  });

  test('links between entries point at existing headings', () => {
    const headings = new Set([...RUNBOOK.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchor(m[1]!)));
    for (const [, target] of RUNBOOK.matchAll(/\]\(#([^)]+)\)/g)) {
      assert.ok(headings.has(target!), `link to #${target} has no heading`);
    }
  });
});

describe('ops/prometheus/*.test.yml', () => {
  const files = TEST_FILES.map((f) => ({ file: f, data: loadYaml<TestFile>('ops', 'prometheus', f) }));

  test('there are unit-test files, and they load rules.yml', () => {
    assert.ok(files.length >= 1);
    for (const { file, data } of files) assert.deepEqual(data.rule_files, ['rules.yml'], file);
  });

  test('use only test-file fields that promtool 2.42 knows', () => {
    const top = new Set(['rule_files', 'evaluation_interval', 'group_eval_order', 'tests']);
    const perTest = new Set([
      'name',
      'interval',
      'input_series',
      'alert_rule_test',
      'promql_expr_test',
      'external_labels',
      'external_url',
    ]);
    for (const { file, data } of files) {
      for (const key of Object.keys(data)) assert.ok(top.has(key), `${file}: unknown top-level field ${key}`);
      for (const t of data.tests) {
        for (const key of Object.keys(t))
          assert.ok(perTest.has(key), `${file} (${t.name}): unknown field ${key}`);
      }
    }
  });

  test('every alert has a case where it fires and a case where it does not', () => {
    const firing = new Set<string>();
    const silent = new Set<string>();
    for (const { data } of files) {
      for (const t of data.tests) {
        for (const a of t.alert_rule_test ?? []) {
          ((a.exp_alerts ?? []).length > 0 ? firing : silent).add(a.alertname);
        }
      }
    }
    for (const a of alerts) {
      assert.ok(firing.has(a.alert), `${a.alert}: no test where it fires`);
      assert.ok(silent.has(a.alert), `${a.alert}: no test where it stays silent`);
    }
    const names = new Set(alerts.map((a) => a.alert));
    for (const name of [...firing, ...silent])
      assert.ok(names.has(name), `tests name an unknown alert ${name}`);
  });
});

describe('promtool', () => {
  test('check rules and test rules pass', { timeout: 300_000 }, (t) => {
    const which = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
    if (which.error !== undefined) {
      const message =
        'promtool is not on PATH. Install it with `apt-get install --no-install-recommends prometheus` ' +
        '(Debian; .ci/run does this), or get it from a Prometheus release.';
      if (process.env.CI === undefined && process.env.BULWARK_SKIP_PROMTOOL === '1') {
        t.diagnostic(`NOT RUN (BULWARK_SKIP_PROMTOOL=1): ${message}`);
        return;
      }
      assert.fail(`${message} Outside CI, BULWARK_SKIP_PROMTOOL=1 lets the suite pass without it.`);
    }
    const cwd = repoPath('ops', 'prometheus');
    const check = spawnSync('promtool', ['check', 'rules', 'rules.yml'], { cwd, encoding: 'utf8' });
    assert.equal(check.status, 0, `promtool check rules:\n${check.stdout}${check.stderr}`);
    assert.match(check.stdout + check.stderr, new RegExp(`SUCCESS: ${rules.length} rules found`));

    const run = spawnSync('promtool', ['test', 'rules', ...TEST_FILES], {
      cwd,
      encoding: 'utf8',
      timeout: 280_000,
    });
    assert.equal(run.status, 0, `promtool test rules:\n${run.stdout}${run.stderr}`);
    const successes = (run.stdout + run.stderr).match(/SUCCESS/g) ?? [];
    assert.equal(successes.length, TEST_FILES.length, run.stdout + run.stderr);
  });

  test(
    'a broken expectation makes promtool test rules fail (the tests can fail)',
    { timeout: 120_000 },
    (t) => {
      const which = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
      if (which.error !== undefined) {
        if (process.env.CI === undefined && process.env.BULWARK_SKIP_PROMTOOL === '1') {
          t.diagnostic('NOT RUN (BULWARK_SKIP_PROMTOOL=1): promtool is not on PATH');
          return;
        }
        assert.fail('promtool is not on PATH (see the test above).');
      }
      // rules.test.yml with its first firing expectation emptied: promtool must report the alert it got.
      const text = readRepoFile('ops', 'prometheus', 'rules.test.yml');
      const broken = text
        .replace(
          /exp_alerts:\n\s+- exp_labels:[\s\S]*?(?=\n\s+(?:- eval_time|promql_expr_test|- name|#))/,
          'exp_alerts: []',
        )
        .replace(
          /rule_files:\n\s+- rules\.yml/,
          `rule_files:\n  - ${JSON.stringify(repoPath('ops', 'prometheus', 'rules.yml'))}`,
        );
      assert.notEqual(broken, text, 'could not find a firing expectation to remove');
      const dir = mkdtempSync(join(tmpdir(), 'bulwark-promtool-'));
      try {
        writeFileSync(join(dir, 'broken.test.yml'), broken);
        const run = spawnSync('promtool', ['test', 'rules', 'broken.test.yml'], {
          cwd: dir,
          encoding: 'utf8',
          timeout: 100_000,
        });
        assert.notEqual(run.status, 0, 'promtool accepted a test file with a wrong expectation');
        // it failed on the expectation (an alert it got but was told not to expect), not on a missing file
        assert.match(
          run.stdout + run.stderr,
          /FAILED[\s\S]*exp:\[\][\s\S]*got:\[\s*0:\s*Labels:\{alertname="GcdService/,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
