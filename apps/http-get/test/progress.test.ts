// The download bar on a (fake) terminal: only for large bodies; a hard exit shows the cursor again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DownloadProgress, PROGRESS_THRESHOLD_BYTES } from '../src/progress.js';

test('no bar below 1 MiB; a hard exit (second Ctrl-C) shows the cursor again; stop() leaves no listener', () => {
  let out = '';
  const tty = { isTTY: true, columns: 80, write: (s: string) => ((out += s), true) };
  const before = process.listeners('exit');
  const small = new DownloadProgress(tty as unknown as NodeJS.WritableStream);
  small.update(1000, 5000);
  assert.equal(out, '', 'no bar for a small body');
  assert.deepEqual(process.listeners('exit'), before);
  small.stop();

  const big = new DownloadProgress(tty as unknown as NodeJS.WritableStream);
  big.update(1000, PROGRESS_THRESHOLD_BYTES * 3);
  const added = process.listeners('exit').filter((l) => !before.includes(l));
  assert.equal(added.length, 1, 'one exit listener while the bar is drawn');
  assert.ok(out.includes('\x1b[?25l'), 'the cursor is hidden');
  added[0]!(130); // what process.exit(130) runs
  assert.ok(out.lastIndexOf('\x1b[?25h') > out.lastIndexOf('\x1b[?25l'), 'the cursor is shown again');
  assert.deepEqual(process.listeners('exit'), before);
  big.update(2000, PROGRESS_THRESHOLD_BYTES * 3); // after stop: nothing
  big.stop();
  assert.deepEqual(process.listeners('exit'), before);
});
