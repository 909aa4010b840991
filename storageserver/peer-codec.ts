// CRAQ messages between storage servers on the framed data path (Op.Peer), in one of two forms:
// - small: the frame's JSON header is `{"peer": message JSON}` and its payload the bytes of the
//   contents, laid end to end (an update's content is sent as it is, never copied into a frame);
// - packed (a message whose JSON does not fit a frame header, such as a big sync batch): the
//   header is empty and the payload [u32 LE length of the message JSON][message JSON][content
//   bytes...].
// Either way every content (an update's, a sync batch's) is described in the JSON by length,
// CRC32C and tombstone flag, and its bytes follow in the order they are described. Decoded
// contents point into the frame's payload (no copy), and each is checked against its CRC32C as
// it is decoded, in the pass that also computes its block checksums: bytes damaged on the way
// are refused (the sender retransmits), never stored under a checksum they do not have.
import { flyfsError } from '../common/errors.js';
import { packJsonPayload, unpackJsonPayload } from '../common/frame.js';
import type { ChunkKey } from '../common/ids.js';
import { limits } from '../common/limits.js';
import { blockSumsOf } from './chunk-engine.js';
import type { StoredMessage } from './replicated-target.js';
import type { StoredContent } from './stored-content.js';

/** A peer frame: its JSON header and its payload. */
export interface PeerFrame { header: Record<string, unknown>; payload: Buffer }

/** Room kept in a frame header beside the message JSON (the `{"peer":…}` around it). */
const headerWrapBytes = 16;

interface WireContent { length: number; crc32c: number; removed: boolean }


/** Encodes a message; `payload` gives each content's bytes (from memory or its file). */
export async function encodePeerMessage(
  message: StoredMessage,
  payload: (content: StoredContent, chunk: ChunkKey, version: number) => Buffer | Promise<Buffer>,
): Promise<PeerFrame> {
  const parts: (Buffer | Promise<Buffer>)[] = [];
  const describe = (content: StoredContent, chunk: ChunkKey, version: number): WireContent => {
    parts.push(payload(content, chunk, version));
    return { length: content.length, crc32c: content.crc32c, removed: content.removed };
  };
  const b = message.body;
  let body: unknown;
  switch (b.kind) {
    case 'update': body = { ...b, content: describe(b.content, b.chunk, b.version) }; break;
    case 'syncData':
      body = {
        ...b,
        chunks: b.chunks.map((c) => ({ ...c, content: describe(c.content, c.chunk, c.version) })),
        pendings: b.pendings.map((c) => ({ ...c, content: describe(c.content, c.chunk, c.version) })),
      };
      break;
    default: body = b;
  }
  const json = { ...message, body };
  const bytes = await Promise.all(parts);
  const text = JSON.stringify(json);
  if (Buffer.byteLength(text) + headerWrapBytes <= limits.frameHeaderBytesMax && bytes.length <= 1) {
    return { header: { peer: json }, payload: bytes[0] ?? EMPTY };
  }
  return { header: {}, payload: packJsonPayload(json, bytes) };
}

const EMPTY = Buffer.alloc(0);

/**
 * Decodes a peer frame; FLYFS_ERR_BAD_FRAME when it does not add up, FLYFS_ERR_CHECKSUM when a
 * content's bytes do not have the CRC32C the message gives them.
 */
export function decodePeerMessage(frame: PeerFrame): StoredMessage {
  const bad = (why: string): never => { throw flyfsError('FLYFS_ERR_BAD_FRAME', `peer message: ${why}`); };
  const payload = frame.payload;
  let json: unknown;
  let bytesAt: number;
  if (frame.header['peer'] !== undefined) { json = frame.header['peer']; bytesAt = 0; } else ({ json, bytesAt } = unpackJsonPayload(payload, 'peer message'));
  const message = json as StoredMessage;
  if (typeof message !== 'object' || message === null || typeof message.body !== 'object' || message.body === null) bad('no body');
  let at = bytesAt;
  const take = (w: unknown): StoredContent => {
    const c = w as Partial<WireContent> | null;
    if (c === null || typeof c !== 'object' || !Number.isInteger(c.length) || !Number.isInteger(c.crc32c) || typeof c.removed !== 'boolean') return bad('content description');
    const n = c.length!;
    if (n < 0 || at + (c.removed ? 0 : n) > payload.length) bad('content runs past the payload');
    if (c.removed) return { length: n, crc32c: c.crc32c!, removed: true, bytes: undefined };
    const bytes = payload.subarray(at, at + n);
    at += n;
    const summed = blockSumsOf(bytes);
    if (summed.crc32c !== c.crc32c) throw flyfsError('FLYFS_ERR_CHECKSUM', `peer message: content of ${n} bytes does not match its CRC32C`);
    return { length: n, crc32c: c.crc32c!, removed: false, bytes, blockSums: summed.sums };
  };
  const b = message.body as unknown as Record<string, unknown>;
  switch (b['kind']) {
    case 'update': b['content'] = take(b['content']); break;
    case 'syncData':
      if (!Array.isArray(b['chunks']) || !Array.isArray(b['pendings']) || !Array.isArray(b['removes']) || !Array.isArray(b['clients'])) bad('sync batch lists');
      for (const list of [b['chunks'], b['pendings']] as Record<string, unknown>[][]) for (const c of list) c['content'] = take(c['content']);
      break;
    case 'ack': case 'syncRequest': break;
    default: bad(`kind ${String(b['kind'])}`);
  }
  if (at !== payload.length) bad('bytes left over');
  return message;
}
