// The framed binary protocol (docs/data-protocol.md): codec shared by the storage servers' data
// path, the client's framed transport and the metaservers' framed RPC (common/framed-rpc.ts). A frame is a fixed 24-byte little-endian header, a JSON header
// of headerLength bytes, and a raw payload of payloadLength bytes (chunk data).
import { assert, flyfsError, isErrorCode, type ErrorCode, type FlyfsError } from './errors.js';
import { limits } from './limits.js';

export const FRAME_MAGIC = 0x52465946; // 'FYFR' as little-endian bytes
export const FRAME_VERSION = 1;
export const FIXED_HEADER_BYTES = 24;
/** Request ids are u32 and wrap; a connection never has 2^32 requests outstanding. */
export const REQUEST_ID_MAX = 0xffffffff;

export const Op = {
  WriteChunk: 1,
  ReadChunk: 2,
  RemoveChunks: 3,
  StatChunk: 4,
  /** A CRAQ message between the replicas of a chain (storageserver/peer-codec.ts). */
  Peer: 5,
  /** Many chunk reads to one server in one request (payload: JSON list; reply: JSON + data). */
  ReadChunks: 6,
  /** A unary RPC of a gRPC service definition, protobuf-encoded (common/framed-rpc.ts). */
  Rpc: 7,
} as const;
export type Op = (typeof Op)[keyof typeof Op];
/** A reply carries its request's op with this bit set. */
export const REPLY_BIT = 0x80;

export const Status = { Ok: 0, Error: 1 } as const;
export type Status = (typeof Status)[keyof typeof Status];

export interface Frame {
  op: number;
  status: number;
  requestId: number;
  header: Record<string, unknown>;
  payload: Buffer;
}

function isKnownOp(op: number): op is Op {
  return op >= Op.WriteChunk && op <= Op.Rpc;
}

/** Encodes one frame as [fixed header + JSON header, payload]; write both without joining them. */
export function encodeFrame(frame: { op: number; status?: number; requestId: number; header: object; payload?: Uint8Array }): [Buffer, Uint8Array] {
  const json = Buffer.from(JSON.stringify(frame.header));
  const payload = frame.payload ?? EMPTY;
  if (json.length > limits.frameHeaderBytesMax) throw flyfsError('FLYFS_ERR_MESSAGE_TOO_LARGE', `frame header of ${json.length} bytes`);
  if (FIXED_HEADER_BYTES + json.length + payload.length > limits.frameBytesMax) {
    throw flyfsError('FLYFS_ERR_MESSAGE_TOO_LARGE', `frame of ${FIXED_HEADER_BYTES + json.length + payload.length} bytes`);
  }
  assert(Number.isInteger(frame.requestId) && frame.requestId >= 0 && frame.requestId <= REQUEST_ID_MAX, 'request id is a u32');
  const head = Buffer.allocUnsafe(FIXED_HEADER_BYTES + json.length);
  head.writeUInt32LE(FRAME_MAGIC, 0);
  head.writeUInt8(FRAME_VERSION, 4);
  head.writeUInt8(frame.op, 5);
  head.writeUInt16LE(frame.status ?? Status.Ok, 6);
  head.writeUInt32LE(frame.requestId, 8);
  head.writeUInt32LE(json.length, 12);
  head.writeUInt32LE(payload.length, 16);
  head.writeUInt32LE(0, 20);
  json.copy(head, FIXED_HEADER_BYTES);
  return [head, payload];
}

const EMPTY = Buffer.alloc(0);

/** The reply header of a failed request: the registry code and the server's message. */
export interface ErrorReplyHeader { code: ErrorCode; message: string; hint?: string; path?: string }

export function errorReplyHeader(err: FlyfsError): ErrorReplyHeader {
  return {
    code: err.code, message: err.message,
    ...(err.hint !== undefined ? { hint: err.hint } : {}), ...(err.path !== undefined ? { path: err.path } : {}),
  };
}

