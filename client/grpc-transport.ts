// ChunkTransport over the gRPC Storage service: one cached client (one HTTP/2 channel, which
// multiplexes concurrent calls) per storage server address.
import { flyfsError, isErrorCode } from '../common/errors.js';
import { callUnary, channelOptions, fromServiceError, grpc, loadProtos } from '../common/grpc.js';
import { limits } from '../common/limits.js';
import type { ChunkStreamReply__Output } from '../proto/gen/flyfs/v1/ChunkStreamReply.js';
import type { ChunkStreamRequest } from '../proto/gen/flyfs/v1/ChunkStreamRequest.js';
import type { StorageClient } from '../proto/gen/flyfs/v1/Storage.js';
import type { ChunkTransport, ReadChunkArgs, RemoveChunksArgs, StorageEndpoint, WriteChunkArgs } from './chunk-transport.js';

export class GrpcTransport implements ChunkTransport {
  private readonly clients = new Map<string, StorageClient>();
  protected closed = false;

  protected client(to: StorageEndpoint): StorageClient {
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

interface StreamState {
  readonly call: grpc.ClientDuplexStream<ChunkStreamRequest, ChunkStreamReply__Output>;
  readonly pending: Map<number, { resolve: (r: ChunkStreamReply__Output) => void; reject: (e: unknown) => void }>;
  /** Callers waiting for one of the stream's in-flight slots. */
  readonly queue: Array<() => void>;
}

/**
 * Chunk writes and reads over one long-lived ChunkStream per storage server (the rest as unary
 * calls): no HTTP/2 stream, headers and trailers per request. A broken stream fails what was in
 * flight with a retryable error and is opened again by the next request.
 */
export class GrpcStreamTransport extends GrpcTransport {
  private readonly streams = new Map<string, StreamState>();
  private nextTag = 1;

  private stream(to: StorageEndpoint): StreamState {
    const known = this.streams.get(to.grpcAddress);
    if (known !== undefined) return known;
    const c = this.client(to);
    const call = c.ChunkStream();
    const state: StreamState = { call, pending: new Map(), queue: [] };
    const fail = (err: unknown): void => {
      if (this.streams.get(to.grpcAddress) === state) this.streams.delete(to.grpcAddress);
      const fe = this.closed ? flyfsError('FLYFS_ERR_CLOSED', 'transport is closed') : fromServiceError(err);
      for (const p of state.pending.values()) p.reject(fe);
      state.pending.clear();
      for (const wake of state.queue.splice(0)) wake();
    };
    call.on('data', (reply: ChunkStreamReply__Output) => {
      const p = state.pending.get(reply.tag);
      if (p === undefined) return;
      state.pending.delete(reply.tag);
      state.queue.shift()?.();
      p.resolve(reply);
    });
    call.on('error', fail);
    call.on('end', () => fail(flyfsError('FLYFS_ERR_UNAVAILABLE', 'storage stream ended')));
    this.streams.set(to.grpcAddress, state);
    return state;
  }

  private async request(to: StorageEndpoint, op: Omit<ChunkStreamRequest, 'tag'>): Promise<ChunkStreamReply__Output> {
    let state = this.stream(to);
    while (state.pending.size >= limits.frameInflightPerConnectionMax) {
      await new Promise<void>((wake) => state.queue.push(wake));
      if (this.closed) throw flyfsError('FLYFS_ERR_CLOSED', 'transport is closed');
      state = this.stream(to);
    }
    const tag = this.nextTag++;
    const reply = await new Promise<ChunkStreamReply__Output>((resolve, reject) => {
      state.pending.set(tag, { resolve, reject });
      state.call.write({ tag, ...op });
    });
    if (reply.errorCode !== '') {
      const err = flyfsError(isErrorCode(reply.errorCode) ? reply.errorCode : 'FLYFS_ERR_INTERNAL');
      err.message = reply.errorMessage;
      throw err;
    }
    return reply;
  }

  override async writeChunk(to: StorageEndpoint, a: WriteChunkArgs): Promise<{ chunkLength: number; version: number }> {
    const r = await this.request(to, { write: {
      chainId: a.chainId, chainVersion: a.chainVersion, chunk: { inodeId: a.inodeId, index: a.index },
      offset: a.offset, data: a.data, chunkSize: a.chunkSizeBytes, clientId: a.clientId, requestId: a.requestId,
    } });
    if (r.write === null || r.write === undefined) throw flyfsError('FLYFS_ERR_INTERNAL', 'stream reply carries no write result');
    return { chunkLength: r.write.chunkLength, version: r.write.version };
  }

  override async readChunk(to: StorageEndpoint, a: ReadChunkArgs): Promise<{ data: Buffer; chunkLength: number; exists: boolean }> {
    const r = await this.request(to, { read: {
      chainId: a.chainId, chainVersion: a.chainVersion, chunk: { inodeId: a.inodeId, index: a.index }, offset: a.offset, length: a.length,
    } });
    if (r.read === null || r.read === undefined) throw flyfsError('FLYFS_ERR_INTERNAL', 'stream reply carries no read result');
    return { data: r.read.data, chunkLength: r.read.chunkLength, exists: r.read.exists };
  }

  override close(): void {
    this.closed = true;
    for (const s of this.streams.values()) s.call.cancel();
    this.streams.clear();
    super.close();
  }
}
