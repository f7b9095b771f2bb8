#!/usr/bin/env node
// `npm run clean`: removes every workspace's build output (dist/ and tsconfig.tsbuildinfo). Not
// `tsc -b --clean` alone: it deletes only the outputs of today's sources, so the output of a deleted or
// moved source file would stay behind (and be packed).
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
for (const top of ['packages', 'apps']) {
  if (!existsSync(join(root, top))) continue;
  for (const name of readdirSync(join(root, top))) {
    rmSync(join(root, top, name, 'dist'), { recursive: true, force: true });
    rmSync(join(root, top, name, 'tsconfig.tsbuildinfo'), { force: true });
  }
}
