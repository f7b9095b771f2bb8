/**
 * The piscina worker: one gcd per task. Runs in a worker thread, so a runaway computation can be
 * stopped by terminating the thread (piscina does that when the task's AbortSignal fires).
 */
import { gcd } from './gcd.js';

/** What the event loop sends: the two numbers as decimal strings (validated already). */
export interface GcdTask {
  readonly n: string;
  readonly m: string;
}

export default function computeGcd(task: GcdTask): string {
  return gcd(BigInt(task.n), BigInt(task.m)).toString();
}
