// The chunk operations, once, behind both transports (gRPC and the framed data path): check that
// the server is serving, that the chain is hosted here at the request's chain version, then call
// the target's ChunkStore. Wire messages are converted to these domain types at the edges.
import { flyfsError, FlyfsError } from '../common/errors.js';
import { chainId as toChainId, inodeId as toInodeId, type ChainId, type ChainVersion, type ChunkKey, type InodeId, type TargetId } from '../common/ids.js';
import { grpc, unary } from '../common/grpc.js';
import type { MetricsRegistry } from '../common/metrics.js';
import { limits } from '../common/limits.js';
import type { StorageHandlers } from '../proto/gen/flyfs/v1/Storage.js';
import type { ChunkStreamReply } from '../proto/gen/flyfs/v1/ChunkStreamReply.js';
import type { ChunkStreamRequest__Output } from '../proto/gen/flyfs/v1/ChunkStreamRequest.js';
import type { ReadChunkRequest__Output } from '../proto/gen/flyfs/v1/ReadChunkRequest.js';
import type { WriteChunkRequest__Output } from '../proto/gen/flyfs/v1/WriteChunkRequest.js';
import type { ChunkMeta, ChunkStore } from './chunk-store.js';

export interface ChainRoute {
  readonly chainId: ChainId;
  readonly version: ChainVersion;
  readonly targetId: TargetId;
  readonly store: ChunkStore;
}

/** What the service needs from membership: the chains hosted here and whether we may serve. */
export interface RouteSource {
  route(chainId: ChainId): ChainRoute | undefined;
  /** undefined while serving; otherwise why not (lease lost, not registered, stopping). */
  notServingReason(): string | undefined;
}

interface Routed { chainId: number; chainVersion: number }
export interface WriteChunkInput extends Routed { key: ChunkKey; offset: number; data: Uint8Array; chunkSizeBytes: number; clientId: string; requestId: number }
export interface ReadChunkInput extends Routed { key: ChunkKey; offset: number; length: number }
export interface RemoveChunksInput extends Routed { inodeId: InodeId; fromIndex: number }
export interface StatChunkInput extends Routed { key: ChunkKey }
export interface TruncateChunkInput extends Routed { key: ChunkKey; lengthBytes: number }

export interface WriteChunkResult { chunkLength: number; version: number }
export interface ReadChunkResult { data: Buffer; chunkLength: number; exists: boolean }
export interface RemoveChunksResult { removed: number }
export interface StatChunkResult { exists: boolean; length: number; version: number; crc32c: number }

export class ChunkService {
  constructor(private readonly routes: RouteSource, private readonly metrics: MetricsRegistry) {}

  private resolve(req: Routed): ChainRoute {
    const reason = this.routes.notServingReason();
    if (reason !== undefined) throw flyfsError('FLYFS_ERR_NOT_SERVING', reason);
    const route = this.routes.route(toChainId(req.chainId));
    if (!route) throw flyfsError('FLYFS_ERR_UNKNOWN_CHAIN', `chain ${req.chainId}`);
    if (req.chainVersion !== route.version) {
      throw flyfsError('FLYFS_ERR_STALE_CHAIN_VERSION', `chain ${req.chainId} is at version ${route.version}, request has ${req.chainVersion}`);
    }
    return route;
  }

  private async measure<T>(method: string, fn: () => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint();
    try {
      const out = await fn();
      this.metrics.record(method, started);
      return out;
    } catch (err) {
      this.metrics.record(method, started, { code: err instanceof FlyfsError ? err.code : 'FLYFS_ERR_INTERNAL' });
      throw err;
    }
  }

  writeChunk(req: WriteChunkInput): Promise<WriteChunkResult> {
    return this.measure('WriteChunk', async () => {
      const route = this.resolve(req);
      const meta = await route.store.write(req.key, req.offset, req.data, req.chunkSizeBytes, { clientId: req.clientId, requestId: req.requestId });
      this.metrics.bytes.inc({ method: 'WriteChunk', direction: 'in' }, req.data.length);
      return { chunkLength: meta.length, version: meta.version };
    });
  }

  readChunk(req: ReadChunkInput): Promise<ReadChunkResult> {
    return this.measure('ReadChunk', async () => {
      const route = this.resolve(req);
      const got = await route.store.read(req.key, req.offset, req.length);
      if (!got) return { data: Buffer.alloc(0), chunkLength: 0, exists: false };
      this.metrics.bytes.inc({ method: 'ReadChunk', direction: 'out' }, got.data.length);
      return { data: got.data, chunkLength: got.meta.length, exists: true };
    });
  }

