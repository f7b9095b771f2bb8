/**
 * The backoff wait: a timer on the injected clock that ends at once when the context is aborted.
 * It listens on the context's signal only while sleeping (and only if something could abort it), and
 * removes the listener and the timer in `finally`.
 */
import type { Clock, ClockTimer } from '../clock.js';
import type { Context } from '../context.js';
import { onAbort } from '../abort.js';

/** Resolves after `delayMs` on `clock`, or rejects with the abort reason as soon as `ctx` is aborted. */
export async function sleep(clock: Clock, delayMs: number, ctx: Context): Promise<void> {
  if (ctx.aborted) throw ctx.reason;
  let timer: ClockTimer | undefined;
  let unlisten: (() => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = clock.setTimeout(() => {
        timer = undefined;
        resolve();
      }, delayMs);
      if (ctx.abortable) {
        const s = ctx.signal;
        if (s.aborted) return reject(s.reason);
        unlisten = onAbort(s, () => reject(s.reason));
      }
    });
  } finally {
    if (timer !== undefined) clock.clearTimeout(timer);
    if (unlisten !== undefined) unlisten();
  }
}
