/**
 * The URL sources, streamed: arguments, then files and stdin read line by line, so a million-line list
 * never sits in memory (the stream pauses while `fetchAll` has no room, and it pulls a line only when it
 * has).
 *
 * Lines are split here rather than by `readline`, which holds a whole line in memory however long it is
 * (a 100 MB line of garbage cost 569 MiB): a line longer than {@link MAX_LINE} characters is not kept —
 * the rest of it is skipped as it streams past, and what goes on is a marker that cannot parse as a URL
 * and says what happened (its record is `INVALID_URL`).
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Source } from './config.js';

/** The longest line read as a URL (browsers cope with 2 MB URLs; servers rarely with more than 8 KB). */
export const MAX_LINE = 65_536;

/** A line that is a URL: not blank, not a `#` comment. Returns the trimmed URL or undefined. */
export function urlOfLine(line: string): string | undefined {
  const url = line.trim();
  return url === '' || url.startsWith('#') ? undefined : url;
}

/** What stands in for a line too long to read: not a URL (it starts with `(`), and it says why. */
export function tooLong(lineNumber: number, length: number, start: string): string {
  return `(line ${lineNumber} is ${length} characters long, over the ${MAX_LINE} allowed; it starts with ${JSON.stringify(start.slice(0, 100))})`;
}

/** Fails (with a message for a usage error) when an input file cannot be opened for reading. */
export async function checkReadable(sources: readonly Source[]): Promise<string | undefined> {
  for (const s of sources) {
    if (s.kind !== 'file') continue;
    try {
      const handle = await open(s.path, 'r');
      const stat = await handle.stat();
      await handle.close();
      if (stat.isDirectory()) return `cannot read --input-file ${s.path}: it is a directory`;
    } catch (error) {
      return `cannot read --input-file ${s.path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
    }
  }
  return undefined;
}

/** The URLs of a stream's lines (`\n` or `\r\n`), a line over {@link MAX_LINE} replaced by a marker. */
export async function* linesOf(stream: Readable): AsyncGenerator<string> {
  stream.setEncoding('utf8');
  let line = '';
  let lineNumber = 0;
  /** Characters of an over-long line skipped so far (-1: the line is not over-long). */
  let skipped = -1;
  let start = '';
  const end = function* (): Generator<string> {
    lineNumber++;
    if (skipped >= 0) {
      yield tooLong(lineNumber, skipped, start);
    } else {
      const url = urlOfLine(line);
      if (url !== undefined) yield url;
    }
    line = '';
    skipped = -1;
    start = '';
  };
  for await (const chunk of stream as AsyncIterable<string>) {
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf('\n', from);
      const piece = chunk.slice(from, nl < 0 ? undefined : nl);
      if (skipped >= 0) skipped += piece.length;
      else if (line.length + piece.length > MAX_LINE) {
        start = (line + piece).slice(0, 100);
        skipped = line.length + piece.length;
        line = '';
      } else line += piece;
      if (nl < 0) break;
      yield* end();
      from = nl + 1;
    }
  }
  if (line !== '' || skipped >= 0) yield* end();
}

/** Every URL of `sources`, in order. Closing the generator early closes the file being read. */
export async function* readUrls(sources: readonly Source[], stdin: Readable): AsyncGenerator<string> {
  for (const source of sources) {
    if (source.kind === 'url') {
      yield source.url;
    } else if (source.kind === 'stdin') {
      yield* linesOf(stdin);
    } else {
      const stream = createReadStream(source.path);
      try {
        yield* linesOf(stream);
      } finally {
        stream.destroy();
      }
    }
  }
}
