/**
 * Typed events: `policy.onSomething(listener)` returns a {@link Disposable}. Emitting costs one boolean
 * check when nobody listens; a listener that throws never changes the outcome of a call.
 */

export interface Disposable {
  dispose(): void;
}

export type Listener<T> = (event: T) => void;

/** The subscribe function a policy exposes as `onX`. */
export type Subscribe<T> = (listener: Listener<T>) => Disposable;

let listenerErrorHandler: (error: unknown) => void = (error) => {
  process.emitWarning(
    `A Bulwark event listener or callback threw; the call's outcome is unchanged: ${String((error as Error)?.stack ?? error)}`,
    { code: 'BULWARK_LISTENER_ERROR' },
  );
};

/**
 * Where errors thrown by event listeners (and by callbacks whose failure must not change a call, such as
 * `openDurationBackoff`) go (default: a process warning). Returns the previous handler.
 */
export function setListenerErrorHandler(handler: (error: unknown) => void): (error: unknown) => void {
  const previous = listenerErrorHandler;
  listenerErrorHandler = handler;
  return previous;
}

/** Hands an error thrown by a listener or callback to the listener-error handler; never throws. */
export function reportListenerError(error: unknown): void {
  try {
    listenerErrorHandler(error);
  } catch {
    // the handler itself failed: nothing more to do without changing the outcome
  }
}

/** An event source a policy owns. Listeners are kept in a copy-on-write array. */
export class EventEmitter<T> {
  #listeners: readonly Listener<T>[] = [];

  /** True when at least one listener is subscribed: guard payload construction with it. */
  get active(): boolean {
    return this.#listeners.length > 0;
  }

  get listenerCount(): number {
    return this.#listeners.length;
  }

  readonly subscribe: Subscribe<T> = (listener) => {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    this.#listeners = [...this.#listeners, listener];
    let disposed = false;
    return {
      dispose: () => {
        if (disposed) return;
        disposed = true;
        const i = this.#listeners.indexOf(listener);
        if (i >= 0) this.#listeners = [...this.#listeners.slice(0, i), ...this.#listeners.slice(i + 1)];
      },
    };
  };

  emit(event: T): void {
    const listeners = this.#listeners;
    for (let i = 0; i < listeners.length; i++) {
      try {
        listeners[i]!(event);
      } catch (error) {
        reportListenerError(error);
      }
    }
  }
}
