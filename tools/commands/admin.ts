// `flyfs admin chains|targets [--json]`, `flyfs admin offline|online TARGET`: the storage chains
// and targets with their states, and taking a target out of service and back.
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { MetadataClient, type RoutingInfo } from '../../client/metadata-client.js';
import { flyfsError } from '../../common/errors.js';
import { boolFlag, flag, parseArgs } from '../args.js';
import { DEFAULT_DATA_DIR, resolveClusterAddress } from '../cluster-address.js';

const usage = 'flyfs admin chains [--json] | targets [--json] | offline TARGET | online TARGET';
const stateName = (s: string): string => s.replace(/^(LOCAL_)?TARGET_STATE_/, '').toLowerCase().replace('_', '-');

function chainsView(info: RoutingInfo): Array<{ chainId: number; version: number; members: Array<{ targetId: number; state: string }> }> {
  return info.chains.map((c) => ({
    chainId: c.chainId, version: c.version,
    members: c.targetIds.map((targetId, i) => ({ targetId, state: stateName(c.targetStates[i] ?? 'unknown') })),
  }));
}

function targetsView(info: RoutingInfo): Array<Record<string, string | number | boolean>> {
  return info.targets.map((t) => ({
    targetId: t.targetId, nodeId: t.nodeId, chainId: t.chainId, state: stateName(t.state), localState: stateName(t.localState),
    adminOffline: t.adminOffline, path: t.path, usedBytes: t.usedBytes, capacityBytes: t.capacityBytes,
  }));
}

export async function adminCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['json']);
  const [sub, arg] = args.positionals;
  const dataDir = resolve(flag(args, 'data') ?? DEFAULT_DATA_DIR);
  const address = await resolveClusterAddress({ cluster: flag(args, 'cluster'), dataDir });
  const client = new MetadataClient(address.split(','), `admin-${randomUUID()}`);
  const json = boolFlag(args, 'json');
  const out = (text: string): void => { process.stdout.write(text + '\n'); };
  try {
    switch (sub) {
      case 'chains': {
        const info = await client.routingInfo();
        const chains = chainsView(info);
        if (json) out(JSON.stringify({ routingVersion: info.version, chains }, null, 2));
        else for (const c of chains) out(`chain ${c.chainId} v${c.version}: ${c.members.map((m) => `${m.targetId}:${m.state}`).join(' -> ')}`);
        return 0;
      }
      case 'targets': {
        const info = await client.routingInfo();
        const targets = targetsView(info);
        if (json) out(JSON.stringify({ routingVersion: info.version, targets }, null, 2));
        else for (const t of targets) out(`target ${t.targetId} node ${t.nodeId} chain ${t.chainId}: ${t.state} (reported ${t.localState}${t.adminOffline ? ', offline by admin' : ''}) ${t.path}`);
        return 0;
      }
      case 'offline':
      case 'online': {
        const targetId = Number(arg);
        if (arg === undefined || !Number.isSafeInteger(targetId) || targetId <= 0) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `usage: ${usage}`);
        const r = await client.setTargetAdmin(targetId, sub === 'offline');
        out(`target ${targetId} ${sub === 'offline' ? 'taken offline' : 'may come back'}; routing version ${r.routingVersion}`);
        return 0;
      }
      default:
        throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `usage: ${usage}`);
    }
  } finally {
    client.shutdown();
  }
}
