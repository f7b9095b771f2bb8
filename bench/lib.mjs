// What the bench scripts share: the machine header of a results file, pinning with taskset, CPU and
// memory readings from /proc, and the statistics and number formats of the tables. No dependencies
// (gcd-bench-lib.mjs, the load-generation helpers of the gcd benchmarks, builds on it).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem, type as osType } from 'node:os';

/** Whether `taskset` runs here. */
export function hasTaskset() {
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Whether processes can be pinned to cores of their own: two CPUs or more, and taskset. */
export function canPin() {
  return availableParallelism() >= 2 && hasTaskset();
}

/**
 * Pins this process (and what it spawns afterwards) to `core`; false when there are fewer than two
 * CPUs or taskset fails (nothing pinned then).
 */
export function pinSelfTo(core) {
  try {
    if (cpus().length < 2) return false;
    execFileSync('taskset', ['-cp', String(core), String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** `N × model, G GiB, OS release`: the machine line of a results file. */
export function machineLine() {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${osType()} ${release()}`;
}

/** `N × model, Node vX, load average at start a, b, c`: the gcd benchmarks' machine line. */
export function machine() {
  const cpu = cpus();
  const load = loadavg()
    .map((x) => x.toFixed(2))
    .join(', ');
  return `${cpu.length} × ${cpu[0]?.model ?? 'CPU'}, Node ${process.version}, load average at start ${load}`;
}

/** The load averages of /proc/loadavg (1, 5 and 15 minutes), as written there. */
export function loadAverages() {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3);
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system, every thread) a process has used so far, from /proc; NaN elsewhere. */
export function processCpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** A process's peak resident set (VmHWM) in KiB, from /proc; undefined once it has exited. */
export function peakRssKiB(pid) {
  try {
    const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** `n` with `d` decimals and thousands separators. */
export function fmt(n, d = 0) {
  return n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
}

/** `array` in an order drawn from `seed` (a linear congruential generator: the same seed, the same order). */
export function shuffle(array, seed) {
  let s = seed >>> 0 || 1;
  const rnd = () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
  const a = [...array];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}
