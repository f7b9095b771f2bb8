import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  FORMAT_VERSION,
  HEADER_BYTES,
  SnapshotFormatError,
  decodeSnapshot,
  encodeSnapshot,
  fromPayload,
  toPayload,
  type CorruptReason,
} from './format.js';

function reasonOf(file: Buffer, generation?: number): CorruptReason | 'ok' {
  try {
    decodeSnapshot(file, generation);
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof SnapshotFormatError);
    return error.reason;
  }
}

describe('snapshot format', () => {
  it('round-trips bytes, strings and JSON with their header fields', () => {
    for (const data of [new Uint8Array([0, 1, 255]), 'héllo', { a: [1, 'x', null], b: { c: true } }, [], 0]) {
      const { encoding, payload } = toPayload(data);
      const file = encodeSnapshot(42, 1_700_000_000_123, encoding, payload);
      assert.equal(file.length, HEADER_BYTES + payload.length);
      const d = decodeSnapshot(file, 42);
      assert.equal(d.generation, 42);
      assert.equal(d.createdAt, 1_700_000_000_123);
      assert.equal(d.encoding, encoding);
      const back = fromPayload(d.encoding, d.payload);
      if (data instanceof Uint8Array) assert.ok(Buffer.from(data).equals(back as Buffer));
      else assert.deepEqual(back, data);
    }
  });

  it('starts with the magic and format version', () => {
    const file = encodeSnapshot(1, 0, 'bytes', Buffer.alloc(0));
    assert.equal(file.subarray(0, 8).toString('latin1'), '\x89BWSNAP\n');
    assert.equal(file.readUInt16BE(8), FORMAT_VERSION);
  });

  it('detects every single-bit flip anywhere in the file', () => {
    const file = encodeSnapshot(7, 123, 'utf8', Buffer.from('x'.repeat(300)));
    let detected = 0;
    for (let i = 0; i < file.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = Buffer.from(file);
        copy[i]! ^= 1 << bit;
        if (reasonOf(copy, 7) !== 'ok') detected++;
      }
    }
    assert.equal(detected, file.length * 8);
  });

  it('detects every truncation and appended garbage', () => {
    const file = encodeSnapshot(3, 0, 'bytes', Buffer.alloc(500, 7));
    for (let len = 0; len < file.length; len++) {
      const r = reasonOf(file.subarray(0, len), 3);
      assert.equal(r, len < HEADER_BYTES ? 'truncated-header' : 'length-mismatch', `length ${len}`);
    }
    assert.equal(reasonOf(Buffer.concat([file, Buffer.from('junk')]), 3), 'length-mismatch');
    assert.equal(reasonOf(Buffer.alloc(0)), 'truncated-header');
    assert.equal(reasonOf(Buffer.alloc(100)), 'bad-magic');
  });

  it('names the failed check: generation, version, reserved bytes, encoding, payload', () => {
    const file = encodeSnapshot(5, 0, 'json', Buffer.from('{"a":1}'));
    assert.equal(reasonOf(file, 6), 'generation-mismatch');
    const v2 = Buffer.from(file);
    v2.writeUInt16BE(2, 8);
    assert.equal(reasonOf(v2), 'unsupported-version');
    const v0 = Buffer.from(file);
    v0.writeUInt16BE(0, 8);
    assert.equal(reasonOf(v0), 'bad-header');
    const reserved = Buffer.from(file);
    reserved[13] = 1;
    assert.equal(reasonOf(reserved), 'bad-header');
    const enc = Buffer.from(file);
    enc[10] = 9;
    assert.equal(reasonOf(enc), 'bad-header');
    // a checksummed payload that is not JSON (only a bug could write it) is still refused
    const bad = encodeSnapshot(1, 0, 'json', Buffer.from('{nope'));
    const d = decodeSnapshot(bad, 1);
    assert.throws(() => fromPayload(d.encoding, d.payload), { reason: 'bad-payload' });
    const badUtf8 = encodeSnapshot(1, 0, 'utf8', Buffer.from([0xff, 0xfe]));
    const u = decodeSnapshot(badUtf8, 1);
    assert.throws(() => fromPayload(u.encoding, u.payload), { reason: 'bad-payload' });
  });

  it('refuses data that is not bytes, a string or JSON', () => {
    assert.throws(() => toPayload(undefined), TypeError);
    assert.throws(() => toPayload(() => 1), TypeError);
    assert.throws(() => toPayload(10n), TypeError);
  });
});
