#!/usr/bin/env node
// The `many-requests` command (package.json "bin"). This file is committed, executable, and never rebuilt, so the
// command exists as soon as `npm install` links it and survives `npm run clean && npm run build`; it loads
// the built program and says what to do when that is missing or when Node is too old.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(`many-requests: error: needs Node.js >= 22.19 (this is ${process.version})\n`);
  process.exit(1);
}
const main = new URL('../dist/src/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(
    `many-requests: error: not built (${fileURLToPath(main)} is missing): run \`npm run build\` in the repository\n`,
  );
  process.exit(1);
}
await import(main.href);
