/**
 * A download progress bar (cli-progress, on stderr), only on a terminal and only for bodies over 1 MiB
 * (a small body finishes before a bar would be readable). Redraws are throttled by cli-progress.
 */
import { SingleBar } from 'cli-progress';

export const PROGRESS_THRESHOLD_BYTES = 1024 * 1024;

export class DownloadProgress {
  readonly #stream: NodeJS.WritableStream;
  #bar: SingleBar | undefined;
  #stopped = false;

  constructor(stream: NodeJS.WritableStream) {
    this.#stream = stream;
  }

  /** Called as bytes arrive; starts the bar once the body is known (or turns out) to be large. */
  readonly update = (received: number, total: number | undefined): void => {
    if (this.#stopped) return;
    if (this.#bar === undefined) {
      if ((total ?? received) < PROGRESS_THRESHOLD_BYTES) return;
      this.#bar = new SingleBar({
        stream: this.#stream,
        format:
          total === undefined
            ? 'downloading {value_mib} MiB'
            : '{bar} {percentage}% | {value_mib}/{total_mib} MiB | ETA {eta}s',
        hideCursor: true,
        clearOnComplete: true,
        fps: 10,
      });
      this.#bar.start(total ?? 0, received, { value_mib: mib(received), total_mib: mib(total ?? 0) });
      // the bar hides the cursor: a hard exit (a second Ctrl-C) must not leave the terminal without one
      process.once('exit', this.#onExit);
    }
    this.#bar.update(received, { value_mib: mib(received), total_mib: mib(total ?? received) });
  };

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    process.off('exit', this.#onExit);
    this.#bar?.stop();
  }

  readonly #onExit = (): void => this.stop();
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
