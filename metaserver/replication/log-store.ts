// The chain core's durable state in the metaserver's LMDB: the promise, the configuration, the
// log and the commit index (which is also the applied index: committed entries are applied in
// the same transaction that records the commit). Everything here runs inside the shell's one
// write transaction per batch.
import { initialDurableState } from './chain-core.js';
import type { MetaEnv } from '../db.js';
import type { Write } from './overlay.js';
import type { ChainConfig, DurableState, DurableWrite, Entry, Epoch, LogIndex } from './types.js';

/** What a log entry carries in a metaserver: the head's write set (null: an epoch's no-op). */
export interface MetaPayload { readonly writes: readonly Write[] }

interface StoredEntry { readonly epoch: Epoch; readonly payload: MetaPayload | null }

export function loadDurable(m: MetaEnv): DurableState<MetaPayload> {
  const init = initialDurableState<MetaPayload>();
  const get = <T>(k: string, fallback: T): T => (m.replMeta.get(k) as T | undefined) ?? fallback;
  const logStart = get<LogIndex>('logStart', 0);
  const entries: Entry<MetaPayload>[] = [];
  for (const { key, value } of m.replLog.getRange({ start: logStart + 1 })) {
    const e = value as StoredEntry;
    entries.push({ index: key as number, epoch: e.epoch, payload: e.payload });
  }
  for (const [i, e] of entries.entries()) {
    if (e.index !== logStart + 1 + i) throw new Error(`assertion failed: replication log has a gap at ${logStart + 1 + i}`);
  }
  return {
    promised: get<Epoch>('promised', init.promised),
    config: get<ChainConfig>('config', init.config),
    logStart,
    logStartEpoch: get<Epoch>('logStartEpoch', 0),
    entries,
    commitIndex: get<LogIndex>('commitIndex', 0),
  };
}

/** The applied index and the epoch of its entry. */
export function appliedPosition(m: MetaEnv): { index: LogIndex; epoch: Epoch } {
  return { index: (m.replMeta.get('commitIndex') as LogIndex | undefined) ?? 0, epoch: (m.replMeta.get('commitEpoch') as Epoch | undefined) ?? 0 };
}

/** Persists one durable write; `lastIndex` is the stored log's end before it (for cheap truncation). */
export function persistWrite(m: MetaEnv, w: DurableWrite<MetaPayload>, lastIndex: LogIndex): LogIndex {
  switch (w.kind) {
    case 'promise': m.replMeta.putSync('promised', w.epoch); return lastIndex;
    case 'config': m.replMeta.putSync('config', w.config); return lastIndex;
    case 'append': {
      for (let i = w.truncateAfter + 1; i <= lastIndex; i++) m.replLog.removeSync(i);
      for (const e of w.entries) m.replLog.putSync(e.index, { epoch: e.epoch, payload: e.payload } satisfies StoredEntry);
      return w.entries.length > 0 ? w.entries[w.entries.length - 1]!.index : w.truncateAfter;
    }
    case 'commit': m.replMeta.putSync('commitIndex', w.index); return lastIndex;
    case 'compact': {
      const from = (m.replMeta.get('logStart') as LogIndex | undefined) ?? 0;
      for (let i = from + 1; i <= w.through; i++) m.replLog.removeSync(i);
      m.replMeta.putSync('logStart', w.through);
      m.replMeta.putSync('logStartEpoch', w.epoch);
      return Math.max(lastIndex, w.through);
    }
    case 'install': {
      for (const k of [...m.replLog.getKeys({})]) m.replLog.removeSync(k);
      m.replMeta.putSync('logStart', w.index);
      m.replMeta.putSync('logStartEpoch', w.epoch);
      m.replMeta.putSync('commitIndex', w.index);
      m.replMeta.putSync('commitEpoch', w.epoch);
      return w.index;
    }
  }
}

/** Records the epoch of the last applied entry (a snapshot names it). */
export function persistApplied(m: MetaEnv, entry: Entry<MetaPayload>): void {
  m.replMeta.putSync('commitEpoch', entry.epoch);
}
