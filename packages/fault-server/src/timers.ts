/** Timers owned by a server: every one is cleared on `close()` so a test never hangs on a stray timer. */
export class TimerSet {
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #closed = false;

  /** Calls `fn` once after `ms`; returns a cancel function. Does nothing once the set is closed. */
  after(ms: number, fn: () => void): () => void {
    if (this.#closed) return () => {};
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
    return () => {
      clearTimeout(t);
      this.#timers.delete(t);
    };
  }

  get size(): number {
    return this.#timers.size;
  }

  clear(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  close(): void {
    this.#closed = true;
    this.clear();
  }
}

/** A small seeded PRNG (mulberry32): deterministic "toxicity" and jitter for replayable tests. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
