// The habits of a curl or wget user, each tried on the BUILT binary against a real server over loopback:
// -H, -A, --compressed, -k, --cacert, -i, -I, -L / --no-location, -s, -m / seconds, --fail / --no-fail /
// --fail-with-body, "-" for the URL on stdin, -O; and the smaller things a demanding user noticed: a 404's
// --json lists its tiers, a huge URL is not echoed whole, an unsolicited 304 is not a success.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { patternBody, startFaultServer, type FaultServer } from '@bulwark/fault-server';
import { EXIT, VERSION } from '../src/config.js';
import { STACK_FRAME, parseJson, runCli } from './harness.js';

let server: FaultServer;
let mirror: FaultServer;
let work: string;

before(async () => {
  server = await startFaultServer();
  mirror = await startFaultServer({ response: { body: 'mirror body\n' } });
  work = await mkdtemp(join(tmpdir(), 'http-get-curl-'));
});
after(async () => {
  await Promise.all([server.close(), mirror.close()]);
  await rm(work, { recursive: true, force: true });
});

describe('the request', () => {
  it('-H sends headers (repeatable); "Name:" removes a default; -A sets the User-Agent', async () => {
    const run = await runCli([
      `${server.origin}/h1`,
      '--no-cache',
      '-H',
      'X-Trace: abc 123',
      '-H',
      'Accept: application/json',
      '-A',
      'probe/1.0',
    ]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    const seen = server.requests.find((r) => r.path === '/h1')!.headers;
    assert.equal(seen['x-trace'], 'abc 123');
    assert.equal(seen['accept'], 'application/json');
    assert.equal(seen['user-agent'], 'probe/1.0');
    await runCli([`${server.origin}/h2`, '--no-cache', '-H', 'User-Agent:']);
    assert.equal(server.requests.find((r) => r.path === '/h2')!.headers['user-agent'], undefined);
    await runCli([`${server.origin}/h3`, '--no-cache']);
    assert.equal(
      server.requests.find((r) => r.path === '/h3')!.headers['user-agent'],
      `http-get/${VERSION} (bulwark)`,
    );
  });

  it('--compressed is the default: gzip is asked for and decoded; --no-compressed prints what was sent', async () => {
    const decoded = await runCli([`${server.origin}/gz?size=100000&gzip=1`, '--no-cache']);
    assert.equal(decoded.code, EXIT.OK, decoded.stderr);
    assert.ok(decoded.stdout.equals(patternBody(100_000)));
    assert.equal(
      server.requests.find((r) => r.path === '/gz')!.headers['accept-encoding'],
      'gzip, deflate, br',
    );
    const raw = await runCli([`${server.origin}/gz2?size=100000&gzip=1`, '--no-cache', '--no-compressed']);
    assert.equal(raw.code, EXIT.OK);
    assert.equal(raw.stdout.subarray(0, 2).toString('hex'), '1f8b', 'the gzip bytes as sent');
    assert.equal(server.requests.find((r) => r.path === '/gz2')!.headers['accept-encoding'], undefined);
  });

  it('redirects are followed (-L is the default); --no-location prints the 3xx as it is', async () => {
    const followed = await runCli([`${server.origin}/redirect?location=/ok%3Fbody%3Dthere`, '--no-cache']);
    assert.equal(followed.stdout.toString(), 'there');
    const kept = await runCli([
      `${server.origin}/redirect?location=/elsewhere&status=301`,
      '--no-cache',
      '--no-location',
      '-i',
    ]);
    assert.equal(kept.code, EXIT.OK, kept.stderr);
    assert.match(
      kept.stdout.toString(),
      /^HTTP\/1\.1 301 Moved Permanently\r\n[\s\S]*location: \/elsewhere\r\n/,
    );
  });

  it('-i prints the status line and headers before the body; -I sends HEAD and prints only them', async () => {
    const inc = await runCli([`${server.origin}/ok?body=hello`, '--no-cache', '-i']);
    const text = inc.stdout.toString();
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /\r\ncontent-type: text\/plain; charset=utf-8\r\n/);
    assert.ok(text.endsWith('\r\n\r\nhello'));
    const head = await runCli([`${server.origin}/headonly?size=5000`, '--no-cache', '-I']);
    assert.equal(head.code, EXIT.OK, head.stderr);
    assert.match(
      head.stdout.toString(),
      /^HTTP\/1\.1 200 OK\r\n[\s\S]*content-length: 5000\r\n[\s\S]*\r\n\r\n$/,
    );
    assert.equal(server.requests.find((r) => r.path === '/headonly')!.method, 'HEAD');
  });

  it('-s is -q: a warning is not printed, an error is', async () => {
    const dead = `http://127.0.0.1:1`;
    const quiet = await runCli([
      `${dead}/x`,
      '--fallback',
      `${mirror.origin}/doc`,
      '--no-cache',
      '--retries',
      '0',
      '-s',
    ]);
    assert.equal(quiet.code, EXIT.OK);
    assert.equal(quiet.stderr, '');
    const failed = await runCli([`${dead}/x`, '--no-cache', '--retries', '0', '-s']);
    assert.match(failed.stderr, /^http-get: error:/);
  });

  it('timeouts in seconds (-m 1.5 is --timeout-ms 1500); decimals allowed', async () => {
    const run = await runCli([
      `${server.origin}/blackhole`,
      '--no-cache',
      '-m',
      '1.5',
      '--retries',
      '0',
      '--json',
    ]);
    assert.equal(run.code, EXIT.NETWORK);
    const tiers = parseJson(run)['tiers'] as { tier: string; reason: string }[];
    // the primary's share of the 1500 ms left when its tier began (a millisecond may have passed)
    assert.match(tiers.find((t) => t.tier === 'primary')!.reason, /timed out after 1[45]\d\d ms/);
  });

  it('the URL "-" is read from stdin', async () => {
    const run = await runCli(['-', '--no-cache'], { stdin: `\n  ${server.origin}/ok?body=from-stdin  \n` });
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.toString(), 'from-stdin');
    const none = await runCli(['-', '--no-cache'], { stdin: '' });
    assert.equal(none.code, EXIT.USAGE);
    assert.match(none.stderr, /no URL on stdin/);
    const bad = await runCli(['-', '--no-cache'], { stdin: 'ftp://x/\n' });
    assert.equal(bad.code, EXIT.USAGE);
    assert.match(bad.stderr, /the URL on stdin is invalid/);
  });

  it("-O saves under the URL's file name, in the working directory", async () => {
    const d = join(work, 'O');
    await mkdir(d);
    const run = await runCli([`${server.origin}/files/report.csv?size=300`, '--no-cache', '-O'], { cwd: d });
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.deepEqual(await readdir(d), ['report.csv']);
    assert.ok((await readFile(join(d, 'report.csv'))).equals(patternBody(300)));
  });
});