export function errorFromReply(header: Record<string, unknown>): FlyfsError {
  const code = isErrorCode(header['code']) ? header['code'] : 'FLYFS_ERR_INTERNAL';
  const err = flyfsError(code);
  if (typeof header['message'] === 'string') err.message = header['message'];
  if (typeof header['hint'] === 'string' && header['hint'] !== '') err.hint = header['hint'];
  if (typeof header['path'] === 'string') err.path = header['path'];
  return err;
}

/**
 * Incremental decoder: push socket chunks in, pull whole frames out one at a time (so the caller
 * decides how many to take: that is the backpressure point). A frame that sits inside one pushed
 * chunk is handed out as a slice of it; one that spans chunks is copied once, as its bytes
 * arrive, into one buffer of the frame's size (allocated when its fixed header is known and
 * checked), so the decoder never holds a list of socket chunks for a large frame nor joins them at
 * the end. Malformed input throws FLYFS_ERR_BAD_FRAME; after that the stream is unusable and the
 * connection must be closed.
 */
export class FrameDecoder {
  /** Bytes not yet part of a frame being assembled (whole small frames, the next fixed header). */
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Total bytes of the frame being decoded, once its fixed header is known. */
  private need = 0;
  /** The frame being copied together, once it is known to span chunks. */
  private assembling: Buffer | undefined;
  private filled = 0;
  private failed = false;

  constructor(private readonly expectReplies: boolean) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.assembling !== undefined && this.filled < this.need) {
      const k = Math.min(chunk.length, this.need - this.filled);
      chunk.copy(this.assembling, this.filled, 0, k);
      this.filled += k;
      if (k === chunk.length) return;
      chunk = chunk.subarray(k);
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Bytes received and not yet handed out as frames. */
  get bufferedBytes(): number { return this.buffered + (this.assembling === undefined ? 0 : this.filled); }

  /** The next whole frame, or undefined until more bytes arrive. */
  next(): Frame | undefined {
    assert(!this.failed, 'decoder used after a bad frame');
    let bytes: Buffer;
    if (this.assembling !== undefined) {
      if (this.filled < this.need) return undefined;
      bytes = this.assembling;
      this.assembling = undefined;
      this.filled = 0;
    } else {
      if (this.need === 0) {
        if (this.buffered < FIXED_HEADER_BYTES) return undefined;
        this.need = this.checkFixedHeader(this.peek(FIXED_HEADER_BYTES));
      }
      if (this.chunks[0]!.length >= this.need) {
        bytes = this.take(this.need);
      } else {
        // The frame spans chunks: what is buffered (all of it belongs to this frame, or the
        // frame is complete and is copied out now) goes into the frame's buffer; later pushes
        // copy straight in.
        const out = Buffer.allocUnsafe(this.need);
        const n = Math.min(this.buffered, this.need);
        this.copyOut(out, n);
        if (n < this.need) {
          this.assembling = out;
          this.filled = n;
          return undefined;
        }
        bytes = out;
      }
    }
    assert(bytes.length === this.need, 'a decoded frame has the length its fixed header gave');
    this.need = 0;
    return this.decode(bytes);
  }

  private decode(bytes: Buffer): Frame {
    const headerLength = bytes.readUInt32LE(12);
    let header: unknown;
    try {
      header = JSON.parse(bytes.toString('utf8', FIXED_HEADER_BYTES, FIXED_HEADER_BYTES + headerLength));
    } catch {
      throw this.fail('frame header is not JSON');
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) throw this.fail('frame header is not an object');
    return {
      op: bytes.readUInt8(5) & ~REPLY_BIT,
      status: bytes.readUInt16LE(6),
      requestId: bytes.readUInt32LE(8),
      header: header as Record<string, unknown>,
      payload: bytes.subarray(FIXED_HEADER_BYTES + headerLength),
    };
  }

  private checkFixedHeader(h: Buffer): number {
    if (h.readUInt32LE(0) !== FRAME_MAGIC) throw this.fail(`bad magic 0x${h.readUInt32LE(0).toString(16)}`);
    if (h.readUInt8(4) !== FRAME_VERSION) throw this.fail(`unsupported version ${h.readUInt8(4)}`);
    const rawOp = h.readUInt8(5);
    const isReply = (rawOp & REPLY_BIT) !== 0;
    if (isReply !== this.expectReplies || !isKnownOp(rawOp & ~REPLY_BIT)) throw this.fail(`unexpected op 0x${rawOp.toString(16)}`);
    const status = h.readUInt16LE(6);
    if (status !== Status.Ok && status !== Status.Error) throw this.fail(`bad status ${status}`);
    const headerLength = h.readUInt32LE(12);
    const payloadLength = h.readUInt32LE(16);
    if (headerLength > limits.frameHeaderBytesMax) throw this.fail(`header of ${headerLength} bytes exceeds ${limits.frameHeaderBytesMax}`);
    const total = FIXED_HEADER_BYTES + headerLength + payloadLength;
    if (total > limits.frameBytesMax) throw this.fail(`frame of ${total} bytes exceeds ${limits.frameBytesMax}`);
    return total;
  }

  private fail(detail: string): Error {
    this.failed = true;
    this.chunks = [];
    this.buffered = 0;
    this.assembling = undefined;
    this.filled = 0;
    return flyfsError('FLYFS_ERR_BAD_FRAME', detail);
  }

  /** The first n buffered bytes without consuming them (copies only when they span chunks). */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return Buffer.concat(this.chunks, n);
  }

  /** Consumes the first n bytes of the first chunk, which holds them: a slice, no copy. */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }

  /** Consumes the first n buffered bytes into `out`. */
  private copyOut(out: Buffer, n: number): void {
    let copied = 0;
    while (copied < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - copied);
      c.copy(out, copied, 0, k);
      copied += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
  }
}

