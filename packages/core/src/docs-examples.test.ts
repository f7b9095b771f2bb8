// Runs the examples in README.md and docs/**/*.md, so the docs never lie (as undici's test/examples.js).
// Every ```ts block that imports from '@bulwark/…' is type-checked against the built packages and then
// executed in a child process; it must exit 0 within 30 s. A block preceded by the line
// `<!-- example: no-run -->` is type-checked only (for examples that need a server or the network).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync, existsSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import ts from 'typescript';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));

interface Example {
  file: string;
  line: number;
  code: string;
  execute: boolean;
}

function markdownFiles(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) markdownFiles(full, out);
    else if (name.endsWith('.md')) out.push(full);
  }
  return out;
}

function examples(): Example[] {
  const found: Example[] = [];
  for (const file of [join(root, 'README.md'), ...markdownFiles(join(root, 'docs'))]) {
    if (!existsSync(file)) continue;
    const lines = readFileSync(file, 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (lines[i]!.trim() !== '```ts') continue;
      const start = i;
      const body: string[] = [];
      for (i++; i < lines.length && lines[i]!.trim() !== '```'; i++) body.push(lines[i]!);
      const code = body.join('\n');
      if (!/from '@bulwark\//.test(code)) continue;
      const execute = !(lines[start - 1] ?? '').includes('example: no-run');
      found.push({ file: relative(root, file), line: start + 1, code, execute });
    }
  }
  return found;
}

it('README and docs examples type-check and run', { timeout: 180_000 }, async () => {
  const all = examples();
  assert.ok(all.length >= 1, 'expected at least the README example');
  const dir = join(root, '.tmp', `examples-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    const names = all.map((ex, i) => {
      const name = join(dir, `${ex.file.replace(/[^a-z0-9]+/gi, '_')}_L${ex.line}_${i}.mts`);
      writeFileSync(name, `${ex.code}\nexport {};\n`);
      return name;
    });
    const program = ts.createProgram(names, {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file
        ? `${relative(dir, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}`
        : '';
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
    assert.deepEqual(diagnostics, [], 'docs examples must type-check');

    for (const [i, ex] of all.entries()) {
      if (!ex.execute) continue;
      const js = ts.transpileModule(ex.code, {
        compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
      }).outputText;
      const file = names[i]!.replace(/\.mts$/, '.mjs');
      writeFileSync(file, js);
      try {
        await run(process.execPath, [file], { cwd: root, timeout: 30_000 });
      } catch (error) {
        const e = error as { stderr?: string; message: string };
        assert.fail(`example ${ex.file}:${ex.line} failed: ${e.stderr || e.message}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
