#!/usr/bin/env node
// `npm start`: the gcd service on embedded defaults (no Redis, no collector needed).
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const main = `${root}apps/gcd-service/dist/src/main.js`;
if (!existsSync(main)) {
  console.error('gcd-service is not built (the prestart build should have made it).');
  process.exit(1);
}
const child = spawn(process.execPath, ['--enable-source-maps', main], { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGINT' ? 130 : 143)));
