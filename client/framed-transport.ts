// ChunkTransport over the framed binary data path (docs/data-protocol.md): a small pool of
// multiplexed connections per storage server (common/framed-connection.ts).
import { flyfsError, FlyfsError } from '../common/errors.js';
import { errorFromReply, Op, packJsonPayload, uintField, unpackJsonPayload, type Frame } from '../common/frame.js';
import { FramedPool } from '../common/framed-connection.js';
import type { ChunkTransport, ReadChunkArgs, ReadChunksItem, RemoveChunksArgs, StorageEndpoint, WriteChunkArgs } from './chunk-transport.js';

/** Connections kept per storage server: a couple spread the kernel's per-socket work. */
const connectionsPerServer = 2;

export class FramedTransport implements ChunkTransport {
  private readonly pool = new FramedPool(connectionsPerServer);

  /** One request frame, its reply frame back (also used between storage servers for Op.Peer). */
  async call(to: StorageEndpoint, op: Op, header: object, payload?: Uint8Array): Promise<Frame> {
    try {
      return await this.pool.connection(to.dataAddress).request(op, header, payload);
    } catch (err) {
      if (err instanceof FlyfsError) throw err;
      throw flyfsError('FLYFS_ERR_INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
    }
  }

  async writeChunk(to: StorageEndpoint, a: WriteChunkArgs): Promise<{ chunkLength: number; version: number }> {
    const f = await this.call(to, Op.WriteChunk, {
      chainId: a.chainId, chainVersion: a.chainVersion, inodeId: a.inodeId, index: a.index, offset: a.offset,
      chunkSize: a.chunkSizeBytes, clientId: a.clientId, requestId: a.requestId,
    }, a.data);
    return { chunkLength: uintField(f.header, 'chunkLength'), version: uintField(f.header, 'version') };
  }

  async readChunk(to: StorageEndpoint, a: ReadChunkArgs): Promise<{ data: Buffer; chunkLength: number; exists: boolean }> {
    const f = await this.call(to, Op.ReadChunk, {
      chainId: a.chainId, chainVersion: a.chainVersion, inodeId: a.inodeId, index: a.index, offset: a.offset, length: a.length,
    });
    return { data: f.payload, chunkLength: uintField(f.header, 'chunkLength'), exists: f.header['exists'] === true };
  }

  async readChunks(to: StorageEndpoint, args: readonly ReadChunkArgs[]): Promise<ReadChunksItem[]> {
    const list = args.map((a) => ({ chainId: a.chainId, chainVersion: a.chainVersion, inodeId: a.inodeId, index: a.index, offset: a.offset, length: a.length }));
    const f = await this.call(to, Op.ReadChunks, {}, packJsonPayload(list, []));
    const { json, bytesAt } = unpackJsonPayload(f.payload, 'chunk reads reply');
    if (!Array.isArray(json) || json.length !== args.length) throw flyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads reply: one result per read is expected');
    let at = bytesAt;
    return json.map((raw: unknown) => {
      const r = raw as Record<string, unknown>;
      if (r['ok'] !== true) return { ok: false as const, error: errorFromReply(r) };
      const n = uintField(r, 'length');
      if (at + n > f.payload.length) throw flyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads reply: data runs past the payload');
      const data = f.payload.subarray(at, at + n);
      at += n;
      return { ok: true as const, data, chunkLength: uintField(r, 'chunkLength'), exists: r['exists'] === true };
    });
  }

  async removeChunks(to: StorageEndpoint, a: RemoveChunksArgs): Promise<{ removed: number }> {
    const f = await this.call(to, Op.RemoveChunks, { chainId: a.chainId, chainVersion: a.chainVersion, inodeId: a.inodeId, fromIndex: a.fromIndex });
    return { removed: uintField(f.header, 'removed') };
  }

  close(): void {
    this.pool.close();
  }
}
