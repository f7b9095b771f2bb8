/**
 * HTTPS: TLS 1.0/1.1 refused, 1.2 and 1.3 accepted, the certificate reloaded without a restart (on
 * demand and when the files change), and a broken reload keeps the old certificate. The certificates
 * are made at test time with openssl in a temp directory (no key is ever committed).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate, type SecureVersion } from 'node:tls';
import { Agent, request } from 'undici';
import { start, type Running } from './helpers.js';
import type { TlsReloadEvent } from '../src/server.js';

const dir = mkdtempSync(join(tmpdir(), 'gcd-tls-'));

function makeCert(name: string, cn: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        `/CN=${cn}`,
        '-days',
        '1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'pipe' },
    );
  } catch (error) {
    throw new Error(
      `openssl is needed for the TLS tests (apt-get install openssl): ${(error as Error).message}`,
      { cause: error },
    );
  }
  return { cert, key };
}

interface Handshake {
  readonly ok: boolean;
  readonly protocol?: string | null;
  readonly cert?: PeerCertificate;
  readonly error?: string;
}

function handshake(port: number, min: SecureVersion, max: SecureVersion): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      minVersion: min,
      maxVersion: max,
      rejectUnauthorized: false,
      servername: 'localhost',
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ok: false, error: 'handshake timed out' });
    }, 5000);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const result = { ok: true, protocol: socket.getProtocol(), cert: socket.getPeerCertificate() };
      socket.end();
      resolve(result);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ ok: false, error: error.code ?? error.message });
    });
  });
}

/** The server's next successful TLS reload. */
function nextReload(r: Running): Promise<TlsReloadEvent> {
  return new Promise((resolve) => {
    const sub = r.server.onTlsReload((e) => {
      if (!e.result.ok) return;
      sub.dispose();
      resolve(e);
    });
  });
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

describe('HTTPS', () => {
  const first = makeCert('first', 'first.localhost');
  const second = makeCert('second', 'second.localhost');
  // The server reads the files it is configured with; the tests swap their contents.
  const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
  writeFileSync(live.cert, readFileSync(first.cert));
  writeFileSync(live.key, readFileSync(first.key), { mode: 0o600 });

  let s: Running;
  const logLines: string[] = [];
  before(async () => {
    s = await start(
      { tls: { certFile: live.cert, keyFile: live.key, watch: true }, logLevel: 'info' },
      { logStream: { write: (line: string) => void logLines.push(line) } },
    );
  });
  after(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('serves the API over HTTPS with HSTS', async () => {
    assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(
      logLines.some((line) => line.includes(`listening on ${s.url}`)),
      'the start-up line names https://',
    );
    const agent = new Agent({ connect: { rejectUnauthorized: false } });
    try {
      const res = await request(`${s.url}/api/gcd?n=12&m=18`, { dispatcher: agent });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(await res.body.json(), { n: '12', m: '18', gcd: '6' });
      assert.match(String(res.headers['strict-transport-security']), /max-age=\d+/);
      assert.equal(res.headers['content-security-policy'], "frame-ancestors 'none'", 'the API set');
      const page = await request(`${s.url}/`, { dispatcher: agent });
      await page.body.dump();
      assert.match(String(page.headers['strict-transport-security']), /max-age=\d+/);
      assert.match(String(page.headers['content-security-policy']), /upgrade-insecure-requests/);
    } finally {
      await agent.close();
    }
  });

  test('TLS 1.1 and 1.0 are refused', async () => {
    for (const version of ['TLSv1.1', 'TLSv1'] as const) {
      const result = await handshake(portOf(s.url), version, version);
      assert.equal(result.ok, false, `${version} must not be accepted (got ${result.protocol})`);
    }
  });

  test('TLS 1.2 and 1.3 are accepted', async () => {
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const result = await handshake(portOf(s.url), version, version);
      assert.equal(result.ok, true, `${version}: ${result.error}`);
      assert.equal(result.protocol, version);
    }
  });

  test('reload serves the new certificate to new handshakes; a broken reload keeps the old one', async () => {
    const port = portOf(s.url);
    const before = await handshake(port, 'TLSv1.2', 'TLSv1.3');
    assert.equal(before.cert?.subject.CN, 'first.localhost');

    // An open connection keeps working across the reload.
    const open = await new Promise<ReturnType<typeof connect>>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => resolve(socket));
      socket.once('error', reject);
    });

    // Swap to the second certificate (rename, as cert managers do), then reload on demand.
    writeFileSync(`${live.cert}.tmp`, readFileSync(second.cert));
    writeFileSync(`${live.key}.tmp`, readFileSync(second.key), { mode: 0o600 });
    renameSync(`${live.key}.tmp`, live.key);
    renameSync(`${live.cert}.tmp`, live.cert);
    assert.deepEqual(s.server.reloadTls('test'), { ok: true });
    const afterReload = await handshake(port, 'TLSv1.2', 'TLSv1.3');
    assert.equal(afterReload.cert?.subject.CN, 'second.localhost');
    assert.notEqual(afterReload.cert?.fingerprint256, before.cert?.fingerprint256);

    open.write('GET /api/gcd?n=4&m=6 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    const reply = await new Promise<string>((resolve) => {
      let text = '';
      open.on('data', (chunk: Buffer) => (text += chunk.toString()));
      open.on('end', () => resolve(text));
    });
    assert.match(reply, /^HTTP\/1\.1 200/);

    // A key that does not match the certificate: the reload fails and the second cert stays.
    writeFileSync(live.key, readFileSync(first.key), { mode: 0o600 });
    const broken = s.server.reloadTls('test');
    assert.equal(broken.ok, false);
    assert.match(broken.error ?? '', /TLS_CERT_FILE .* and TLS_KEY_FILE .* do not make a usable certificate/);
    const still = await handshake(port, 'TLSv1.2', 'TLSv1.3');
    assert.equal(still.ok, true);
    assert.equal(still.cert?.subject.CN, 'second.localhost');
  });

  test('a change to the files is picked up without a signal', async () => {
    const reloaded = nextReload(s);
    writeFileSync(live.cert, readFileSync(first.cert));
    writeFileSync(live.key, readFileSync(first.key), { mode: 0o600 });
    assert.deepEqual(await reloaded, { result: { ok: true }, reason: 'file change' });
    const cn = (await handshake(portOf(s.url), 'TLSv1.2', 'TLSv1.3')).cert?.subject.CN;
    assert.equal(cn, 'first.localhost');
  });

  test('an unreadable certificate fails at start with the variable named', async () => {
    await assert.rejects(
      start({ tls: { certFile: join(dir, 'missing.crt'), keyFile: live.key, watch: false } }),
      /TLS_CERT_FILE: cannot read .*missing\.crt: ENOENT/,
    );
  });
});

