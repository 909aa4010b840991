// `flyfs status [--json]`: every node with role, address, state and (local cluster) pid.
import { resolve } from 'node:path';
import { connect } from '../../client/index.js';
import { flag, boolFlag, parseArgs } from '../args.js';
import { DEFAULT_DATA_DIR, resolveClusterAddress } from '../cluster-address.js';
import { readClusterState } from '../local-cluster.js';

const roleName: Record<string, string> = {
  NODE_ROLE_METASERVER: 'metaserver', NODE_ROLE_STORAGESERVER: 'storageserver', NODE_ROLE_KVCACHE: 'kvcache',
};
const stateName = (s: string): string => s.replace(/^(NODE|TARGET)_STATE_/, '').toLowerCase();

/** A metaserver's place in the metadata chain, from its /status: head, middle, tail, learner... */
async function chainRole(httpAddress: string): Promise<{ state: string; epoch?: number }> {
  try {
    const res = await fetch(`http://${httpAddress}/status`, { signal: AbortSignal.timeout(2_000) });
    const body = await res.json() as { chain?: { role?: string; epoch?: number } };
    return { state: body.chain?.role ?? 'unknown', ...(body.chain?.epoch === undefined ? {} : { epoch: body.chain.epoch }) };
  } catch {
    return { state: 'unreachable' };
  }
}

export async function statusCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['json']);
  const dataDir = resolve(flag(args, 'data') ?? DEFAULT_DATA_DIR);
  const address = await resolveClusterAddress({ cluster: flag(args, 'cluster'), dataDir });
  const local = await readClusterState(dataDir);
  const fs = await connect(address);
  try {
    const info = await fs.routingInfo();
    const pidOf = (grpcAddress: string): number | undefined => local?.nodes.find((n) => n.grpcAddress === grpcAddress)?.pid;
    const metas = address.split(',').map((a) => ({
      role: 'metaserver', nodeId: undefined as number | undefined, address: a, state: 'serving', pid: pidOf(a),
    }));
    const nodes = [
      ...metas,
      ...info.nodes.map((n) => ({
        role: roleName[n.role] ?? n.role, nodeId: n.nodeId, address: n.grpcAddress, dataAddress: n.dataAddress,
        httpAddress: n.httpAddress, state: stateName(n.state), pid: pidOf(n.grpcAddress) ?? (n.pid || undefined),
      })),
    ];
    const metaHttp = local?.nodes.filter((n) => n.role === 'metaserver') ?? [];
    await Promise.all(metas.map(async (m) => {
      const httpAddress = metaHttp.find((n) => n.grpcAddress === m.address)?.httpAddress;
      Object.assign(m, { httpAddress });
      if (httpAddress !== undefined) Object.assign(m, await chainRole(httpAddress));
    }));
    const targets = info.targets.map((t) => ({
      targetId: t.targetId, nodeId: t.nodeId, chainId: t.chainId, state: stateName(t.state), usedBytes: t.usedBytes, capacityBytes: t.capacityBytes,
    }));
    const chains = info.chains.map((c) => ({ chainId: c.chainId, version: c.version, targets: c.targetIds }));
    if (boolFlag(args, 'json')) {
      process.stdout.write(JSON.stringify({ routingVersion: info.version, nodes, targets, chains }, null, 2) + '\n');
      return 0;
    }
    const lines = [`routing version ${info.version}`, 'nodes:'];
    for (const n of nodes) lines.push(`  ${n.role.padEnd(14)} ${String(n.nodeId ?? '-').padEnd(4)} ${n.address.padEnd(21)} ${n.state.padEnd(8)} pid ${n.pid ?? '-'}`);
    lines.push('targets:');
    for (const t of targets) lines.push(`  target ${t.targetId} on node ${t.nodeId}, chain ${t.chainId}: ${t.state}`);
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  } finally {
    await fs.close();
  }
}