describe('--fail, --no-fail, --fail-with-body', () => {
  it('--fail (the default): a 404 is exit 22 and no body; --json lists the tiers tried', async () => {
    const run = await runCli([`${server.origin}/status/404`, '--no-cache', '--json']);
    assert.equal(run.code, EXIT.HTTP);
    const doc = parseJson(run);
    assert.equal(doc['status'], 404);
    assert.deepEqual(
      (doc['tiers'] as { tier: string; status: string }[]).map((t) => `${t.tier}:${t.status}`),
      ['fresh-cache:skipped', 'primary:failed'],
    );
  });

  it('--no-fail: the 404 body is written, exit 0 (curl without -f); --fail-with-body: written, exit 22', async () => {
    server.setFault({ type: 'status', status: 404, body: 'no such thing\n' }, { path: '/gone' });
    const noFail = await runCli([`${server.origin}/gone`, '--no-cache', '--no-fail']);
    assert.equal(noFail.code, EXIT.OK, noFail.stderr);
    assert.equal(noFail.stdout.toString(), 'no such thing\n');
    assert.match(noFail.stderr, /answered 404/);
    server.setFault({ type: 'status', status: 404, body: 'no such thing\n' }, { path: '/gone' });
    const withBody = await runCli([`${server.origin}/gone`, '--no-cache', '--fail-with-body']);
    assert.equal(withBody.code, EXIT.HTTP);
    assert.equal(withBody.stdout.toString(), 'no such thing\n');
  });
});

