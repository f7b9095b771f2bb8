/**
 * singleFlight: concurrent calls with the same key share one execution (request coalescing).
 *
 * The first caller for a key starts the work; callers that arrive while it runs join it and get the same
 * value or error. Each waiter can leave on its own signal (it rejects with its `signal.reason` at once);
 * the shared work is aborted only when every waiter has left. Once the work settles the key is free
 * again, so the next call starts a new flight: results are never cached here.
 */
import { onAbort } from './abort.js';
import { EventEmitter, type Subscribe } from './events.js';

/** What one caller gets from {@link SingleFlight.run}. */
export interface FlightResult<T> {
  readonly value: T;
  /** False for the caller that started the work, true for callers that joined it. */
  readonly shared: boolean;
}

export interface FlightEvent {
  readonly key: string;
  /** `start`: a new flight; `join`: a caller joined one; `abandon`: its last waiter left, it was aborted. */
  readonly type: 'start' | 'join' | 'abandon';
  /** Waiters after the event. */
  readonly waiters: number;
}

interface Flight<T> {
  readonly controller: AbortController;
  readonly promise: Promise<T>;
  waiters: number;
}

export class SingleFlight<T> {
  readonly #flights = new Map<string, Flight<T>>();
  readonly #onFlight = new EventEmitter<FlightEvent>();
  /** Subscribe to flights starting, being joined and being abandoned. */
  readonly onFlight: Subscribe<FlightEvent> = this.#onFlight.subscribe;

  /** Keys with work in flight now. */
  get size(): number {
    return this.#flights.size;
  }

  /** Waiters on the flight for `key` (0 if none). */
  waiters(key: string): number {
    return this.#flights.get(key)?.waiters ?? 0;
  }

  /**
   * Runs `work` for `key`, or joins the flight already running for it. `work` receives the flight's own
   * signal, aborted only when every waiter has left. `signal` is this caller's: aborting it rejects this
   * caller with `signal.reason` and leaves the others waiting.
   */
  run(
    key: string,
    work: (signal: AbortSignal) => PromiseLike<T> | T,
    signal?: AbortSignal,
  ): Promise<FlightResult<T>> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    let flight = this.#flights.get(key);
    const shared = flight !== undefined;
    if (flight === undefined) {
      const controller = new AbortController();
      let promise: Promise<T>;
      try {
        promise = Promise.resolve(work(controller.signal));
      } catch (error) {
        promise = Promise.reject(error);
      }
      const started: Flight<T> = { controller, promise, waiters: 0 };
      flight = started;
      this.#flights.set(key, started);
      const done = (): void => {
        if (this.#flights.get(key) === started) this.#flights.delete(key);
      };
      promise.then(done, done);
    }
    flight.waiters++;
    if (this.#onFlight.active)
      this.#onFlight.emit({ key, type: shared ? 'join' : 'start', waiters: flight.waiters });
    return this.#wait(key, flight, shared, signal);
  }

  #wait(
    key: string,
    flight: Flight<T>,
    shared: boolean,
    signal: AbortSignal | undefined,
  ): Promise<FlightResult<T>> {
    if (signal === undefined) {
      return flight.promise.then(
        (value) => {
          flight.waiters--;
          return { value, shared };
        },
        (error: unknown) => {
          flight.waiters--;
          throw error;
        },
      );
    }
    return new Promise<FlightResult<T>>((resolve, reject) => {
      let left = false;
      const unlisten = onAbort(signal, () => {
        left = true;
        this.#leave(key, flight, signal.reason);
        reject(signal.reason);
      });
      flight.promise.then(
        (value) => {
          if (left) return;
          unlisten();
          flight.waiters--;
          resolve({ value, shared });
        },
        (error: unknown) => {
          if (left) return;
          unlisten();
          flight.waiters--;
          reject(error);
        },
      );
    });
  }

  #leave(key: string, flight: Flight<T>, reason: unknown): void {
    flight.waiters--;
    if (flight.waiters > 0) return;
    // the last waiter left: nobody wants the result, so stop the work and free the key at once
    if (this.#flights.get(key) === flight) this.#flights.delete(key);
    if (this.#onFlight.active) this.#onFlight.emit({ key, type: 'abandon', waiters: 0 });
    flight.controller.abort(reason);
    // the work's own rejection (if it honours the abort) has no one left to observe it
    flight.promise.catch(() => {});
  }
}

/** Creates a {@link SingleFlight} group. */
export function singleFlight<T>(): SingleFlight<T> {
  return new SingleFlight<T>();
}
