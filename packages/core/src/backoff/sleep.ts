/**
 * The backoff wait: a timer on the injected clock that ends at once when the context is aborted.
 * It listens for the context's abort only while sleeping (and only if something could abort it); the
 * timer and the listener each remove the other. No `async` frame: a retry through failures pays for one
 * promise and one timer per wait, as a hand-written loop does.
 */
import type { Clock, ClockTimer } from '../clock.js';
import type { Context } from '../context.js';
import { capturingPromise, takeReject, takeResolve } from '../policy.js';

/** Resolves after `delayMs` on `clock`, or rejects with the abort reason as soon as `ctx` is aborted. */
export function sleep(clock: Clock, delayMs: number, ctx: Context): Promise<void> {
  if (ctx.aborted) return Promise.reject(ctx.reason);
  const promise = capturingPromise<void>();
  const resolve = takeResolve() as () => void;
  const reject = takeReject();
  if (!ctx.abortable) {
    clock.setTimeout(resolve, delayMs);
    return promise;
  }
  // the timer fires a turn later at the earliest, after `unlisten` is set
  const timer: ClockTimer = clock.setTimeout(() => {
    unlisten();
    resolve();
  }, delayMs);
  const unlisten = ctx.listen((reason) => {
    clock.clearTimeout(timer);
    reject(reason);
  });
  return promise;
}
