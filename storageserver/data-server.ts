// The storage server's framed binary data path over TCP (docs/data-protocol.md): chunk operations
// and CRAQ peer messages dispatched to the chunk service; the connections, their in-flight bound
// and backpressure are common/framed-server.ts's.
import { FlyfsError } from '../common/errors.js';
import { inodeId as toInodeId } from '../common/ids.js';
import { limits } from '../common/limits.js';
import type { Logger } from '../common/log.js';
import { Op, packJsonPayload, stringField, uintField, unpackJsonPayload, type Frame } from '../common/frame.js';
import { startFramedServer, type FramedServer } from '../common/framed-server.js';
import type { ChunkService } from './service.js';
import { decodePeerMessage } from './peer-codec.js';
import type { IoBufferPool } from './io-buffers.js';
import type { StoredMessage } from './replicated-target.js';

/** Where CRAQ messages from peers go (the local target named by `to`). */
export type PeerSink = (message: StoredMessage) => void;

export type DataServer = FramedServer;

/** Runs one decoded request against the service; resolves to the reply header and payload. */
async function dispatch(service: ChunkService, frame: Frame, onPeer: PeerSink | undefined, ioBuffers: IoBufferPool | undefined): Promise<{ header: object; payload?: Uint8Array }> {
  const h = frame.header;
  if (frame.op === Op.Peer) {
    if (onPeer === undefined) throw new FlyfsError('FLYFS_ERR_BAD_FRAME', 'this server takes no peer messages');
    onPeer(decodePeerMessage(frame));
    return { header: {} };
  }
  if (frame.op === Op.ReadChunks) return readChunks(service, frame.payload, ioBuffers);
  const routed = { chainId: uintField(h, 'chainId'), chainVersion: uintField(h, 'chainVersion') };
  switch (frame.op) {
    case Op.WriteChunk: {
      const r = await service.writeChunk({
        ...routed, key: { inodeId: toInodeId(uintField(h, 'inodeId')), index: uintField(h, 'index') },
        offset: uintField(h, 'offset'), data: frame.payload, chunkSizeBytes: uintField(h, 'chunkSize'),
        clientId: stringField(h, 'clientId'), requestId: uintField(h, 'requestId'),
      });
      return { header: r };
    }
    case Op.ReadChunk: {
      const r = await service.readChunk({
        ...routed, key: { inodeId: toInodeId(uintField(h, 'inodeId')), index: uintField(h, 'index') },
        offset: uintField(h, 'offset'), length: uintField(h, 'length'),
      });
      return { header: { chunkLength: r.chunkLength, exists: r.exists }, payload: r.data };
    }
    case Op.RemoveChunks:
      return { header: await service.removeChunks({ ...routed, inodeId: toInodeId(uintField(h, 'inodeId')), fromIndex: uintField(h, 'fromIndex') }) };
    case Op.StatChunk:
      return { header: await service.statChunk({ ...routed, key: { inodeId: toInodeId(uintField(h, 'inodeId')), index: uintField(h, 'index') } }) };
    default:
      throw new FlyfsError('FLYFS_ERR_BAD_FRAME', `op ${frame.op}`);
  }
}

/**
 * Many chunk reads in one request: each runs as a ReadChunk would and answers for itself (a
 * damaged or missing chunk fails alone); the reply packs every result's description, then the
 * data of the successful ones in order.
 */
async function readChunks(service: ChunkService, payload: Buffer, ioBuffers: IoBufferPool | undefined): Promise<{ header: object; payload: Uint8Array }> {
  const { json } = unpackJsonPayload(payload, 'chunk reads');
  if (!Array.isArray(json) || json.length === 0) throw new FlyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads: a non-empty list is expected');
  if (json.length > limits.readBatchChunksMax) throw new FlyfsError('FLYFS_ERR_LIMIT', `at most ${limits.readBatchChunksMax} chunk reads in one request, got ${json.length}`);
  const items = json.map((raw: unknown) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FlyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads: an item is not an object');
    const r = raw as Record<string, unknown>;
    return {
      chainId: uintField(r, 'chainId'), chainVersion: uintField(r, 'chainVersion'),
      key: { inodeId: toInodeId(uintField(r, 'inodeId')), index: uintField(r, 'index') }, offset: uintField(r, 'offset'), length: uintField(r, 'length'),
    };
  });
  const total = items.reduce((n, i) => n + i.length, 0);
  if (total > limits.readBatchBytesMax) throw new FlyfsError('FLYFS_ERR_LIMIT', `chunk reads ask for ${total} bytes, at most ${limits.readBatchBytesMax} in one request`);
  const results = await Promise.all(items.map((i) => service.readChunk(i).then(
    (r) => ({ ok: true as const, r }),
    (err: unknown) => ({ ok: false as const, err: err instanceof FlyfsError ? err : new FlyfsError('FLYFS_ERR_INTERNAL', String(err)) }),
  )));
  const described = results.map((x) => x.ok
    ? { ok: true, length: x.r.data.length, chunkLength: x.r.chunkLength, exists: x.r.exists }
    : { ok: false, code: x.err.code, message: x.err.message });
  const data = results.flatMap((x) => x.ok ? [x.r.data] : []);
  const packed = packJsonPayload(described, data);
  // Copied into the reply: the read buffers can serve the next reads.
  for (const d of data) ioBuffers?.give(d);
  return { header: {}, payload: packed };
}

export async function startDataServer(options: { host: string; port: number; service: ChunkService; logger: Logger; onPeer?: PeerSink; ioBuffers?: IoBufferPool }): Promise<DataServer> {
  return startFramedServer({ host: options.host, port: options.port, logger: options.logger, dispatch: (frame) => dispatch(options.service, frame, options.onPeer, options.ioBuffers) });
}