describe('credentials on redirects (like curl without --location-trusted)', () => {
  const CREDENTIALS = [
    '-H',
    'Authorization: Bearer s3cret',
    '-H',
    'Cookie: sid=42',
    '-H',
    'Proxy-Authorization: Basic eDp5',
  ];
  const seen = (s: FaultServer, path: string): Record<string, unknown> => {
    const r = s.requests.find((q) => q.path === path);
    assert.ok(r !== undefined, `${path} was requested`);
    const h = r.headers;
    return { authorization: h['authorization'], cookie: h['cookie'], proxy: h['proxy-authorization'] };
  };
  const none = { authorization: undefined, cookie: undefined, proxy: undefined };

  it('-H Authorization, Cookie and Proxy-Authorization go to the same origin, never to another port or host', async () => {
    const to = encodeURIComponent(`${mirror.origin}/cred-landing`);
    const run = await runCli([`${server.origin}/redirect?location=${to}`, '--no-cache', ...CREDENTIALS]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.toString(), 'mirror body\n');
    assert.deepEqual(seen(mirror, '/cred-landing'), none, 'nothing of them reached the other origin');
    // a chain that leaves and comes back: once dropped, they stay dropped
    const back = encodeURIComponent(`${server.origin}/cred-back`);
    const away = encodeURIComponent(`${mirror.origin}/redirect?location=${back}`);
    const round = await runCli([`${server.origin}/redirect?location=${away}`, '--no-cache', ...CREDENTIALS]);
    assert.equal(round.code, EXIT.OK, round.stderr);
    assert.deepEqual(seen(server, '/cred-back'), none);
    // the control: a redirect within the origin keeps them
    const same = await runCli([
      `${server.origin}/redirect?location=/cred-same`,
      '--no-cache',
      ...CREDENTIALS,
    ]);
    assert.equal(same.code, EXIT.OK, same.stderr);
    assert.deepEqual(seen(server, '/cred-same'), {
      authorization: 'Bearer s3cret',
      cookie: 'sid=42',
      proxy: 'Basic eDp5',
    });
  });

  it('user:pass@ in the URL is sent as Basic to that origin only, and is not echoed', async () => {
    const to = encodeURIComponent(`${mirror.origin}/ui-landing`);
    const url = `http://alice:pa%40ss@127.0.0.1:${server.port}/redirect?location=${to}`;
    const run = await runCli([url, '--no-cache', '--json']);
    assert.equal(run.code, EXIT.OK, run.stderr);
    const first = server.requests.find((q) => q.path === '/redirect' && q.url.includes('ui-landing'))!;
    assert.equal(first.headers['authorization'], `Basic ${Buffer.from('alice:pa@ss').toString('base64')}`);
    assert.deepEqual(seen(mirror, '/ui-landing'), none);
    assert.equal(parseJson(run)['servedUrl'], `${mirror.origin}/ui-landing`);
    // stderr (which ends up in logs) never shows the password
    const failed = await runCli([
      'http://alice:hunter2@127.0.0.1:1/x',
      '--fallback',
      'http://127.0.0.1:1/y',
      '--no-cache',
      '--retries',
      '0',
      '-v',
    ]);
    assert.equal(failed.code, EXIT.ALL_TIERS_FAILED, failed.stderr);
    assert.doesNotMatch(failed.stderr, /hunter2/);
    assert.match(failed.stderr, /alice:\*\*\*@/);
  });

  it('--json never shows the password of user:pass@ (success, failure, after a redirect): user:***@', async () => {
    const auth = `http://u:s3cr3tpw@127.0.0.1:${server.port}`;
    const masked = `http://u:***@127.0.0.1:${server.port}`;
    const ok = await runCli([`${auth}/json-ok`, '--no-cache', '--json']);
    assert.equal(ok.code, EXIT.OK, ok.stderr);
    assert.equal(parseJson(ok)['url'], `${masked}/json-ok`);
    const to = encodeURIComponent(`${mirror.origin}/json-landing`);
    const redirected = await runCli([`${auth}/redirect?location=${to}`, '--no-cache', '--json']);
    assert.equal(redirected.code, EXIT.OK, redirected.stderr);
    assert.equal(parseJson(redirected)['url'], `${masked}/redirect?location=${to}`);
    const failed = await runCli([
      'http://u:s3cr3tpw@127.0.0.1:1/x',
      '--fallback',
      'http://v:an0therpw@127.0.0.1:1/y',
      '--no-cache',
      '--retries',
      '0',
      '--json',
    ]);
    assert.equal(failed.code, EXIT.ALL_TIERS_FAILED, failed.stderr);
    assert.equal(parseJson(failed)['url'], 'http://u:***@127.0.0.1:1/x');
    for (const run of [ok, redirected, failed]) {
      assert.doesNotMatch(run.stdout.toString(), /s3cr3tpw|an0therpw/);
      assert.doesNotMatch(run.stderr, /s3cr3tpw|an0therpw/);
    }
  });

  it('-H credentials go to a --fallback on the same origin only, never to a mirror on another origin', async () => {
    const run = await runCli([
      `${server.origin}/fb-down?status=503`,
      '--fallback',
      `${mirror.origin}/fb-mirror`,
      '--no-cache',
      '--retries',
      '0',
      ...CREDENTIALS,
    ]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.toString(), 'mirror body\n');
    assert.equal(seen(server, '/fb-down').authorization, 'Bearer s3cret');
    assert.deepEqual(seen(mirror, '/fb-mirror'), none, 'nothing of them reached the other origin');
    // the control: a fallback on the primary's own origin gets them
    const same = await runCli([
      `${server.origin}/fb-down2?status=503`,
      '--fallback',
      `${server.origin}/fb-same`,
      '--no-cache',
      '--retries',
      '0',
      ...CREDENTIALS,
    ]);
    assert.equal(same.code, EXIT.OK, same.stderr);
    assert.deepEqual(seen(server, '/fb-same'), {
      authorization: 'Bearer s3cret',
      cookie: 'sid=42',
      proxy: 'Basic eDp5',
    });
  });
});