  removeChunks(req: RemoveChunksInput): Promise<RemoveChunksResult> {
    return this.measure('RemoveChunks', async () => {
      const route = this.resolve(req);
      return { removed: await route.store.removeFrom(req.inodeId, req.fromIndex) };
    });
  }

  statChunk(req: StatChunkInput): Promise<StatChunkResult> {
    return this.measure('StatChunk', async () => statResult(await this.resolve(req).store.stat(req.key)));
  }

  truncateChunk(req: TruncateChunkInput): Promise<StatChunkResult> {
    return this.measure('TruncateChunk', async () => statResult(await this.resolve(req).store.truncate(req.key, req.lengthBytes)));
  }
}

function statResult(meta: ChunkMeta | undefined): StatChunkResult {
  if (!meta) return { exists: false, length: 0, version: 0, crc32c: 0 };
  return { exists: true, length: meta.length, version: meta.version, crc32c: meta.crc32c };
}

function chunkKey(chunk: { inodeId: number; index: number } | null | undefined): ChunkKey {
  if (!chunk) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'chunk id is missing');
  return { inodeId: toInodeId(chunk.inodeId), index: chunk.index };
}

function writeFromWire(service: ChunkService, r: WriteChunkRequest__Output): Promise<WriteChunkResult> {
  return service.writeChunk({
    chainId: r.chainId, chainVersion: r.chainVersion, key: chunkKey(r.chunk), offset: r.offset, data: r.data,
    chunkSizeBytes: r.chunkSize, clientId: r.clientId, requestId: r.requestId,
  });
}

function readFromWire(service: ChunkService, r: ReadChunkRequest__Output): Promise<ReadChunkResult> {
  return service.readChunk({ chainId: r.chainId, chainVersion: r.chainVersion, key: chunkKey(r.chunk), offset: r.offset, length: r.length });
}

/**
 * ChunkStream: each request runs as it arrives; its reply goes back tagged when it completes.
 * Past the in-flight limit a request fails alone (FLYFS_ERR_LIMIT); the stream ends after the
 * client's end once every request in flight has answered.
 */
function chunkStream(service: ChunkService): grpc.handleBidiStreamingCall<ChunkStreamRequest__Output, ChunkStreamReply> {
  return (call) => {
    let inflight = 0;
    let ended = false;
    const finish = (): void => { if (ended && inflight === 0) call.end(); };
    call.on('data', (req: ChunkStreamRequest__Output) => {
      const tag = req.tag;
      const answer = (reply: Omit<ChunkStreamReply, 'tag'>): void => { if (!call.destroyed) call.write({ tag, errorCode: '', errorMessage: '', ...reply }); };
      const fail = (err: unknown): void => {
        const fe = err instanceof FlyfsError ? err : flyfsError('FLYFS_ERR_INTERNAL', String(err));
        answer({ errorCode: fe.code, errorMessage: fe.message });
      };
      if (inflight >= limits.frameInflightPerConnectionMax) return fail(flyfsError('FLYFS_ERR_LIMIT', `at most ${limits.frameInflightPerConnectionMax} requests in flight on one stream`));
      let run: Promise<Omit<ChunkStreamReply, 'tag'>>;
      try {
        if (req.op === 'write' && req.write) run = writeFromWire(service, req.write).then((write) => ({ write }));
        else if (req.op === 'read' && req.read) run = readFromWire(service, req.read).then((read) => ({ read }));
        else throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'a stream request carries no op');
      } catch (err) {
        return fail(err);
      }
      inflight++;
      run.then(answer, fail).finally(() => { inflight--; finish(); });
    });
    call.on('end', () => { ended = true; finish(); });
    call.on('error', () => { ended = true; });
  };
}

/** The gRPC Storage service over a ChunkService. */
export function storageGrpcHandlers(service: ChunkService): StorageHandlers {
  return {
    WriteChunk: unary(async (r) => writeFromWire(service, r)),
    ReadChunk: unary(async (r) => readFromWire(service, r)),
    ChunkStream: chunkStream(service),
    RemoveChunks: unary(async (r) => service.removeChunks({
      chainId: r.chainId, chainVersion: r.chainVersion, inodeId: toInodeId(r.inodeId), fromIndex: r.fromIndex,
    })),
    StatChunk: unary(async (r) => service.statChunk({ chainId: r.chainId, chainVersion: r.chainVersion, key: chunkKey(r.chunk) })),
    TruncateChunk: unary(async (r) => service.truncateChunk({
      chainId: r.chainId, chainVersion: r.chainVersion, key: chunkKey(r.chunk), lengthBytes: r.length,
    })),
  } satisfies grpc.UntypedServiceImplementation as StorageHandlers;
}
