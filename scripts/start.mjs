#!/usr/bin/env node
// `npm start`: the gcd service on embedded defaults (no Redis, no collector needed). The `prestart`
// script builds it first. The service runs in this process (no child), so a terminal's Ctrl-C or a
// supervisor's SIGTERM reaches it exactly once and starts its graceful shutdown.
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
