// Branded ids: the core sees these, never bare numbers from the wire.
declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

export type InodeId = Brand<number, 'InodeId'>;
export type NodeId = Brand<number, 'NodeId'>;
export type TargetId = Brand<number, 'TargetId'>;
export type ChainId = Brand<number, 'ChainId'>;
export type ChainVersion = Brand<number, 'ChainVersion'>;
export type ChainTableId = Brand<number, 'ChainTableId'>;
export type ChunkVersion = Brand<number, 'ChunkVersion'>;
export type SessionId = Brand<number, 'SessionId'>;

export const ROOT_INODE_ID = 1 as InodeId;

export const inodeId = (n: number): InodeId => n as InodeId;
export const nodeId = (n: number): NodeId => n as NodeId;
export const targetId = (n: number): TargetId => n as TargetId;
export const chainId = (n: number): ChainId => n as ChainId;
export const chainVersion = (n: number): ChainVersion => n as ChainVersion;
export const chainTableId = (n: number): ChainTableId => n as ChainTableId;
export const chunkVersion = (n: number): ChunkVersion => n as ChunkVersion;
export const sessionId = (n: number): SessionId => n as SessionId;

export interface ChunkKey {
  readonly inodeId: InodeId;
  readonly index: number;
}
