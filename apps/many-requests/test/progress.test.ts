// The progress bar on a (fake) terminal: it hides the cursor while drawn, and a hard exit shows it again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FetchAllStats } from '@bulwark/http';
import { Progress, wantProgress } from '../src/progress.js';

const stats: FetchAllStats = {
  read: 3,
  completed: 1,
  ok: 1,
  inFlight: 2,
  retries: 0,
  retriesDenied: 0,
  hedges: 0,
  throttled: 0,
  breakerTrips: new Map(),
  waiting: 0,
};

test('a hard exit (second Ctrl-C) shows the cursor again; a stopped bar leaves no exit listener', () => {
  let out = '';
  const tty = { isTTY: true, columns: 80, write: (s: string) => ((out += s), true) };
  const before = process.listeners('exit');
  const bar = new Progress(tty as unknown as NodeJS.WritableStream, () => stats);
  const added = process.listeners('exit').filter((l) => !before.includes(l));
  assert.equal(added.length, 1, 'one exit listener while the bar is drawn');
  bar.tick();
  assert.ok(out.includes('\x1b[?25l'), 'the cursor is hidden');
  added[0]!(130); // what process.exit(130) runs
  assert.ok(out.lastIndexOf('\x1b[?25h') > out.lastIndexOf('\x1b[?25l'), 'the cursor is shown again');
  assert.deepEqual(process.listeners('exit'), before);
  bar.stop(); // idempotent
  const second = new Progress(tty as unknown as NodeJS.WritableStream, () => stats);
  second.stop();
  assert.deepEqual(process.listeners('exit'), before, 'stop() removes the listener');
});

test('a bar only on a terminal, not with -q or -v, not while NDJSON goes to the same terminal', () => {
  const base = { quiet: false, json: false, stderrIsTTY: true, stdoutIsTTY: false };
  assert.equal(wantProgress(base), true);
  assert.equal(wantProgress({ ...base, quiet: true }), false);
  assert.equal(wantProgress({ ...base, verbose: true }), false, '-v lines would tear through the bar');
  assert.equal(wantProgress({ ...base, stderrIsTTY: false }), false);
  assert.equal(wantProgress({ ...base, stdoutIsTTY: true }), false);
  assert.equal(wantProgress({ ...base, stdoutIsTTY: true, json: true }), true);
});

test('no frame before a URL was read, and the first one is not a full bar at "0/0 URLs"', () => {
  let out = '';
  const tty = { isTTY: true, columns: 120, write: (s: string) => ((out += s), true) };
  let current: FetchAllStats = { ...stats, read: 0, completed: 0, ok: 0 };
  const bar = new Progress(tty as unknown as NodeJS.WritableStream, () => current);
  try {
    bar.tick();
    assert.equal(out, '', 'nothing drawn while nothing was read');
    current = { ...stats, read: 40, completed: 0, ok: 0, waiting: 3 };
    bar.tick();
    assert.match(out, / 0\/40 URLs \| 0 ok, 0 failed, 3 waiting for a host/);
    assert.doesNotMatch(out, /0\/0 URLs/);
    assert.doesNotMatch(out, /█{10}/, 'no full bar');
  } finally {
    bar.stop();
  }
});
