/**
 * HTTPS: TLS 1.2 at least, certificate and key read from the files named by `TLS_CERT_FILE` /
 * `TLS_KEY_FILE`, and reloaded without a restart (SIGHUP, or a change to either file) through
 * `server.setSecureContext()`: new handshakes get the new certificate, open connections keep theirs.
 * A reload that fails (missing file, key that does not match) keeps the old certificate.
 */
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Server as HttpsServer } from 'node:https';
import type { TlsConfig } from './config.js';

/** The TLS floor: 1.0 and 1.1 are refused. */
export const TLS_MIN_VERSION = 'TLSv1.2';

/** Reads the PEM files and checks that they make a usable context (throws with the file named). */
export function readTlsFiles(config: Pick<TlsConfig, 'certFile' | 'keyFile'>): SecureContextOptions {
  const cert = readPem(config.certFile, 'TLS_CERT_FILE');
  const key = readPem(config.keyFile, 'TLS_KEY_FILE');
  const options: SecureContextOptions = { cert, key, minVersion: TLS_MIN_VERSION };
  try {
    createSecureContext(options);
  } catch (error) {
    throw new Error(
      `TLS_CERT_FILE (${config.certFile}) and TLS_KEY_FILE (${config.keyFile}) do not make a usable ` +
        `certificate: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return options;
}

function readPem(file: string, variable: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new Error(`${variable}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? error}`, {
      cause: error,
    });
  }
}

/** True when a group or others may read the key file (worth a warning). */
export function keyFileTooOpen(file: string): boolean {
  try {
    return (statSync(file).mode & 0o077) !== 0;
  } catch {
    return false;
  }
}

export interface TlsReloadResult {
  readonly ok: boolean;
  readonly error?: string;
}

/** Owns the reload of one HTTPS server's certificate. */
export class TlsReloader {
  readonly #server: HttpsServer;
  readonly #config: TlsConfig;
  readonly #onReload: (result: TlsReloadResult, reason: string) => void;
  #watchers: FSWatcher[] = [];
  #debounce: NodeJS.Timeout | undefined;
  /** Successful reloads since start. */
  reloads = 0;

  constructor(
    server: HttpsServer,
    config: TlsConfig,
    onReload: (result: TlsReloadResult, reason: string) => void,
  ) {
    this.#server = server;
    this.#config = config;
    this.#onReload = onReload;
  }

  /** Re-reads both files and swaps the context; on failure the old certificate stays. */
  reload(reason = 'manual'): TlsReloadResult {
    let result: TlsReloadResult;
    try {
      this.#server.setSecureContext(readTlsFiles(this.#config));
      this.reloads++;
      result = { ok: true };
    } catch (error) {
      result = { ok: false, error: (error as Error).message };
    }
    this.#onReload(result, reason);
    return result;
  }

  /**
   * Watches the directory of each file (editors and cert-manager replace files by rename, which a
   * watch on the file itself would miss) and reloads 100 ms after the last change.
   */
  watch(): void {
    const dirs = new Map<string, Set<string>>();
    for (const file of [this.#config.certFile, this.#config.keyFile]) {
      const slash = file.lastIndexOf('/');
      const dir = slash >= 0 ? file.slice(0, slash) || '/' : '.';
      const base = file.slice(slash + 1);
      const names = dirs.get(dir) ?? new Set<string>();
      names.add(base);
      dirs.set(dir, names);
    }
    for (const [dir, names] of dirs) {
      const watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (name !== null && !names.has(String(name))) return;
        clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => this.reload('file change'), 100);
        this.#debounce.unref();
      });
      watcher.on('error', () => undefined);
      this.#watchers.push(watcher);
    }
  }

  close(): void {
    clearTimeout(this.#debounce);
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
  }
}