describe('TLS: -k and --cacert', () => {
  let https: Server;
  let origin: string;
  let certFile: string;
  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'http-get-tls-'));
    certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
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
          '/CN=127.0.0.1',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
          '-days',
          '1',
          '-keyout',
          keyFile,
          '-out',
          certFile,
        ],
        { stdio: 'pipe' },
      );
    } catch (error) {
      throw new Error(
        `openssl is needed for the TLS tests (apt-get install openssl): ${(error as Error).message}`,
        { cause: error },
      );
    }
    https = createHttpsServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
      // /to-http: a downgrade to the plain-HTTP fault server
      if (req.url === '/to-http') res.writeHead(302, { location: `${server.origin}/downgraded` }).end();
      else res.end('secure body\n');
    });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    origin = `https://127.0.0.1:${(https.address() as { port: number }).port}`;
  });
  after(() => new Promise<void>((resolve) => https.close(() => resolve())));

  it('a certificate nobody vouches for: exit 7, a TLS error; not retried', async () => {
    const run = await runCli([`${origin}/`, '--no-cache', '--json']);
    assert.equal(run.code, EXIT.NETWORK);
    const doc = parseJson(run);
    assert.match((doc['error'] as { message: string }).message, /TLS failure/);
    assert.equal(doc['attempts'], 1);
  });

  it('--cacert trusts it', async () => {
    const run = await runCli([`${origin}/`, '--no-cache', '--cacert', certFile]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.toString(), 'secure body\n');
  });

  it('a redirect from https to http is followed without the credentials (-H and user:pass@)', async () => {
    const run = await runCli([
      `https://bob:pw@${origin.slice('https://'.length)}/to-http`,
      '--no-cache',
      '--cacert',
      certFile,
      '-H',
      'Cookie: sid=42',
      '-H',
      'Authorization: Bearer s3cret',
    ]);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.toString(), 'ok');
    const landed = server.requests.find((q) => q.path === '/downgraded')!;
    assert.equal(landed.headers['authorization'], undefined);
    assert.equal(landed.headers['cookie'], undefined);
  });

  it('-k skips the check, with a warning that -q does not silence', async () => {
    const run = await runCli([`${origin}/`, '--no-cache', '-k', '-q']);
    assert.equal(run.code, EXIT.OK, run.stderr);
    assert.equal(run.stdout.toString(), 'secure body\n');
    assert.match(run.stderr, /WARNING: TLS certificates are NOT verified/);
  });
});

describe('what a demanding user noticed', () => {
  it('a 100 KB URL is not echoed whole into the error line', async () => {
    const url = `http://127.0.0.1:1/${'a'.repeat(100_000)}`;
    const run = await runCli([url, '--no-cache', '--retries', '0']);
    assert.equal(run.code, EXIT.NETWORK);
    for (const line of run.stderr.split('\n'))
      assert.ok(line.length < 400, `a ${line.length}-character line`);
    assert.match(run.stderr, /…\(99\d{3} more characters\)…/);
    assert.doesNotMatch(run.stderr, STACK_FRAME);
  });

  it('an unsolicited 304 is a protocol failure (exit 7), not a status error; a mirror serves', async () => {
    const alone = await runCli([`${server.origin}/status/304`, '--no-cache', '--retries', '0']);
    assert.equal(alone.code, EXIT.NETWORK, alone.stderr);
    assert.match(alone.stderr, /unsolicited 304/);
    const mirrored = await runCli([
      `${server.origin}/status/304`,
      '--fallback',
      `${mirror.origin}/doc`,
      '--no-cache',
      '--retries',
      '0',
    ]);
    assert.equal(mirrored.code, EXIT.OK);
    assert.equal(mirrored.stdout.toString(), 'mirror body\n');
  });
});
