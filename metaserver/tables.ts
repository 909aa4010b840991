// The table interface every namespace and cluster-map operation runs against. On the chain head
// a mutation runs against committed LMDB state overlaid with the log's uncommitted writes, and
// its own puts and removes become the write set that the chain replicates; reads at a serving
// replica run against committed LMDB directly. An operation therefore touches state only
// through the tables it is given, and is deterministic in (tables, arguments): times and ids
// come in as arguments, never from the clock or randomness.
import type { Key } from 'lmdb';

export type { Key };

export interface RangeOptions {
  readonly start?: Key;
  readonly end?: Key;
  readonly limit?: number;
  readonly reverse?: boolean;
}

export interface Table {
  get(key: Key): unknown;
  putSync(key: Key, value: unknown): void;
  removeSync(key: Key): boolean;
  getRange(options: RangeOptions): Iterable<{ key: Key; value: unknown }>;
  getKeys(options: RangeOptions): Iterable<Key>;
}

export const tableNames = ['inodes', 'dirents', 'counters', 'cluster', 'requests', 'requestOrder', 'gcQueue', 'sessions'] as const;
export type TableName = (typeof tableNames)[number];

/** inodes: inodeId -> InodeRecord; dirents: [parentId, name] -> DirentRecord; counters: name -> number;
 * cluster: ['node', id] | ['target', id] | ['chain', id] | ['table', id] | 'version';
 * requests: [clientId, requestId] -> RequestRecord; requestOrder: seq -> [clientId, requestId];
 * gcQueue: seq -> GcEntry; sessions: sessionId -> SessionRecord. */
export type MetaTables = { readonly [N in TableName]: Table };

/** Next value of a persisted counter. */
export function nextCounter(t: MetaTables, name: string, floor = 0): number {
  const cur = (t.counters.get(name) as number | undefined) ?? floor;
  const next = Math.max(cur, floor) + 1;
  t.counters.putSync(name, next);
  return next;
}

const savepointKey = Symbol('flyfs.savepoint');

/** Tables that can undo part of one mutation's writes. */
export function withSavepoint<T extends object>(t: T, savepoint: <R>(fn: () => R) => R): T {
  Object.defineProperty(t, savepointKey, { value: savepoint, enumerable: false });
  return t;
}

/** Runs `fn` inside the mutation that `t` belongs to; if it throws, its writes are undone. */
export function savepoint<R>(t: MetaTables, fn: () => R): R {
  const sp = (t as unknown as { [savepointKey]?: <X>(fn: () => X) => X })[savepointKey];
  if (sp === undefined) throw new Error('assertion failed: savepoint outside a mutation');
  return sp(fn);
}
