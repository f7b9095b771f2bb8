// The cross-service budget header: formatting on the sender, strict parsing with a cap on the receiver,
// and both through a real HTTP hop (node:http on loopback).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import {
  DEADLINE_HEADER,
  DEADLINE_HEADER_DEFAULTS,
  formatDeadlineHeader,
  parseDeadlineHeader,
} from './deadline-header.js';
import { InvalidOptionError } from './errors.js';

describe('formatDeadlineHeader', () => {
  it('sends the remaining time minus the allowance, in whole ms, never negative; no deadline, no header', () => {
    assert.equal(DEADLINE_HEADER, 'bulwark-timeout-ms');
    assert.equal(DEADLINE_HEADER_DEFAULTS.allowanceMs, 5);
    assert.equal(formatDeadlineHeader(100), '95');
    assert.equal(formatDeadlineHeader(100.9), '95');
    assert.equal(formatDeadlineHeader(100, { allowanceMs: 0 }), '100');
    assert.equal(formatDeadlineHeader(5), '0');
    assert.equal(formatDeadlineHeader(0), '0');
    assert.equal(formatDeadlineHeader(-20), '0');
    assert.equal(formatDeadlineHeader(Infinity), undefined);
    assert.equal(formatDeadlineHeader(1e15), '9999999999', 'at most 10 digits');
    assert.throws(() => formatDeadlineHeader(NaN), TypeError);
    assert.throws(
      () => formatDeadlineHeader(10, { allowanceMs: -1 }),
      (e) => e instanceof InvalidOptionError && e.option === 'formatDeadlineHeader.allowanceMs',
    );
  });
});

describe('parseDeadlineHeader', () => {
  it('reads a budget, caps it at the receiver’s maximum, and treats absence as no deadline', () => {
    assert.deepEqual(parseDeadlineHeader(undefined), { ok: true, present: false });
    assert.deepEqual(parseDeadlineHeader([]), { ok: true, present: false });
    assert.deepEqual(parseDeadlineHeader('250'), { ok: true, present: true, timeoutMs: 250, capped: false });
    assert.deepEqual(parseDeadlineHeader('0'), { ok: true, present: true, timeoutMs: 0, capped: false });
    assert.deepEqual(parseDeadlineHeader('007'), { ok: true, present: true, timeoutMs: 7, capped: false });
    assert.deepEqual(parseDeadlineHeader('60001'), {
      ok: true,
      present: true,
      timeoutMs: 60_000,
      capped: true,
    });
    assert.deepEqual(parseDeadlineHeader('5000', { maxMs: 1_000 }), {
      ok: true,
      present: true,
      timeoutMs: 1_000,
      capped: true,
    });
    assert.deepEqual(parseDeadlineHeader(['40', '40']), {
      ok: true,
      present: true,
      timeoutMs: 40,
      capped: false,
    });
    for (const maxMs of [0, 1.5, -1, NaN, Infinity, '100']) {
      assert.throws(
        () => parseDeadlineHeader('1', { maxMs: maxMs as never }),
        (e) => e instanceof InvalidOptionError && e.option === 'parseDeadlineHeader.maxMs',
        `maxMs ${String(maxMs)}: whole milliseconds, at least 1`,
      );
    }
  });

  it('refuses anything but 1–10 ASCII digits, saying what was wrong', () => {
    for (const value of [
      '',
      ' 100',
      '100 ',
      '+100',
      '-1',
      '1.5',
      '1e3',
      '0x10',
      '100ms',
      '100m', // grpc-timeout's unit suffix is not ours
      '٣',
      '１２',
      '12345678901',
      'NaN',
      'Infinity',
      '1,2',
      'x'.repeat(10_000),
    ]) {
      const result = parseDeadlineHeader(value);
      assert.equal(result.ok, false, JSON.stringify(value));
      assert.match((result as { reason: string }).reason, /bulwark-timeout-ms/);
      assert.ok(
        (result as { reason: string }).reason.length < 200,
        'the reason quotes a long value cut short',
      );
    }
    assert.equal(parseDeadlineHeader(['40', '50']).ok, false, 'repeated with different values');
    assert.equal(parseDeadlineHeader(5 as never).ok, false);
  });

  it('property: what the sender formats, the receiver reads back (capped), for any remaining time', () => {
    fc.assert(
      fc.property(
        fc.double({ min: -1e6, max: 1e12, noNaN: true }),
        fc.integer({ min: 0, max: 50 }),
        fc.integer({ min: 1, max: 3_600_000 }),
        (remainingMs, allowanceMs, maxMs) => {
          const header = formatDeadlineHeader(remainingMs, { allowanceMs })!;
          const parsed = parseDeadlineHeader(header, { maxMs });
          assert.ok(parsed.ok && parsed.present);
          const sent = Math.min(Math.max(0, Math.floor(remainingMs - allowanceMs)), 9_999_999_999);
          assert.equal(parsed.timeoutMs, Math.min(sent, maxMs));
          assert.ok(parsed.timeoutMs <= Math.max(0, remainingMs - allowanceMs));
        },
      ),
    );
  });

  it('through a real HTTP hop: the header arrives as sent; a repeated header arrives joined and is refused', async () => {
    const seen: IncomingHttpHeaders[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers);
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      await new Promise<void>((resolve, reject) => {
        const req = request(
          { port, host: '127.0.0.1', headers: { [DEADLINE_HEADER]: formatDeadlineHeader(120)! } },
          (res) => {
            res.resume();
            res.on('end', resolve);
          },
        );
        req.on('error', reject);
        req.end();
      });
      // a raw client repeats the header (a proxy that appended one)
      await new Promise<void>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.write(
            `GET / HTTP/1.1\r\nHost: x\r\nBulwark-Timeout-Ms: 100\r\nbulwark-timeout-ms: 200\r\nConnection: close\r\n\r\n`,
          );
        });
        socket.on('error', reject);
        socket.on('close', () => resolve());
        socket.resume();
      });
      assert.deepEqual(parseDeadlineHeader(seen[0]![DEADLINE_HEADER]), {
        ok: true,
        present: true,
        timeoutMs: 115,
        capped: false,
      });
      assert.equal(seen[1]![DEADLINE_HEADER], '100, 200');
      assert.equal(parseDeadlineHeader(seen[1]![DEADLINE_HEADER]).ok, false);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
