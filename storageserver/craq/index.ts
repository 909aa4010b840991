// CRAQ chain replication as a pure core (docs/craq.md). The storage server's shell drives it.
export { CraqReplica, type CraqReplicaInit } from './replica.js';
export { DurableImage } from './durable-image.js';
export { applyUpdate, bytesModel, sameBytes, emptyContent } from './chunk-content.js';
export { chunkName } from './chunk-name.js';
export * from './types.js';