describe('Kubernetes secret volume: the files are symlinks through ..data, swapped by rename (finding 7)', () => {
  const volume = mkdtempSync(join(tmpdir(), 'gcd-tls-volume-'));
  /** Writes a timestamped directory with the pair, as the kubelet does. */
  const version = (name: string, pair: { cert: string; key: string }) => {
    mkdirSync(join(volume, name));
    writeFileSync(join(volume, name, 'tls.crt'), readFileSync(pair.cert));
    writeFileSync(join(volume, name, 'tls.key'), readFileSync(pair.key), { mode: 0o600 });
  };
  let second: { cert: string; key: string };

  let s: Running;
  before(async () => {
    mkdirSync(dir, { recursive: true });
    const first = makeCert('k8s-first', 'k8s-first.localhost');
    second = makeCert('k8s-second', 'k8s-second.localhost');
    version('..2026_01_01_00_00_00.000000001', first);
    symlinkSync('..2026_01_01_00_00_00.000000001', join(volume, '..data'));
    symlinkSync('..data/tls.crt', join(volume, 'tls.crt'));
    symlinkSync('..data/tls.key', join(volume, 'tls.key'));
    s = await start({
      tls: { certFile: join(volume, 'tls.crt'), keyFile: join(volume, 'tls.key'), watch: true },
    });
  });
  after(async () => {
    await s?.close();
    rmSync(volume, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test('the new certificate is served after the ..data swap, without a signal', async () => {
    const port = portOf(s.url);
    assert.equal((await handshake(port, 'TLSv1.2', 'TLSv1.3')).cert?.subject.CN, 'k8s-first.localhost');
    const reloaded = nextReload(s);
    // The kubelet's update: a new timestamped directory, a new link to it, renamed over ..data (atomic);
    // tls.crt and tls.key themselves never change.
    version('..2026_01_02_00_00_00.000000002', second);
    symlinkSync('..2026_01_02_00_00_00.000000002', join(volume, '..data_tmp'));
    renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
    rmSync(join(volume, '..2026_01_01_00_00_00.000000001'), { recursive: true });
    assert.deepEqual(await reloaded, { result: { ok: true }, reason: 'file change' });
    assert.equal((await handshake(port, 'TLSv1.2', 'TLSv1.3')).cert?.subject.CN, 'k8s-second.localhost');
  });
});
