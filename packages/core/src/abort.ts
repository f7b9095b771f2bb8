/**
 * Listening for a signal's abort in O(1) per call.
 *
 * Node's `EventTarget` keeps listeners in a list and `removeEventListener` walks it, so n calls that
 * each add and remove a listener on one shared caller signal cost O(n²): with 1,000 calls queued on a
 * bulkhead under one signal, that walk dominated the whole call. Bulwark attaches one listener per
 * signal and keeps the callbacks in a `Set`; the listener is removed when the last callback leaves, so
 * nothing is left on the caller's signal once calls settle.
 */

import { reportListenerError } from './events.js';

interface Fanout {
  readonly callbacks: Set<() => void>;
  readonly listener: () => void;
}

const fanouts = new WeakMap<AbortSignal, Fanout>();

/**
 * Calls `callback` once when `signal` aborts. Returns a function that stops listening (idempotent).
 * The caller checks `signal.aborted` first: an already-aborted signal never fires again.
 */
export function onAbort(signal: AbortSignal, callback: () => void): () => void {
  let fanout = fanouts.get(signal);
  if (fanout === undefined) {
    const callbacks = new Set<() => void>();
    const listener = (): void => {
      fanouts.delete(signal);
      for (const cb of callbacks) {
        try {
          cb();
        } catch (error) {
          reportListenerError(error);
        }
      }
      callbacks.clear();
    };
    fanout = { callbacks, listener };
    fanouts.set(signal, fanout);
    signal.addEventListener('abort', listener, { once: true });
  }
  const entry = fanout;
  // a wrapper per registration, so the same function registered twice is called twice
  const registration = (): void => callback();
  entry.callbacks.add(registration);
  return () => {
    if (entry.callbacks.delete(registration) && entry.callbacks.size === 0 && fanouts.get(signal) === entry) {
      fanouts.delete(signal);
      signal.removeEventListener('abort', entry.listener);
    }
  };
}
