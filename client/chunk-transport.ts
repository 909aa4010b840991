// How the client SDK moves chunk data to and from storage servers. Two transports implement it:
// the framed binary protocol over TCP (default, docs/data-protocol.md) and gRPC. An RDMA
// transport would be a third. All are safe to call from many concurrent callers; errors reject
// as FlyfsError carrying the server's code.
import { FramedTransport } from './framed-transport.js';
import { GrpcStreamTransport, GrpcTransport } from './grpc-transport.js';

export interface StorageEndpoint { nodeId: number; grpcAddress: string; dataAddress: string }

export interface WriteChunkArgs {
  chainId: number; chainVersion: number; inodeId: number; index: number; offset: number;
  data: Uint8Array; chunkSizeBytes: number; clientId: string; requestId: number;
}
export interface ReadChunkArgs { chainId: number; chainVersion: number; inodeId: number; index: number; offset: number; length: number }
export type ReadChunksItem =
  | { ok: true; data: Buffer; chunkLength: number; exists: boolean }
  | { ok: false; error: Error };
export interface RemoveChunksArgs { chainId: number; chainVersion: number; inodeId: number; fromIndex: number }

export interface ChunkTransport {
  writeChunk(to: StorageEndpoint, args: WriteChunkArgs): Promise<{ chunkLength: number; version: number }>;
  /**
   * `data` is short at the chunk's end and empty (exists: false) for a missing chunk. With
   * `into` (at least args.length long) a transport may receive the data straight into it and
   * answer a view of it; one that does not answers its own buffer.
   */
  readChunk(to: StorageEndpoint, args: ReadChunkArgs, into?: Uint8Array): Promise<{ data: Buffer; chunkLength: number; exists: boolean }>;
  removeChunks(to: StorageEndpoint, args: RemoveChunksArgs): Promise<{ removed: number }>;
  /**
   * Many chunk reads to one server in one request (at most limits.readBatchChunksMax, asking for
   * at most limits.readBatchBytesMax together); each item answers for itself. Transports without
   * it read chunk by chunk. `into[k]`, when given, is read k's destination as for readChunk;
   * after a failure (of the call or of an item) its bytes are unspecified.
   */
  readChunks?(to: StorageEndpoint, args: readonly ReadChunkArgs[], into?: readonly Uint8Array[]): Promise<ReadChunksItem[]>;
  /** Closes every connection; in-flight requests reject with FLYFS_ERR_CLOSED. */
  close(): void;
}

export type TransportKind = 'framed' | 'grpc' | 'grpc-stream';

export function createChunkTransport(kind: TransportKind): ChunkTransport {
  switch (kind) {
    case 'framed': return new FramedTransport();
    case 'grpc': return new GrpcTransport();
    case 'grpc-stream': return new GrpcStreamTransport();
  }
}
