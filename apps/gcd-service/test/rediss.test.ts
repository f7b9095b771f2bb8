/**
 * TLS to Redis (issue 10, finding 11): `REDIS_URL=rediss://…` against a redis-server this test starts
 * with TLS only (no plain-text port), on a free loopback port, with a CA and a server certificate it
 * makes with openssl. The service trusts the CA through Node's standard `NODE_EXTRA_CA_CERTS`; without
 * it the certificate is refused (verification is on) and the service serves on with its local limit.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ask, freePort, spawnService, type Spawned } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'gcd-rediss-'));
const TOKEN = 'rediss-test-details-token-0123';
const DETAILS = { headers: { authorization: `Bearer ${TOKEN}` } };
let redis: ChildProcess;
let port = 0;
const started: Spawned[] = [];

function openssl(...args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  } catch (error) {
    throw new Error(
      `openssl is needed for this test (apt-get install openssl): ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

before(async () => {
  // A CA, and a server certificate it signed for 127.0.0.1 (an IP SAN: the client checks it).
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=gcd-test-ca',
    '-days',
    '1',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    'redis.key',
    '-out',
    'redis.csr',
  );
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'redis.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    'san.ext',
    '-out',
    'redis.crt',
  );

  port = await freePort();
  redis = spawn(
    'redis-server',
    [
      '--port',
      '0', // no plain-text port at all
      '--tls-port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--tls-cert-file',
      join(dir, 'redis.crt'),
      '--tls-key-file',
      join(dir, 'redis.key'),
      '--tls-ca-cert-file',
      join(dir, 'ca.crt'),
      '--tls-auth-clients',
      'no',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  redis.once('error', () => {}); // reported below as "exited before ready"
  let output = '';
  await new Promise<void>((resolve, reject) => {
    redis.stdout!.on('data', (c: Buffer) => {
      output += c.toString();
      if (output.includes('Ready to accept connections')) resolve();
    });
    redis.once('exit', (code) =>
      reject(
        new Error(
          `redis-server (Debian: apt-get install redis-server) exited ${code} before it was ready:\n${output}`,
        ),
      ),
    );
  });
});

after(async () => {
  for (const p of started) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  if (redis?.exitCode === null) {
    redis.kill('SIGTERM');
    await once(redis, 'exit');
  }
  rmSync(dir, { recursive: true, force: true });
});

async function launch(env: Record<string, string>): Promise<Spawned> {
  const p = await spawnService({
    REDIS_URL: `rediss://127.0.0.1:${port}`,
    RATE_LIMIT_PER_SECOND: '1',
    RATE_LIMIT_BURST: '3',
    // This file is about the rate limit: load shedding (which a machine kept busy by other work can
    // rightly trigger) would answer 503 in its place.
    LOAD_SHEDDING: 'false',
    HEALTH_DETAILS_TOKEN: TOKEN,
    ...env,
  });
  started.push(p);
  return p;
}

interface Health {
  rateLimit: { store: string; mode: string; degraded: boolean; lastError?: string };
}

test('REDIS_URL=rediss://…: the rate limit lives in the TLS Redis', async () => {
  const p = await launch({ NODE_EXTRA_CA_CERTS: join(dir, 'ca.crt'), RATE_LIMIT_KEY_HEADER: 'x-api-key' });
  try {
    /** Redis errors the store has seen (`bulwark_ratelimit_store_errors_total`). */
    const storeErrors = async () =>
      Number(
        /^bulwark_ratelimit_store_errors_total(?:\{[^}]*\})? (\d+)/m.exec(
          (await ask(`${p.url}/metrics`)).text,
        )?.[1] ?? 0,
      );
    // A Redis command slower than the store's timeout (a machine kept busy by other work) sends that
    // request to the local bucket, by design: such a round says nothing about the Redis bucket, so it is
    // run again with a fresh key — at most 5 rounds, and the last must be clean.
    for (let round = 1; ; round++) {
      const headers = { 'x-api-key': `round-${round}` };
      const before = await storeErrors();
      const statuses = [];
      for (let i = 0; i < 4; i++)
        statuses.push((await ask(`${p.url}/api/gcd?n=12&m=18`, { headers })).status);
      const clean = (await storeErrors()) === before;
      if (!clean && round < 5) continue;
      assert.ok(clean, 'a round in which Redis answered every command in time');
      assert.deepEqual(statuses, [200, 200, 200, 429], 'the bucket of 3 is enforced');
      break;
    }
    const health = (await ask(`${p.url}/healthz`, DETAILS)).json<Health>();
    assert.equal(health.rateLimit.store, 'redis');
    assert.equal(health.rateLimit.mode, 'redis');
    assert.equal(health.rateLimit.degraded, false);
    // The bucket is in that Redis (read over TLS with the test's own client).
    const client = new Redis(`rediss://127.0.0.1:${port}`, {
      tls: { ca: readFileSync(join(dir, 'ca.crt')) },
      retryStrategy: () => null,
      lazyConnect: true,
    });
    client.on('error', () => {});
    try {
      await client.connect();
      const keys = await client.keys('bulwark:rl:*');
      assert.ok(keys.length > 0, 'buckets are in the TLS Redis');
      assert.ok(
        keys.every((k) => !k.includes('round-')),
        'keyed by a hash of the header: the key itself never reaches Redis',
      );
    } finally {
      client.disconnect();
    }
  } finally {
    p.child.kill('SIGTERM');
    assert.equal((await p.exit).code, 0);
  }
});

test('without the CA the certificate is refused: the service serves on, degraded, and says why', async () => {
  const p = await launch({});
  try {
    assert.equal((await ask(`${p.url}/api/gcd?n=12&m=18`)).status, 200);
    const health = (await ask(`${p.url}/healthz`, DETAILS)).json<Health>();
    assert.equal(health.rateLimit.degraded, true);
    assert.equal(health.rateLimit.mode, 'local');
    const warned = await p.logged(/rate-limit store (unavailable|not reachable)/);
    assert.ok(warned);
    assert.ok(
      p.lines.some((l) => /certificate|self.signed|CERT/i.test(l)),
      'the log names the certificate problem',
    );
  } finally {
    p.child.kill('SIGTERM');
    await p.exit;
  }
});
