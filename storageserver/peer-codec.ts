// CRAQ messages between storage servers on the framed data path (Op.Peer). The frame's JSON
// header is empty; its payload is [u32 LE length of the message JSON][message JSON][content
// bytes...]: every content (an update's, a sync batch's) is described in the JSON by length,
// CRC32C and tombstone flag, and its bytes follow in the order they are described. Decoded
// contents point into the frame's payload (no copy).
import { flyfsError } from '../common/errors.js';
import { packJsonPayload, unpackJsonPayload } from '../common/frame.js';
import type { ChunkKey } from '../common/ids.js';
import type { StoredMessage } from './replicated-target.js';
import type { StoredContent } from './stored-content.js';

interface WireContent { length: number; crc32c: number; removed: boolean }


/** Encodes a message; `payload` gives each content's bytes (from memory or its file). */
export async function encodePeerMessage(
  message: StoredMessage,
  payload: (content: StoredContent, chunk: ChunkKey, version: number) => Buffer | Promise<Buffer>,
): Promise<Buffer> {
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
  return packJsonPayload({ ...message, body }, await Promise.all(parts));
}

/** Decodes a peer frame's payload; FLYFS_ERR_BAD_FRAME when it does not add up. */
export function decodePeerMessage(payload: Buffer): StoredMessage {
  const bad = (why: string): never => { throw flyfsError('FLYFS_ERR_BAD_FRAME', `peer message: ${why}`); };
  const { json, bytesAt } = unpackJsonPayload(payload, 'peer message');
  const message = json as StoredMessage;
  if (typeof message !== 'object' || message === null || typeof message.body !== 'object' || message.body === null) bad('no body');
  let at = bytesAt;
  const take = (w: unknown): StoredContent => {
    const c = w as Partial<WireContent> | null;
    if (c === null || typeof c !== 'object' || !Number.isInteger(c.length) || !Number.isInteger(c.crc32c) || typeof c.removed !== 'boolean') return bad('content description');
    const n = c.length!;
    if (n < 0 || at + (c.removed ? 0 : n) > payload.length) bad('content runs past the payload');
    const bytes = c.removed ? undefined : payload.subarray(at, at + n);
    if (!c.removed) at += n;
    return { length: n, crc32c: c.crc32c!, removed: c.removed!, bytes };
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