// Header fields of each request, shared by both sides so they cannot drift.
export interface WriteRequestHeader { chainId: number; chainVersion: number; inodeId: number; index: number; offset: number; chunkSize: number; clientId: string; requestId: number }
export interface ReadRequestHeader { chainId: number; chainVersion: number; inodeId: number; index: number; offset: number; length: number }
export interface RemoveRequestHeader { chainId: number; chainVersion: number; inodeId: number; fromIndex: number }
export interface StatRequestHeader { chainId: number; chainVersion: number; inodeId: number; index: number }
export interface WriteReplyHeader { chunkLength: number; version: number }
export interface ReadReplyHeader { chunkLength: number; exists: boolean }
export interface RemoveReplyHeader { removed: number }
export interface StatReplyHeader { exists: boolean; length: number; version: number; crc32c: number }

/** Reads a non-negative safe integer field of a decoded header, or throws FLYFS_ERR_BAD_FRAME. */
export function uintField(header: Record<string, unknown>, name: string): number {
  const v = header[name];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw flyfsError('FLYFS_ERR_BAD_FRAME', `header field '${name}' must be a non-negative integer`);
  return v;
}

export function stringField(header: Record<string, unknown>, name: string): string {
  const v = header[name];
  if (v === undefined) return '';
  if (typeof v !== 'string') throw flyfsError('FLYFS_ERR_BAD_FRAME', `header field '${name}' must be a string`);
  return v;
}

/** A payload that carries JSON beside raw bytes: [u32 LE JSON length][JSON][bytes...]. */
export function packJsonPayload(json: unknown, parts: readonly Uint8Array[]): Buffer {
  const text = Buffer.from(JSON.stringify(json));
  const prefix = Buffer.allocUnsafe(4);
  prefix.writeUInt32LE(text.length, 0);
  return Buffer.concat([prefix, text, ...parts]);
}

/** The JSON of a packed payload and the offset where its bytes start; FLYFS_ERR_BAD_FRAME when malformed. */
export function unpackJsonPayload(payload: Buffer, what: string): { json: unknown; bytesAt: number } {
  if (payload.length < 4) throw flyfsError('FLYFS_ERR_BAD_FRAME', `${what}: payload too short`);
  const n = payload.readUInt32LE(0);
  if (4 + n > payload.length) throw flyfsError('FLYFS_ERR_BAD_FRAME', `${what}: JSON runs past the payload`);
  try {
    return { json: JSON.parse(payload.toString('utf8', 4, 4 + n)), bytesAt: 4 + n };
  } catch {
    throw flyfsError('FLYFS_ERR_BAD_FRAME', `${what}: JSON does not parse`);
  }
}
