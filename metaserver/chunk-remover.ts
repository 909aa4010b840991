// Chunk removal and trimming over gRPC: Storage.RemoveChunks and TruncateChunk sent to the node
// hosting the chain's head.
import { flyfsError } from '../common/errors.js';
import { callUnary, channelOptions, grpc, loadProtos } from '../common/grpc.js';
import type { StorageClient } from '../proto/gen/flyfs/v1/Storage.js';
import type { ClusterMap } from './cluster-map.js';
import type { ChunkRemover, ChunkTrimmer } from './types.js';

const removeDeadlineMs = 10_000;

export interface GrpcChunkRemover { remove: ChunkRemover; trim: ChunkTrimmer; close(): void }

export function grpcChunkRemover(map: ClusterMap): GrpcChunkRemover {
  const clients = new Map<string, StorageClient>();
  const clientFor = (address: string): StorageClient => {
    let c = clients.get(address);
    if (c === undefined) {
      const Storage = loadProtos().flyfs.v1.Storage;
      c = new Storage(address, grpc.credentials.createInsecure(), channelOptions);
      clients.set(address, c);
    }
    return c;
  };
  const headOf = (chainId: number): { client: StorageClient; chainVersion: number } => {
    const chain = map.chain(chainId);
    if (chain === undefined) throw flyfsError('FLYFS_ERR_UNAVAILABLE', `unknown chain ${chainId}`);
    const head = chain.targetIds[0];
    const target = head === undefined ? undefined : map.target(head);
    const node = target === undefined ? undefined : map.node(target.nodeId);
    if (node === undefined || target === undefined) throw flyfsError('FLYFS_ERR_UNAVAILABLE', `chain ${chainId} has no head node`);
    if (map.nodeState(node.nodeId) !== 'alive') throw flyfsError('FLYFS_ERR_UNAVAILABLE', `node ${node.nodeId} of chain ${chainId} is not alive`);
    return { client: clientFor(node.grpcAddress), chainVersion: chain.version };
  };
  const remove: ChunkRemover = async ({ inodeId, chainId, fromIndex }) => {
    const { client, chainVersion } = headOf(chainId);
    await callUnary(client, client.RemoveChunks, { chainId, chainVersion, inodeId, fromIndex }, removeDeadlineMs);
  };
  const trim: ChunkTrimmer = async ({ inodeId, chainId, index, lengthBytes }) => {
    const { client, chainVersion } = headOf(chainId);
    await callUnary(client, client.TruncateChunk, { chainId, chainVersion, chunk: { inodeId, index }, length: lengthBytes }, removeDeadlineMs);
  };
  return { remove, trim, close: () => { for (const c of clients.values()) c.close(); clients.clear(); } };
}
