import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { addFlags, buildOptions, flag, optionsTableProblems, setPath, type Flag } from './flags.js';
import { integer } from './parsers.js';

const TABLE: readonly Flag[] = [
  flag({
    flags: '--retries <n>',
    parse: integer(0, 100),
    default: 2,
    target: 'retry.maxAttempts',
    to: (n: number) => n + 1,
    doc: 'retries after the first attempt',
  }),
  flag({ flags: '--wait-ms <ms>', parse: integer(0, 10), default: 0, target: 'waitMs', doc: 'wait' }),
  flag({ flags: '--wait <s>', parse: integer(0, 10), target: 'waitMs', doc: 'the same, later row wins' }),
  flag({
    flags: '--no-breaker',
    defaultText: 'on',
    target: 'breaker',
    to: (on: boolean) => (on ? {} : false),
    doc: 'no breaker',
  }),
  flag({ flags: '--open-ms <ms>', parse: integer(1, 10), default: 5, target: 'breaker.openMs', doc: 'open' }),
  flag({ flags: '-o, --output <file>', defaultText: 'stdout', doc: 'write to FILE' }),
  flag({ flags: '-V, --version', builtin: 'version', doc: 'print the version' }),
];

function parse(argv: string[]): { options: Record<string, unknown>; help: string } {
  let help = '';
  const cmd = addFlags(new Command('t'), TABLE, '1.2.3')
    .exitOverride()
    .configureOutput({ writeOut: (s) => (help += s), writeErr: () => {} });
  cmd.parse(argv, { from: 'user' });
  return { options: buildOptions(TABLE, cmd.opts()), help: cmd.helpInformation() };
}

test('the library options come from the rows: defaults, conversions, a later row winning, nothing under false', () => {
  assert.deepEqual(parse([]).options, { retry: { maxAttempts: 3 }, waitMs: 0, breaker: { openMs: 5 } });
  assert.deepEqual(parse(['--retries', '0', '--wait', '7', '--open-ms', '9']).options, {
    retry: { maxAttempts: 1 },
    waitMs: 7,
    breaker: { openMs: 9 },
  });
  assert.deepEqual(parse(['--no-breaker', '--open-ms', '9']).options.breaker, false);
});

test('--help shows each row with its default (a value default, or a text one for a flag taking a value)', () => {
  const { help } = parse([]);
  assert.match(help, /--retries <n> +retries after the first attempt \(default: 2\)/);
  assert.match(help, /-o, --output <file> +write to FILE \(default: stdout\)/);
  assert.match(help, /--no-breaker +no breaker\n/);
  assert.match(help, /-V, --version +print the version/);
});

test('setPath creates objects on the way and writes nothing under a false', () => {
  const o: Record<string, unknown> = { off: false };
  setPath(o, 'a.b.c', 1);
  setPath(o, 'off.x', 2);
  assert.deepEqual(o, { off: false, a: { b: { c: 1 } } });
});

test('the docs table is checked row for row: flags, default and the doc line starting the last column', () => {
  const rows = [
    '| `--retries <n>` | `2` | Retries after the first attempt (0–100). |',
    '| `--wait-ms <ms>` | `0` | Wait. |',
    '| `--wait <s>` | | The same, later row wins. |',
    '| `--no-breaker` | on | No breaker. |',
    '| `--open-ms <ms>` | `5` | Open. |',
    '| `-o, --output <file>` | stdout | Write to FILE. |',
    '| `-V, --version` | | Print the version. |',
  ];
  const page = (lines: string[]): string =>
    ['# t', '', '| option | default | meaning |', '|---|---|---|', ...lines, '', 'after'].join('\n');
  assert.deepEqual(optionsTableProblems(page(rows), TABLE), []);
  const wrongDefault = rows.with(1, '| `--wait-ms <ms>` | `10` | Wait. |');
  assert.match(optionsTableProblems(page(wrongDefault), TABLE).join('\n'), /row 2 .*--wait-ms/);
  assert.match(optionsTableProblems(page(rows.slice(0, -1)), TABLE).join('\n'), /no docs row for -V/);
  assert.match(optionsTableProblems(page([...rows, '| `--x` | | X. |']), TABLE).join('\n'), /row 8/);
  assert.deepEqual(optionsTableProblems('no table', TABLE), [
    'no options table (a header "| option | default | meaning |")',
  ]);
});
