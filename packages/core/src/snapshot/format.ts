/**
 * The snapshot file format (version 1): a fixed 72-byte header, then the payload.
 *
 * | offset | size | field |
 * | --- | --- | --- |
 * | 0 | 8 | magic `89 42 57 53 4E 41 50 0A` (`\x89BWSNAP\n`; the high byte and the LF catch 7-bit and text-mode damage) |
 * | 8 | 2 | format version, uint16 BE (1) |
 * | 10 | 1 | payload encoding: 0 bytes, 1 UTF-8 string, 2 JSON |
 * | 11 | 5 | reserved, zero |
 * | 16 | 8 | generation, uint64 BE (≤ 2^53 − 1) |
 * | 24 | 8 | created at, ms since the Unix epoch, uint64 BE |
 * | 32 | 8 | payload length in bytes, uint64 BE |
 * | 40 | 32 | SHA-256 over bytes 0–39 of the header followed by the payload |
 *
 * Everything is checked (length, magic, version, fields, checksum) before the payload is decoded.
 */
import { createHash } from 'node:crypto';

export const MAGIC = Buffer.from([0x89, 0x42, 0x57, 0x53, 0x4e, 0x41, 0x50, 0x0a]);
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 72;
const CHECKSUM_OFFSET = 40;

export type SnapshotEncoding = 'bytes' | 'utf8' | 'json';
const ENCODINGS: readonly SnapshotEncoding[] = ['bytes', 'utf8', 'json'];

/** Why a snapshot file was rejected. */
export type CorruptReason =
  /** Shorter than the header. */
  | 'truncated-header'
  | 'bad-magic'
  /** Written by a newer format version this code cannot read (not quarantined). */
  | 'unsupported-version'
  /** Reserved bytes not zero, unknown encoding, or an impossible field. */
  | 'bad-header'
  /** The generation in the header differs from the one in the file name. */
  | 'generation-mismatch'
  /** The file is shorter or longer than the header says. */
  | 'length-mismatch'
  | 'checksum-mismatch'
  /** The checksum matched but the payload does not decode (e.g. invalid JSON). */
  | 'bad-payload';

/** A snapshot file that failed verification, as reported by `load()` and `onCorruption`. */
export interface CorruptSnapshot {
  readonly generation: number;
  /** Where the file was found. */
  readonly path: string;
  readonly reason: CorruptReason;
  /** A human-readable detail, e.g. `expected 4096 payload bytes, found 1000`. */
  readonly detail: string;
  /** Where it was moved (`<dir>/quarantine/<file>`), if it was quarantined. */
  readonly quarantinedTo?: string;
}

export interface DecodedSnapshot {
  readonly generation: number;
  readonly createdAt: number;
  readonly encoding: SnapshotEncoding;
  readonly payload: Buffer;
}

export class SnapshotFormatError extends Error {
  override readonly name = 'SnapshotFormatError';
  constructor(
    readonly reason: CorruptReason,
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

/** Serialises `payload` with its header into one buffer. */
export function encodeSnapshot(
  generation: number,
  createdAt: number,
  encoding: SnapshotEncoding,
  payload: Uint8Array,
): Buffer {
  const out = Buffer.alloc(HEADER_BYTES + payload.length);
  MAGIC.copy(out, 0);
  out.writeUInt16BE(FORMAT_VERSION, 8);
  out.writeUInt8(ENCODINGS.indexOf(encoding), 10);
  out.writeBigUInt64BE(BigInt(generation), 16);
  out.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(createdAt))), 24);
  out.writeBigUInt64BE(BigInt(payload.length), 32);
  out.set(payload, HEADER_BYTES);
  checksum(out.subarray(0, CHECKSUM_OFFSET), out.subarray(HEADER_BYTES)).copy(out, CHECKSUM_OFFSET);
  return out;
}

function checksum(header: Uint8Array, payload: Uint8Array): Buffer {
  return createHash('sha256').update(header).update(payload).digest();
}

function u64(buf: Buffer, offset: number, field: string): number {
  const v = buf.readBigUInt64BE(offset);
  if (v > BigInt(Number.MAX_SAFE_INTEGER))
    throw new SnapshotFormatError('bad-header', `${field} ${v} is too large`);
  return Number(v);
}

/**
 * Verifies a whole snapshot file and returns its fields. Throws {@link SnapshotFormatError} naming
 * the first check that failed. `expectedGeneration` is the generation in the file name.
 */
export function decodeSnapshot(file: Buffer, expectedGeneration?: number): DecodedSnapshot {
  if (file.length < HEADER_BYTES)
    throw new SnapshotFormatError(
      'truncated-header',
      `${file.length} bytes, a snapshot has at least ${HEADER_BYTES}`,
    );
  if (!file.subarray(0, 8).equals(MAGIC))
    throw new SnapshotFormatError('bad-magic', 'not a Bulwark snapshot');
  const version = file.readUInt16BE(8);
  if (version !== FORMAT_VERSION)
    throw new SnapshotFormatError(
      version > FORMAT_VERSION ? 'unsupported-version' : 'bad-header',
      `format version ${version}, this code reads ${FORMAT_VERSION}`,
    );
  const encoding = ENCODINGS[file.readUInt8(10)];
  if (encoding === undefined)
    throw new SnapshotFormatError('bad-header', `unknown encoding ${file.readUInt8(10)}`);
  if (file.readUInt8(11) !== 0 || file.readUInt32BE(12) !== 0)
    throw new SnapshotFormatError('bad-header', 'reserved bytes are not zero');
  const generation = u64(file, 16, 'generation');
  const createdAt = u64(file, 24, 'createdAt');
  const length = u64(file, 32, 'payload length');
  if (expectedGeneration !== undefined && generation !== expectedGeneration)
    throw new SnapshotFormatError(
      'generation-mismatch',
      `header says generation ${generation}, file name says ${expectedGeneration}`,
    );
  if (file.length - HEADER_BYTES !== length)
    throw new SnapshotFormatError(
      'length-mismatch',
      `header says ${length} payload bytes, file has ${file.length - HEADER_BYTES}`,
    );
  const payload = file.subarray(HEADER_BYTES);
  const expected = file.subarray(CHECKSUM_OFFSET, HEADER_BYTES);
  if (!checksum(file.subarray(0, CHECKSUM_OFFSET), payload).equals(expected))
    throw new SnapshotFormatError('checksum-mismatch', 'SHA-256 of header and payload does not match');
  return { generation, createdAt, encoding, payload };
}

/** Turns a value into payload bytes and its encoding. */
export function toPayload(data: unknown): { encoding: SnapshotEncoding; payload: Uint8Array } {
  if (data instanceof Uint8Array) return { encoding: 'bytes', payload: data };
  if (typeof data === 'string') return { encoding: 'utf8', payload: Buffer.from(data, 'utf8') };
  const json = JSON.stringify(data);
  if (json === undefined) throw new TypeError('snapshot data must be a Uint8Array, a string or a JSON value');
  return { encoding: 'json', payload: Buffer.from(json, 'utf8') };
}

/** The inverse of {@link toPayload}; throws `bad-payload` when the bytes do not decode. */
export function fromPayload(encoding: SnapshotEncoding, payload: Buffer): unknown {
  if (encoding === 'bytes') return payload;
  const text = new TextDecoder('utf-8', { fatal: true });
  try {
    const s = text.decode(payload);
    return encoding === 'utf8' ? s : JSON.parse(s);
  } catch (error) {
    throw new SnapshotFormatError(
      'bad-payload',
      `payload is not valid ${encoding}: ${(error as Error).message}`,
    );
  }
}
