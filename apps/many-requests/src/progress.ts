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
  #stopped = false;

  constructor(stream: NodeJS.WritableStream, stats: () => FetchAllStats) {
    this.#stats = stats;
    this.#bar = new SingleBar({
      stream,
      format: '{bar} {value}/{total} URLs | {ok} ok, {failed} failed | {rate}/s | {duration_formatted}',
      hideCursor: true,
      clearOnComplete: true,
      fps: 10,
    });
    this.#bar.start(0, 0, { ok: 0, failed: 0, rate: 0 });
    const startedAt = performance.now();
    this.#timer = setInterval(() => {
      const s = this.#stats();
      const seconds = (performance.now() - startedAt) / 1000;
      this.#bar.setTotal(Math.max(1, s.read));
      this.#bar.update(s.completed, {
        ok: s.ok,
        failed: s.completed - s.ok,
        rate: seconds > 0 ? Math.round(s.completed / seconds) : 0,
      });
    }, 100);
    this.#timer.unref();
    // the bar hides the cursor: a hard exit (a second Ctrl-C) must not leave the terminal without one
    process.once('exit', this.#onExit);
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    process.off('exit', this.#onExit);
    clearInterval(this.#timer);
    this.#bar.stop();
  }

  readonly #onExit = (): void => this.stop();
}
