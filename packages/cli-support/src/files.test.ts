import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  TempFile,
  removePendingTempFiles,
  sweepTempFiles,
  tempPathFor,
  writeFileAtomic,
  writeFileAtomicSync,
} from './files.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cli-support-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** The id of a process that has ended. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

test("temp names say whose they are; a sweep removes only the program's, of processes that are gone", async () => {
  const target = join(dir, 'out.json');
  const mine = tempPathFor(target, 'http-get');
  assert.match(mine, new RegExp(`/\\.out\\.json\\.http-get\\.${process.pid}\\.[0-9a-f]{12}\\.tmp$`));
  const dead = `.out.json.http-get.${deadPid()}.0123456789ab.tmp`;
  const other = `.out.json.many-requests.${deadPid()}.0123456789ab.tmp`;
  for (const name of [dead, other]) await writeFile(join(dir, name), 'x');
  await writeFile(mine, 'x');
  assert.deepEqual(await sweepTempFiles(dir, 'http-get'), [dead]);
  const left = await readdir(dir);
  assert.ok(left.includes(other) && !left.includes(dead));
  await rm(mine);
  await rm(join(dir, other));
  assert.throws(() => tempPathFor(target, 'Bad Name'), TypeError);
});

test('a temp file: renamed over the target through a symlink, the mode kept; abort and a hard exit leave nothing', async () => {
  const target = join(dir, 'data.txt');
  await writeFile(target, 'old');
  await chmod(target, 0o640);
  await symlink('data.txt', join(dir, 'latest'));
  const file = await TempFile.open(join(dir, 'latest'), 'many-requests');
  await file.write(Buffer.from('new'));
  assert.equal(await readFile(target, 'utf8'), 'old');
  await file.commit();
  assert.equal(await readFile(join(dir, 'latest'), 'utf8'), 'new');
  assert.equal((await stat(target)).mode & 0o777, 0o640);

  const aborted = await TempFile.open(target, 'many-requests');
  await aborted.abort();
  const pending = await TempFile.open(target, 'many-requests');
  removePendingTempFiles();
  await pending.handle.close();
  assert.deepEqual((await readdir(dir)).sort(), ['data.txt', 'latest']);
  await assert.rejects(TempFile.open(dir, 'many-requests'), { code: 'EISDIR' });
});

test('writeFileAtomic replaces a file whole, writes into a device, and refuses a protected file', async () => {
  const target = join(dir, 'run.prom');
  await writeFileAtomic(target, Buffer.from('a 1\n'), 'http-get');
  assert.equal(await readFile(target, 'utf8'), 'a 1\n');
  writeFileAtomicSync(target, 'a 2\n', 'http-get');
  assert.equal(await readFile(target, 'utf8'), 'a 2\n');
  await writeFileAtomic('/dev/null', Buffer.from('x'), 'http-get');
  assert.ok((await stat('/dev/null')).isCharacterDevice());
  if (process.getuid?.() !== 0) {
    await chmod(target, 0o444);
    await assert.rejects(writeFileAtomic(target, Buffer.from('b'), 'http-get'), {
      message: /^the file exists and is not writable by this user \(EACCES\); left as it is$/,
    });
  }
  assert.deepEqual(
    (await readdir(dir)).filter((n) => n.endsWith('.tmp')),
    [],
  );
});
