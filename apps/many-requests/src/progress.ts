/**
 * The progress bar (cli-progress, on stderr), shown only on a terminal. The total grows as URLs are read
 * (a streamed list has no known length). Redrawn from a timer, not per result, so it costs nothing per URL.
 */
import { SingleBar } from 'cli-progress';
import type { FetchAllStats } from '@bulwark/http';

export interface ProgressTarget {
  isTTY?: boolean;
  write(chunk: string): unknown;
}

/**
 * Whether to draw a bar: stderr is a terminal, neither `--quiet` nor `--verbose` (whose lines would tear
 * through the bar), and NDJSON is not going to the same terminal.
 */
export function wantProgress(options: {
  quiet: boolean;
  verbose?: boolean;
  json: boolean;
  stderrIsTTY: boolean;
  stdoutIsTTY: boolean;
}): boolean {
  return (
    options.stderrIsTTY &&
    !options.quiet &&
    options.verbose !== true &&
    (options.json || !options.stdoutIsTTY)
  );
}

export class Progress {
  readonly #bar: SingleBar;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #stats: () => FetchAllStats;
  #started = false;
  #stopped = false;

  constructor(stream: NodeJS.WritableStream, stats: () => FetchAllStats) {
    this.#stats = stats;
    this.#bar = new SingleBar({
      stream,
      format:
        '{bar} {value}/{total} URLs | {ok} ok, {failed} failed, {waiting} waiting for a host | {rate}/s | {duration_formatted}',
      hideCursor: true,
      clearOnComplete: true,
      fps: 10,
    });
    const startedAt = performance.now();
    this.#timer = setInterval(() => this.#draw(startedAt), 100);
    this.#timer.unref();
    // the bar hides the cursor: a hard exit (a second Ctrl-C) must not leave the terminal without one
    process.once('exit', this.#onExit);
  }

  /** Draws the bar; the first frame only once a URL was read (never a full bar at "0/0 URLs"). */
  #draw(startedAt: number): void {
    const s = this.#stats();
    if (!this.#started && s.read === 0) return;
    const seconds = (performance.now() - startedAt) / 1000;
    const payload = {
      ok: s.ok,
      failed: s.completed - s.ok,
      waiting: s.waiting,
      rate: seconds > 0 ? Math.round(s.completed / seconds) : 0,
    };
    if (!this.#started) {
      this.#started = true;
      this.#bar.start(s.read, s.completed, payload);
      return;
    }
    this.#bar.setTotal(s.read);
    this.#bar.update(s.completed, payload);
  }

  /** Draws a frame now (the timer draws every 100 ms). */
  tick(): void {
    this.#draw(performance.now());
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    process.off('exit', this.#onExit);
    clearInterval(this.#timer);
    if (this.#started) this.#bar.stop();
  }

  readonly #onExit = (): void => this.stop();
}
