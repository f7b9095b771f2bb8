/**
 * HTTPS: TLS 1.2 at least, certificate and key read from the files named by `TLS_CERT_FILE` /
 * `TLS_KEY_FILE`, and reloaded without a restart (SIGHUP, or a change to either file) through
 * `server.setSecureContext()`: new handshakes get the new certificate, open connections keep theirs.
 * A reload that fails (missing file, key that does not match) keeps the old certificate.
 *
 * Files change in three ways, all seen: written in place, replaced by a rename (editors, cert-manager
 * writing a file), and — Kubernetes secret volumes — left alone while the `..data` symlink they point
 * through is swapped by a rename to a new timestamped directory. So the reloader watches the directories
 * (of each path as configured and as resolved through its symlinks), and on any change there compares
 * the contents of the two files with what it loaded last: a different certificate or key reloads.
 */
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, statSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
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

/**
 * True when anyone beyond the owner and the file's group may read or write the key file, or its group may
 * write it (worth a warning). Group read stays quiet: it is how a Kubernetes secret volume gives the pod's
 * `fsGroup` the key (defaultMode 0440).
 */
export function keyFileTooOpen(file: string): boolean {
  try {
    return (statSync(file).mode & 0o027) !== 0;
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
  #watched = new Set<string>();
  #debounce: NodeJS.Timeout | undefined;
  /** Hash of the certificate and key in use (what the files held at the last successful load). */
  #loaded: string;
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
    this.#loaded = this.#fingerprint() ?? '';
  }

  /** Re-reads both files and swaps the context; on failure the old certificate stays. */
  reload(reason = 'manual'): TlsReloadResult {
    let result: TlsReloadResult;
    try {
      const options = readTlsFiles(this.#config);
      this.#server.setSecureContext(options);
      this.#loaded = hash(options.cert as Buffer, options.key as Buffer);
      this.reloads++;
      result = { ok: true };
    } catch (error) {
      result = { ok: false, error: (error as Error).message };
    }
    this.#onReload(result, reason);
    return result;
  }

  /**
   * Watches the directories of both files — as configured and as resolved through symlinks — and, 100 ms
   * after the last change there, reloads if the files' contents differ from what is loaded.
   */
  watch(): void {
    this.#watchDirectories();
  }

  close(): void {
    clearTimeout(this.#debounce);
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    this.#watched.clear();
  }

  #watchDirectories(): void {
    for (const file of [this.#config.certFile, this.#config.keyFile]) {
      const dirs = [dirname(file)];
      try {
        dirs.push(dirname(realpathSync(file)));
      } catch {
        // missing now: the configured directory is watched, and a later change resolves again
      }
      for (const dir of dirs) {
        if (this.#watched.has(dir)) continue;
        try {
          const watcher = watch(dir, { persistent: false }, () => this.#changed());
          watcher.on('error', () => undefined);
          this.#watchers.push(watcher);
          this.#watched.add(dir);
        } catch {
          // a directory that went away (an old Kubernetes timestamped directory): nothing to watch
        }
      }
    }
  }

  #changed(): void {
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      // A symlink swap may point into a new directory: watch it too (old ones are left to go quiet).
      this.#watchDirectories();
      const now = this.#fingerprint();
      if (now !== undefined && now !== this.#loaded) this.reload('file change');
    }, 100);
    this.#debounce.unref();
  }

  /** Hash of the two files as they are now, or undefined while one cannot be read. */
  #fingerprint(): string | undefined {
    try {
      return hash(readFileSync(this.#config.certFile), readFileSync(this.#config.keyFile));
    } catch {
      return undefined;
    }
  }
}

function hash(cert: Buffer, key: Buffer): string {
  return createHash('sha256').update(cert).update('\0').update(key).digest('hex');
}
