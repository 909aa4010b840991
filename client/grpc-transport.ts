// ChunkTransport over the gRPC Storage service: one cached client (one HTTP/2 channel, which
// multiplexes concurrent calls) per storage server address.
import { flyfsError } from '../common/errors.js';
import { callUnary, channelOptions, grpc, loadProtos } from '../common/grpc.js';
import type { StorageClient } from '../proto/gen/flyfs/v1/Storage.js';
import type { ChunkTransport, ReadChunkArgs, RemoveChunksArgs, StorageEndpoint, WriteChunkArgs } from './chunk-transport.js';

export class GrpcTransport implements ChunkTransport {
  private readonly clients = new Map<string, StorageClient>();
  private closed = false;

  private client(to: StorageEndpoint): StorageClient {
    if (this.closed) throw flyfsError('FLYFS_ERR_CLOSED', 'transport is closed');
    let c = this.clients.get(to.grpcAddress);
    if (!c) {
      const Ctor = loadProtos().flyfs.v1.Storage;
      c = new Ctor(to.grpcAddress, grpc.credentials.createInsecure(), channelOptions);
      this.clients.set(to.grpcAddress, c);
    }
    return c;
  }

  async writeChunk(to: StorageEndpoint, a: WriteChunkArgs): Promise<{ chunkLength: number; version: number }> {
    const c = this.client(to);
    const r = await callUnary(c, c.WriteChunk, {
      chainId: a.chainId, chainVersion: a.chainVersion, chunk: { inodeId: a.inodeId, index: a.index },
      offset: a.offset, data: a.data, chunkSize: a.chunkSizeBytes, clientId: a.clientId, requestId: a.requestId,
    });
    return { chunkLength: r.chunkLength, version: r.version };
  }

  async readChunk(to: StorageEndpoint, a: ReadChunkArgs): Promise<{ data: Buffer; chunkLength: number; exists: boolean }> {
    const c = this.client(to);
    const r = await callUnary(c, c.ReadChunk, {
      chainId: a.chainId, chainVersion: a.chainVersion, chunk: { inodeId: a.inodeId, index: a.index }, offset: a.offset, length: a.length,
    });
    return { data: r.data, chunkLength: r.chunkLength, exists: r.exists };
  }

  async removeChunks(to: StorageEndpoint, a: RemoveChunksArgs): Promise<{ removed: number }> {
    const c = this.client(to);
    const r = await callUnary(c, c.RemoveChunks, { chainId: a.chainId, chainVersion: a.chainVersion, inodeId: a.inodeId, fromIndex: a.fromIndex });
    return { removed: r.removed };
  }

  close(): void {
    this.closed = true;
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
