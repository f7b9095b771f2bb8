/**
 * The URL sources, streamed: arguments, then files and stdin read line by line with `readline`, so a
 * million-line list never sits in memory (readline pauses the stream while its queue is full, and
 * `fetchAll` pulls a line only when it has room for it).
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Source } from './config.js';

/** A line that is a URL: not blank, not a `#` comment. Returns the trimmed URL or undefined. */
export function urlOfLine(line: string): string | undefined {
  const url = line.trim();
  return url === '' || url.startsWith('#') ? undefined : url;
}

/** Fails (with a message for a usage error) when a `--file` cannot be opened for reading. */
export async function checkReadable(sources: readonly Source[]): Promise<string | undefined> {
  for (const s of sources) {
    if (s.kind !== 'file') continue;
    try {
      const handle = await open(s.path, 'r');
      const stat = await handle.stat();
      await handle.close();
      if (stat.isDirectory()) return `cannot read --file ${s.path}: it is a directory`;
    } catch (error) {
      return `cannot read --file ${s.path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
    }
  }
  return undefined;
}

async function* linesOf(stream: Readable): AsyncGenerator<string> {
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  try {
    for await (const line of rl) {
      const url = urlOfLine(line);
      if (url !== undefined) yield url;
    }
  } finally {
    rl.close();
  }
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
