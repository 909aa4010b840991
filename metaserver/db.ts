// The metaserver's LMDB environment: the namespace and cluster-map tables, and the two tables of
// the chain-replication log (metaserver/replication/log-store.ts). Mutations do not write these
// tables directly: they run against a write set (replication/overlay.ts) that a committer makes
// durable — the chain (replication/replica.ts) in a metaserver, or `localCommitter` in unit tests
// that exercise one table-level component alone.
import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { metaserverLimits } from './config.js';
import { Overlay, WriteSetTables, type Write } from './replication/overlay.js';
import type { MetaTables, TableName } from './tables.js';

export interface MetaEnv {
  readonly env: RootDatabase;
  /** Committed state. */
  readonly tables: CommittedTables;
  readonly replMeta: Database;
  readonly replLog: Database;
  close(): Promise<void>;
}

/** Committed tables to read, and the way to mutate them durably. */
export type CommittedTables = { readonly [N in TableName]: Database };

export interface MetaDb extends CommittedTables {
  /** Runs a mutation against the write set it is handed; resolves once the writes are durable (committed). */
  readonly commit: <T>(fn: (t: MetaTables) => T) => Promise<T>;
}

const metaStructuresKey = Symbol.for('flyfs.structures');

export function openMetaEnv(dataDir: string): MetaEnv {
  mkdirSync(dataDir, { recursive: true });
  // Sync stays on (no noSync) and is not overlapped with later commits, so a commit is on disk
  // before anything that depends on it is sent or answered.
  const env = open({ path: dataDir, maxDbs: 16, overlappingSync: false });
  // Shared record structures (kept in each table under this key): values decode about 4x
  // faster and take about a quarter of the space of self-describing msgpack (BENCHMARKS.md, meta).
  const sub = (name: string): Database => env.openDB({ name, sharedStructuresKey: metaStructuresKey });
  const tables = {
    inodes: sub('inodes'), dirents: sub('dirents'), counters: sub('counters'), cluster: sub('cluster'),
    requests: sub('requests'), requestOrder: sub('request-order'), gcQueue: sub('gc-queue'), sessions: sub('sessions'),
  };
  return { env, tables, replMeta: sub('repl-meta'), replLog: sub('repl-log'), close: () => env.close() };
}

/** Applies a write set to committed tables; call inside an LMDB write transaction. */
export function applyWrites(tables: MetaEnv['tables'], writes: readonly Write[]): void {
  for (const [t, key, value] of writes) {
    if (value === undefined) tables[t].removeSync(key); else tables[t].putSync(key, value);
  }
}

/** The committed tables of `m` with a committer attached. */
export function metaDb(m: MetaEnv, commit: MetaDb['commit']): MetaDb {
  return { ...m.tables, commit };
}

/**
 * A committer without replication, for unit tests of table-level components: each event turn's
 * mutations run against write sets and land in one synced LMDB transaction.
 */
export function localCommitter(m: MetaEnv): MetaDb['commit'] {
  const queue: Array<{ seq: number; writes: Write[]; resolve: () => void; reject: (e: unknown) => void }> = [];
  // Queued write sets, so a mutation sees those queued before it in the same turn.
  const overlay = new Overlay();
  let seq = 0;
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    const batch = queue.splice(0, metaserverLimits.commitBatchMax);
    if (queue.length > 0) { scheduled = true; setImmediate(flush); }
    try {
      m.env.transactionSync(() => { for (const b of batch) applyWrites(m.tables, b.writes); });
    } catch (err) {
      overlay.clear();
      for (const b of batch) b.reject(err);
      return;
    }
    for (const b of batch) { overlay.applied(b.seq, b.writes); b.resolve(); }
  };
  return <T>(fn: (t: MetaTables) => T): Promise<T> => {
    const ws = new WriteSetTables(m.tables, overlay);
    let value: T;
    try { value = fn(ws.tables); } catch (err) { return Promise.reject(err); }
    const s = ++seq;
    overlay.add(s, ws.writes);
    return new Promise<T>((resolve, reject) => {
      queue.push({ seq: s, writes: ws.writes, resolve: () => resolve(value), reject });
      if (!scheduled) { scheduled = true; setImmediate(flush); }
    });
  };
}

/** Opens `dataDir` with the local committer: a MetaDb for unit tests. */
export function openMetaDb(dataDir: string): MetaDb & { close(): Promise<void> } {
  const m = openMetaEnv(dataDir);
  return { ...metaDb(m, localCommitter(m)), close: () => m.close() };
}
