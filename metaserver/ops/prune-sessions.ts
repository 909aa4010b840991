// Prunes the write sessions of clients the metaserver no longer hears from (session-pruner.ts
// decides which); deletions deferred by those sessions finish here.
import type { MetaTables } from '../tables.js';
import type { SessionRecord } from '../types.js';
import { endSession } from './sessions.js';

export function pruneSessionsOp(db: MetaTables, a: { clientIds: readonly string[]; nowMs: number }): { pruned: number } {
  const dead = new Set(a.clientIds);
  const ended: SessionRecord[] = [];
  for (const { value } of db.sessions.getRange({})) {
    const s = value as SessionRecord;
    if (dead.has(s.clientId)) ended.push(s);
  }
  for (const s of ended) endSession(db, s, a.nowMs);
  return { pruned: ended.length };
}

/** The distinct clients that hold sessions now. */
export function sessionClients(db: MetaTables): Set<string> {
  const out = new Set<string>();
  for (const { value } of db.sessions.getRange({})) out.add((value as SessionRecord).clientId);
  return out;
}
