// The chain-state rules of the cluster manager, as a pure state machine: a chain (its targets in
// order, their public states, its version) and the local state of each target go in, the next
// chain comes out. No I/O, no clock, no randomness; the manager's shell derives local states from
// leases and heartbeats and persists what changed. The rules follow 3FS's state-transition table;
// docs/cluster-manager.md explains each transition and why.
import { assert } from '../common/errors.js';

/** Public states, stored with the chain and published in routing info. */
export type PublicTargetState = 'serving' | 'syncing' | 'waiting' | 'lastsrv' | 'offline';
/** What a storage server reports per target (offline also when its node's lease ran out). */
export type LocalTargetState = 'up-to-date' | 'online' | 'offline';

export const publicTargetStates: readonly PublicTargetState[] = ['serving', 'syncing', 'waiting', 'lastsrv', 'offline'];
export const localTargetStates: readonly LocalTargetState[] = ['up-to-date', 'online', 'offline'];

export interface ChainMember { readonly targetId: number; readonly state: PublicTargetState }
export interface ChainState {
  readonly chainId: number;
  readonly version: number;
  /** Head first. */
  readonly members: readonly ChainMember[];
}

/** Local state per target id; a target missing from it holds its public state (no news yet). */
export type LocalStates = ReadonlyMap<number, LocalTargetState>;

/** What a target in a public state may do: reads of committed data, writes (from a client at the
 * head or from its predecessor). lastsrv keeps answering reads while it can: it holds the newest
 * data, and refusing reads would make the chain unreadable for no gain. */
export function targetAccess(state: PublicTargetState): { read: boolean; write: boolean } {
  switch (state) {
    case 'serving': return { read: true, write: true };
    case 'syncing': return { read: false, write: true };
    case 'lastsrv': return { read: true, write: false };
    case 'waiting': case 'offline': return { read: false, write: false };
  }
}

/** A new chain: every member serving (all start empty, so all hold the same data). */
export function newChain(chainId: number, targetIds: readonly number[]): ChainState {
  assert(targetIds.length > 0, 'a chain has at least one target');
  assert(new Set(targetIds).size === targetIds.length, 'a chain lists a target once');
  return { chainId, version: 1, members: targetIds.map((targetId) => ({ targetId, state: 'serving' })) };
}

/** The order a chain keeps: serving (and lastsrv, which stands where serving stood), then the
 * one syncing, then waiting, then offline. Within a rank the order is kept. */
const rank: Record<PublicTargetState, number> = { serving: 0, lastsrv: 0, syncing: 1, waiting: 2, offline: 3 };

const failed = (s: PublicTargetState): boolean => s === 'offline' || s === 'lastsrv';

/** One public state from the local state and the predecessor's public state (3FS's table). */
function nextState(m: ChainMember, local: LocalTargetState, ctx: { predecessor: PublicTargetState | undefined; lastServing: boolean }): PublicTargetState {
  const predecessorServing = ctx.predecessor === 'serving';
  switch (m.state) {
    case 'serving':
      if (local !== 'offline') return 'serving';
      return ctx.lastServing ? 'lastsrv' : 'offline';
    case 'syncing':
      if (local === 'offline') return 'offline';
      if (local === 'up-to-date') return 'serving';
      return predecessorServing ? 'syncing' : 'waiting';
    case 'waiting':
      if (local === 'offline') return 'offline';
      // up-to-date from a waiting target is a stale report: it was never filled, so it must sync.
      return local === 'online' && predecessorServing ? 'syncing' : 'waiting';
    case 'lastsrv':
      return local === 'offline' ? 'lastsrv' : 'serving';
    case 'offline':
      return local === 'offline' ? 'offline' : 'waiting';
  }
}

/**
 * One evaluation of a chain: every target with news takes its next public state, newly failed
 * targets move to the tail, and the chain is kept in rank order. The version goes up by one when anything
 * changed; otherwise the same chain object comes back.
 */
export function stepChain(chain: ChainState, local: LocalStates): ChainState {
  const members = chain.members;
  const failing = members.filter((m) => m.state === 'serving' && local.get(m.targetId) === 'offline');
  const survivors = members.filter((m) => m.state === 'serving' && local.get(m.targetId) !== 'offline');
  // If every serving target fails at once, the first of them (the one without a serving
  // predecessor) keeps the newest data: it becomes lastsrv and the chain waits for it.
  const lastServing = survivors.length === 0 ? failing[0]?.targetId : undefined;
  // Predecessors are taken as they come out of this step: a target whose source just failed
  // stops syncing (its new predecessor must start the fill afresh), and one behind a target that
  // just finished syncing may start.
  const next: ChainMember[] = [];
  for (const m of members) {
    const l = local.get(m.targetId);
    const predecessor = next[next.length - 1]?.state;
    next.push(l === undefined ? m : { targetId: m.targetId, state: nextState(m, l, { predecessor, lastServing: m.targetId === lastServing }) });
  }
  const newlyFailed = next.filter((m, i) => m.state === 'offline' && !failed(members[i]!.state));
  const staying = next.filter((m) => !newlyFailed.includes(m));
  const ordered = [...stableSortByRank(staying), ...newlyFailed];
  const changed = ordered.some((m, i) => m.targetId !== members[i]!.targetId || m.state !== members[i]!.state);
  if (!changed) return chain;
  const out = { chainId: chain.chainId, version: chain.version + 1, members: ordered };
  checkChain(out);
  return out;
}

function stableSortByRank(ms: readonly ChainMember[]): ChainMember[] {
  return ms.map((m, i) => ({ m, i })).sort((a, b) => rank[a.m.state] - rank[b.m.state] || a.i - b.i).map((x) => x.m);
}

/** What must hold of every chain the rules produce. */
export function checkChain(c: ChainState): void {
  assert(c.members.length > 0, `chain ${c.chainId} has targets`);
  assert(new Set(c.members.map((m) => m.targetId)).size === c.members.length, `chain ${c.chainId} lists a target once`);
  const states = c.members.map((m) => m.state);
  assert(!(states.includes('lastsrv') && states.includes('serving')), `chain ${c.chainId}: lastsrv only when nothing serves`);
  assert(states.filter((s) => s === 'lastsrv').length <= 1, `chain ${c.chainId}: at most one lastsrv`);
  assert(states.filter((s) => s === 'syncing').length <= 1, `chain ${c.chainId}: at most one syncing`);
}

/** Rendering for logs and tests: `A:serving B:syncing C:offline`. */
export function describeChain(c: ChainState, name: (targetId: number) => string = String): string {
  return c.members.map((m) => `${name(m.targetId)}:${m.state}`).join(' ');
}
