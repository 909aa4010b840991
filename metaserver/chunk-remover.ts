// Chunk removal over gRPC: Storage.RemoveChunks sent to the node hosting the chain's head.
import { flyfsError } from '../common/errors.js';
import { callUnary, channelOptions, grpc, loadProtos } from '../common/grpc.js';
import type { StorageClient } from '../proto/gen/flyfs/v1/Storage.js';
import type { ClusterMap } from './cluster-map.js';
import type { ChunkRemover } from './types.js';

const removeDeadlineMs = 10_000;

export interface GrpcChunkRemover { remove: ChunkRemover; close(): void }

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
  const remove: ChunkRemover = async ({ inodeId, chainId, fromIndex }) => {
    const chain = map.chain(chainId);
    if (chain === undefined) throw flyfsError('FLYFS_ERR_UNAVAILABLE', `unknown chain ${chainId}`);
    const head = chain.targetIds[0];
    const target = head === undefined ? undefined : map.target(head);
    const node = target === undefined ? undefined : map.node(target.nodeId);
    if (node === undefined || target === undefined) throw flyfsError('FLYFS_ERR_UNAVAILABLE', `chain ${chainId} has no head node`);
    if (map.nodeState(node.nodeId) !== 'alive') throw flyfsError('FLYFS_ERR_UNAVAILABLE', `node ${node.nodeId} of chain ${chainId} is not alive`);
    const client = clientFor(node.grpcAddress);
    await callUnary(client, client.RemoveChunks, { chainId, chainVersion: chain.version, inodeId, fromIndex }, removeDeadlineMs);
  };
  return { remove, close: () => { for (const c of clients.values()) c.close(); clients.clear(); } };
}
