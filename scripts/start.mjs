#!/usr/bin/env node
// `npm start`: the gcd service on embedded defaults (no Redis, no collector needed). The `prestart`
// script builds it first. The service runs in this process (no child of ours), and package.json runs it
// as `exec node scripts/start.mjs`: npm's shell (dash) would otherwise sit between npm and this process,
// die of the SIGTERM npm forwards to it and leave the service running with no parent. With `exec`, npm's
// child is this process: a supervisor's SIGTERM (or SIGINT) to npm reaches it, the service drains, and
// npm exits once it has. A terminal's Ctrl-C reaches both npm and this process; npm forwards it once
// more, and the shutdown treats the same signal twice at once as one (it is not a "second signal").
import { existsSync } from 'node:fs';
import { requireSupportedNode } from './node-version.mjs';

requireSupportedNode('npm start');

const main = new URL('../apps/gcd-service/dist/src/main.js', import.meta.url);
if (!existsSync(main)) {
  console.error('gcd-service is not built (the prestart build should have made it): run `npm run build`.');
  process.exit(1);
}
process.setSourceMapsEnabled?.(true);
await import(main.href);
