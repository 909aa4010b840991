// Fault-test helpers for the metadata chain: each metaserver's view of the chain (its HTTP
// /status), waiting for a whole chain, and a fresh client's probe that the service answers.
import { connect } from '../../../client/index.js';
import type { LocalCluster, LocalNode } from '../../../tools/local-cluster.js';

export type ChainRole = 'head' | 'middle' | 'tail' | 'candidate' | 'learner' | 'none';

export interface ChainView { role: ChainRole; epoch: number; chain: number[]; self: number; commitIndex: number }

/** A stopped or dead metaserver must not hold a poll up for long. */
const statusTimeoutMs = 400;
const pollMs = 25;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function metaservers(cluster: LocalCluster): LocalNode[] {
  return cluster.nodes.filter((n) => n.role === 'metaserver');
}

/** The node's chain status, or undefined while it does not answer. */
export async function chainView(node: LocalNode): Promise<ChainView | undefined> {
  if (node.state !== 'running') return undefined;
  try {
    const res = await fetch(`http://${node.httpAddress}/status`, { signal: AbortSignal.timeout(statusTimeoutMs) });
    if (!res.ok) return undefined;
    const body = await res.json() as { chain: ChainView };
    return body.chain;
  } catch {
    return undefined;
  }
}

/** Polls `check` until it returns a value, or throws after `timeoutMs` naming `what`. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}

export interface FullChain { epoch: number; byRole: Record<'head' | 'middle' | 'tail', LocalNode> }

/** The chain once all three metaservers agree on one epoch with all three in it. */
export async function fullChain(cluster: LocalCluster): Promise<FullChain | undefined> {
  const nodes = metaservers(cluster);
  if (nodes.length !== 3) return undefined;
  const views = await Promise.all(nodes.map(chainView));
  const byRole: Partial<Record<ChainRole, LocalNode>> = {};
  let epoch: number | undefined;
  for (const [i, v] of views.entries()) {
    if (v === undefined || v.chain.length !== 3) return undefined;
    if (epoch !== undefined && v.epoch !== epoch) return undefined;
    epoch = v.epoch;
    if (v.role !== 'head' && v.role !== 'middle' && v.role !== 'tail') return undefined;
    if (byRole[v.role] !== undefined) return undefined;
    byRole[v.role] = nodes[i]!;
  }
  const { head, middle, tail } = byRole;
  if (epoch === undefined || !head || !middle || !tail) return undefined;
  return { epoch, byRole: { head, middle, tail } };
}

export async function waitFullChain(cluster: LocalCluster, timeoutMs: number): Promise<FullChain> {
  try {
    return await waitFor('a chain of 3 metaservers', timeoutMs, () => fullChain(cluster));
  } catch (err) {
    // Say where each one stands, so a chain that never closes can be told from a dead node.
    const views = await Promise.all(metaservers(cluster).map(async (n) => `${n.name} (${n.state}): ${JSON.stringify(await chainView(n)) ?? 'no answer'}`));
    throw new Error(`${(err as Error).message}; now ${views.join('; ')}`);
  }
}

class ProbeMismatch extends Error {}

/**
 * A fresh client per attempt creates a new file and stats it; resolves with the milliseconds
 * from `sinceMs` to the first attempt that did both. Each attempt uses a new name, since a
 * failed attempt may still have applied.
 */
export async function probeServing(options: { addresses: string[]; dir: string; tag: string; sinceMs: number; timeoutMs: number }): Promise<{ elapsedMs: number; attempts: number }> {
  const until = options.sinceMs + options.timeoutMs;
  let lastErr: unknown;
  for (let attempt = 1; Date.now() < until; attempt++) {
    const leftMs = Math.max(100, until - Date.now());
    const path = `${options.dir}/${options.tag}-${attempt}`;
    try {
      const fs = await connect(options.addresses, { deadlineMs: Math.min(1_000, leftMs) });
      try {
        const h = await fs.open(path, 'wx');
        await h.close();
        const st = await fs.stat(path);
        // Not an outage but a wrong answer: fail, do not try again.
        if (st.ino !== h.fd) throw new ProbeMismatch(`probe ${path}: stat ino ${st.ino} != created ${h.fd}`);
        return { elapsedMs: Date.now() - options.sinceMs, attempts: attempt };
      } finally {
        await fs.close();
      }
    } catch (err) {
      if (err instanceof ProbeMismatch) throw err;
      lastErr = err;
      await sleep(pollMs);
    }
  }
  throw new Error(`${options.tag}: the service did not answer within ${options.timeoutMs} ms (last: ${String(lastErr)})`);
}
