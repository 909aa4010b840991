// The metaserver's LMDB environment: named sub-databases and the group committer.
// Mutations are queued and run, each in its own child transaction, inside one synchronous
// LMDB write transaction per event turn: one durable (synced) commit for the whole batch.
// (lmdb-js's asynchronous `transaction()` never calls back on this platform, so the batching is
// done here with transactionSync, which keeps the same group-commit shape.)
import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { metaserverLimits } from './config.js';
import type { MetaTables } from './tables.js';

export interface MetaDb extends MetaTables {
  readonly env: RootDatabase;
  readonly inodes: Database;        // inodeId -> InodeRecord
  readonly dirents: Database;       // [parentId, name] -> DirentRecord
  readonly counters: Database;      // name -> number
  readonly cluster: Database;       // ['node', id] | ['target', id] | ['chain', id] | ['table', id] | 'version'
  readonly requests: Database;      // [clientId, requestId] -> RequestRecord
  readonly requestOrder: Database;  // seq -> [clientId, requestId]
  readonly gcQueue: Database;       // seq -> GcEntry
  readonly sessions: Database;      // sessionId -> SessionRecord
  /** Runs a mutation against the tables it is given, durably; see tables.ts for the contract. */
  readonly commit: <T>(fn: (t: MetaTables) => T) => Promise<T>;
  close(): Promise<void>;
}

interface Pending { fn: (t: MetaTables) => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }

export function openMetaDb(dataDir: string): MetaDb {
  mkdirSync(dataDir, { recursive: true });
  // Sync stays on (no noSync) and is not overlapped with later commits, so a commit is on disk
  // before the callers of its batch are answered.
  const env = open({ path: dataDir, maxDbs: 16, overlappingSync: false });
  const sub = (name: string): Database => env.openDB({ name });
  let queue: Pending[] = [];
  let scheduled = false;
  let closed = false;

  const flush = (): void => {
    scheduled = false;
    const batch = queue.splice(0, metaserverLimits.commitBatchMax);
    if (queue.length > 0) { scheduled = true; setImmediate(flush); }
    const outcomes: Array<{ ok: boolean; value: unknown }> = [];
    try {
      env.transactionSync(() => {
        for (const p of batch) {
          try {
            // A child transaction: a throwing mutation leaves no partial writes behind.
            outcomes.push({ ok: true, value: env.transactionSync(() => p.fn(db)) });
          } catch (err) {
            outcomes.push({ ok: false, value: err });
          }
        }
      });
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.ok) p.resolve(o.value); else p.reject(o.value);
    });
  };

  const commit = <T>(fn: (t: MetaTables) => T): Promise<T> => {
    if (closed) return Promise.reject(new Error('metadata store is closed'));
    return new Promise<T>((resolve, reject) => {
      queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!scheduled) { scheduled = true; setImmediate(flush); }
    });
  };

  const db: MetaDb = {
    env,
    inodes: sub('inodes'), dirents: sub('dirents'), counters: sub('counters'), cluster: sub('cluster'),
    requests: sub('requests'), requestOrder: sub('request-order'), gcQueue: sub('gc-queue'), sessions: sub('sessions'),
    commit,
    async close() {
      closed = true;
      while (queue.length > 0 || scheduled) await new Promise((r) => setImmediate(r));
      queue = [];
      await env.close();
    },
  };
  return db;
}
