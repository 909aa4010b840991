// Every bound of flyfs in one place. Relations between limits are checked at start-up
// by checkLimits(); a change that breaks one fails loudly.
import { assert } from './errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export const limits = {
  /** Bytes of one path component (as POSIX NAME_MAX). */
  nameBytesMax: 255,
  /** Bytes of a whole path (as POSIX PATH_MAX). */
  pathBytesMax: 4096,
  /** Depth of a path in components. */
  pathDepthMax: 256,
  /** Symbolic links one path resolution may follow before it fails ELOOP (as Linux's MAXSYMLINKS). */
  symlinkFollowsMax: 40,
  /** Smallest and largest chunk size; chunk sizes are multiples of chunkSizeAlignBytes. */
  chunkSizeBytesMin: 4 * KiB,
  chunkSizeBytesMax: 64 * MiB,
  chunkSizeAlignBytes: 4 * KiB,
  /** Default chunk size of the root directory. */
  chunkSizeBytesDefault: 4 * MiB,
  /** Largest stripe (chains per file). */
  stripeMax: 256,
  /** Default stripe of the root directory (clamped to the chains there are). */
  stripeDefault: 16,
  /** Largest file: offsets and lengths beyond this are refused (2^52 keeps doubles exact). */
  fileBytesMax: 2 ** 52,
  /** Latest time setattr may record, in ms since the epoch (2^52 keeps doubles exact). */
  timeMsMax: 2 ** 52,
  /** Largest gRPC message either side accepts. */
  grpcMessageBytesMax: 72 * MiB,
  /** Largest frame of the framed data path (header + payload). */
  frameBytesMax: 72 * MiB,
  /** Largest header of a frame. */
  frameHeaderBytesMax: 4 * KiB,
  /** Requests one data connection may have outstanding at the server. */
  frameInflightPerConnectionMax: 256,
  /** The one buffer a client's framed connection reads the socket into (reused for every read). */
  framedReadBufferBytes: 256 * KiB,
  /** Stats of one StatBatch call. */
  statBatchMax: 512,
  /** Mutations of one MutateBatch call. */
  mutateBatchMax: 512,
  /** Entries of one readdir page. */
  readdirPageMax: 1000,
  /** Bytes one client operation keeps in flight to storage servers by default. */
  clientInflightBytesDefault: 128 * MiB,
  /** Chunk requests a client keeps in flight at once. */
  clientInflightChunksMax: 64,
  /** Nodes a cluster may register. */
  nodesMax: 4096,
  /** Targets one storage server may have. */
  targetsPerNodeMax: 64,
  /** Items one client I/O batch (fs.batch()) may queue. */
  ioBatchItemsMax: 65_536,
  /** Chunk reads one ReadChunks request carries, and the bytes they may ask for together. */
  readBatchChunksMax: 256,
  readBatchBytesMax: 64 * MiB,
  /** Committed writes a storage target remembers for idempotent retries (all clients together). */
  craqClientsMax: 65_536,
  /** How often a CRAQ replica retransmits what its successor has not acknowledged. */
  craqTickMsDefault: 500,
  /** How long a chunk write waits for its chain to commit it before failing as retryable. */
  craqReplyTimeoutMsDefault: 10_000,
  /** Node lease and heartbeat. */
  leaseMsDefault: 10_000,
  heartbeatsPerLease: 3,
  /** Deadline of one RPC from a client. */
  rpcDeadlineMsDefault: 30_000,
  /** Retries of one retryable request. */
  rpcRetriesMax: 8,
  /** How often a client holding write sessions tells the metaserver it is alive. */
  keepAliveIntervalMsDefault: 5_000,
  /** Garbage collection: chunk removals one pass sends. */
  gcBatchMax: 256,
  /** Datasets: samples one dataset may index, the largest sample, and the default packed shard size. */
  datasetSamplesMax: 100_000_000,
  datasetSampleBytesMax: 1024 * MiB,
  datasetShardBytesDefault: 256 * MiB,
  /** Dataset loader: batches read ahead of the consumer at most, and samples per batch. */
  datasetPrefetchMax: 64,
  datasetBatchSamplesMax: 65_536,
  /** Checkpoints: tensors one checkpoint may hold, ranks that may save into one step, and its manifest's size. */
  checkpointTensorsMax: 100_000,
  checkpointRanksMax: 4096,
  checkpointManifestBytesMax: 64 * MiB,
  /** Checkpoint files written or read at once by one client. */
  checkpointFilesInflight: 8,
  /** Bytes of tensors one save writes at once (one larger tensor still goes alone). */
  checkpointSaveBytesInflight: 128 * MiB,
  /** Local cluster: metaservers and storage servers `flyfs up` may start. */
  upMetaserversMax: 9,
  upStorageServersMax: 64,
} as const;

export type Limits = typeof limits;

export function checkLimits(l: Limits = limits): void {
  assert(l.chunkSizeBytesMin % l.chunkSizeAlignBytes === 0, 'chunkSizeBytesMin is aligned');
  assert(l.chunkSizeBytesMax % l.chunkSizeAlignBytes === 0, 'chunkSizeBytesMax is aligned');
  assert(l.chunkSizeBytesDefault >= l.chunkSizeBytesMin && l.chunkSizeBytesDefault <= l.chunkSizeBytesMax, 'default chunk size within bounds');
  assert(l.frameBytesMax >= l.chunkSizeBytesMax + l.frameHeaderBytesMax, 'a whole chunk fits one frame');
  assert(l.frameBytesMax >= l.readBatchBytesMax + 64 * KiB * 4, 'a read batch and its descriptions fit one frame');
  assert(l.grpcMessageBytesMax >= l.chunkSizeBytesMax + 64 * KiB, 'a whole chunk fits one gRPC message');
  assert(l.clientInflightBytesDefault >= l.chunkSizeBytesMax, 'a client can keep at least one whole chunk in flight');
  assert(l.nameBytesMax < l.pathBytesMax, 'a name fits a path');
  assert(l.stripeDefault <= l.stripeMax, 'default stripe within bounds');
  assert(l.symlinkFollowsMax >= 1, 'at least one symlink may be followed');
  assert(l.heartbeatsPerLease >= 2, 'at least two heartbeats per lease');
  assert(Number.isSafeInteger(l.fileBytesMax + l.chunkSizeBytesMax), 'file offsets stay exact');
}

checkLimits();
