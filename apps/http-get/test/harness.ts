/**
 * Spawns the BUILT binary (`node apps/http-get/dist/src/main.js`) and collects what it did.
 * (Not a test file: its name does not end in `.test.ts`.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

export interface CliRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

export interface CliOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin (which is then closed); without it stdin is /dev/null. */
  readonly stdin?: string;
  /** A file descriptor for the child's stdout instead of a pipe (e.g. /dev/full); `stdout` is then empty. */
  readonly stdoutFd?: number;
  /** The working directory. */
  readonly cwd?: string;
  /** Called once the child is spawned (to send it signals). */
  readonly onSpawn?: (child: ChildProcess) => void;
  /** Run as this user and group (the test runs as root: a root process may write any file). */
  readonly uid?: number;
  readonly gid?: number;
  /** Kill with SIGKILL after this many ms (a hung CLI fails the test instead of hanging it). @default 30000 */
  readonly killAfterMs?: number;
}

export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: [options.stdin === undefined ? 'ignore' : 'pipe', options.stdoutFd ?? 'pipe', 'pipe'],
      cwd: options.cwd,
      ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.gid ?? options.uid }),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    if (options.stdin !== undefined) child.stdin!.end(options.stdin);
    const killer = setTimeout(() => child.kill('SIGKILL'), options.killAfterMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(killer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    options.onSpawn?.(child);
  });
}

/** A JavaScript stack frame line (`    at fn (file.js:1:2)`): must never reach an operator's terminal. */
export const STACK_FRAME = /^\s+at .+(:\d+:\d+\)?|\(native\))$/m;

export function parseJson(run: CliRun): Record<string, unknown> {
  const text = run.stdout.toString('utf8').trim();
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(
      `stdout is not one JSON document: ${JSON.stringify(text.slice(0, 300))}\nstderr: ${run.stderr}`,
    );
  }
}

/** An origin nothing listens on (a port just closed): connections are refused. */
export async function deadOrigin(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/**
 * Who the test may run the CLI as to check a permission root ignores (`W_OK` always passes for root):
 * itself when it is not root, `nobody` (65534) when it is root and that user exists, else `undefined`
 * (the check cannot be made here and is skipped).
 */
export function unprivilegedUser(): { uid: number; gid: number } | undefined {
  const uid = process.getuid?.();
  if (uid === undefined) return undefined;
  if (uid !== 0) return { uid, gid: process.getgid!() };
  const passwd = readFileSync('/etc/passwd', 'utf8');
  const line = passwd.split('\n').find((l) => l.split(':')[2] === '65534');
  return line === undefined ? undefined : { uid: 65534, gid: Number(line.split(':')[3]) };
}
