// The KV cache client SDK: `import { KvClient, createKvNamespace } from 'flyfs/kvcache'`.
export { KvClient, createKvNamespace, type KvClientOptions, type PutResult } from './client.js';
export { pageKeys, keyBytes } from './keys.js';
export { deepseekV32Layout, pageBytes, entryOffset, bytesPerToken, type KvLayout, type Pool } from './layout.js';
export { sparseAttention, denseSparseAttention, type SparseQuery, type SparseResult } from './sparse-attention.js';
export type { NamespaceSpec } from './index-store.js';
