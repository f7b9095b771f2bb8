/**
 * `--metrics-file PATH`, as both CLIs take it: what one run did, as a Prometheus text-exposition file for
 * node-exporter's textfile collector, replaced atomically at the end of the run (a temp file in the same
 * directory, then rename), so the collector never reads a torn one. The path is checked up front, and the
 * option wins over the program's environment variable.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';

/**
 * Why `path` cannot be a metrics file (the "expected …" half of a usage error), or `undefined` when it
 * can: it must end in `.prom` (the collector reads nothing else) and be a file in an existing, writable
 * directory (checked now: a cron job's mistake should fail its first run, not every run's last step).
 */
export function metricsFileProblem(path: string): string | undefined {
  if (!path.endsWith('.prom') || basename(path) === '.prom') {
    return "expected a file name ending in .prom (node-exporter's textfile collector reads only *.prom files).";
  }
  const target = resolve(path);
  const dir = dirname(target);
  try {
    if (!statSync(dir).isDirectory()) return `expected a file in a directory; ${dir} is not a directory.`;
  } catch {
    return `expected a file in an existing directory; ${dir} does not exist.`;
  }
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch {
    return `expected a file in a writable directory; ${dir} is not writable.`;
  }
  try {
    if (statSync(target).isDirectory()) return `expected a file, not the directory ${target}.`;
  } catch {
    // does not exist yet: the first run creates it
  }
  return undefined;
}

/** The commander parser of `--metrics-file <path>`: the absolute path, or a usage error. */
export function metricsFileArgument(value: string): string {
  const problem = metricsFileProblem(value);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
  return resolve(value);
}

/**
 * The metrics file of a run: the option's (already checked), else the environment variable `name`'s (an
 * empty variable is unset), absolute — or the usage problem of a bad variable.
 */
export function metricsFileFrom(
  option: string | undefined,
  env: NodeJS.ProcessEnv,
  name: string,
): string | undefined | { readonly problem: string } {
  if (option !== undefined) return option;
  const value = env[name];
  if (value === undefined || value === '') return undefined;
  const problem = metricsFileProblem(value);
  if (problem !== undefined)
    return { problem: `environment variable ${name} '${value}' is invalid. ${problem}` };
  return resolve(value);
}

/** One gauge in the text exposition: its `# HELP` and `# TYPE` lines, then a line per sample. */
export function gauge(
  name: string,
  help: string,
  samples: readonly [labels: string, value: number | string][],
): string[] {
  return [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} gauge`,
    ...samples.map(([labels, value]) => `${name}${labels} ${value}`),
  ];
}
