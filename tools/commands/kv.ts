// `flyfs kv stats | ls | evict | rm`: the KV cache service's figures, its namespaces and pages,
// eviction on demand, and removal of pages by key. The service is found through --kv HOST:PORT,
// FLYFS_KV, or the state file of a running `flyfs up`; admin calls take --admin-token,
// FLYFS_KV_ADMIN_TOKEN, or the token that service wrote in its data folder.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { flyfsError } from '../../common/errors.js';
import { callUnary } from '../../common/grpc.js';
import { kvServiceClient } from '../../kvcache/client.js';
import { adminTokenFile } from '../../kvcache/main.js';
import { boolFlag, flag, intFlag, parseArgs, type ParsedArgs } from '../args.js';
import { DEFAULT_DATA_DIR } from '../cluster-address.js';
import { readClusterState } from '../local-cluster.js';
import { formatBytes } from '../progress.js';

const usage = 'usage: flyfs kv stats [--json] | ls [NAMESPACE] [--limit N] | evict [NAMESPACE] [--target-bytes N] | rm NAMESPACE --token T KEY...';

async function service(args: ParsedArgs): Promise<{ address: string; adminToken: () => Promise<string> }> {
  const dataDir = resolve(flag(args, 'data') ?? DEFAULT_DATA_DIR);
  const state = await readClusterState(dataDir);
  const node = state?.nodes.find((n) => n.role === 'kvcache' && n.state === 'running');
  const address = flag(args, 'kv') ?? process.env['FLYFS_KV'] ?? node?.grpcAddress;
  if (address === undefined) throw flyfsError('FLYFS_ERR_NOT_CONNECTED', `no kvcache service: pass --kv HOST:PORT, set FLYFS_KV, or run 'flyfs up' (none running in ${dataDir})`);
  return {
    address,
    adminToken: async () => {
      const t = flag(args, 'admin-token') ?? process.env['FLYFS_KV_ADMIN_TOKEN'];
      if (t !== undefined) return t;
      if (node === undefined) throw flyfsError('FLYFS_ERR_NOT_PERMITTED', 'pass --admin-token or set FLYFS_KV_ADMIN_TOKEN');
      return (await readFile(join(dataDir, node.name, adminTokenFile), 'utf8')).trim();
    },
  };
}

export async function kvCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const args = parseArgs(rest, ['json']);
  const s = await service(args);
  const c = kvServiceClient(s.address);
  try {
    switch (sub) {
      case 'stats': {
        const st = JSON.parse((await callUnary(c, c.Stats, { adminToken: await s.adminToken() })).json) as Stats;
        process.stdout.write(boolFlag(args, 'json') ? JSON.stringify(st) + '\n' : renderStats(st));
        return 0;
      }
      case 'ls': {
        const r = JSON.parse((await callUnary(c, c.List, { adminToken: await s.adminToken(), namespace: args.positionals[0] ?? '', limit: intFlag(args, 'limit', 1000) })).json) as { namespaces?: string[]; pages?: Array<{ key: string; state: string; file: number; slot: number; pinnedUntil: number }> };
        if (boolFlag(args, 'json')) process.stdout.write(JSON.stringify(r) + '\n');
        else if (r.namespaces) process.stdout.write(r.namespaces.map((n) => n + '\n').join(''));
        else process.stdout.write((r.pages ?? []).map((p) => `${p.key} ${p.state} file ${p.file} slot ${p.slot}${p.pinnedUntil > Date.now() ? ` pinned until ${new Date(p.pinnedUntil).toISOString()}` : ''}\n`).join(''));
        return 0;
      }
      case 'evict': {
        const r = JSON.parse((await callUnary(c, c.Evict, { adminToken: await s.adminToken(), namespace: args.positionals[0] ?? '', targetBytes: intFlag(args, 'target-bytes', 0) })).json) as Stats & { evicted: number };
        process.stdout.write(boolFlag(args, 'json') ? JSON.stringify(r) + '\n' : `evicted ${r.evicted} pages; ${formatBytes(r.usedBytes)} of ${formatBytes(r.capacityBytes)} in use\n`);
        return 0;
      }
      case 'rm': {
        const [namespace, ...keys] = args.positionals;
        const token = flag(args, 'token');
        if (namespace === undefined || token === undefined || keys.length === 0) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', usage);
        const r = await callUnary(c, c.Remove, { auth: { namespace, token }, keys: keys.map((k) => Buffer.from(k, 'hex')) });
        process.stdout.write(`removed ${r.count} of ${keys.length} pages\n`);
        return 0;
      }
      default:
        throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', usage);
    }
  } finally {
    c.close();
  }
}

interface Stats { capacityBytes: number; usedBytes: number; highWatermark: number; lowWatermark: number; namespaces: Array<{ name: string; pages: number; usedBytes: number; quotaBytes: number; pageBytes: number }>; counters: Record<string, number> }

function renderStats(s: Stats): string {
  const lines = [`capacity ${formatBytes(s.capacityBytes)}, in use ${formatBytes(s.usedBytes)} (${((100 * s.usedBytes) / s.capacityBytes).toFixed(1)}%), watermarks ${s.lowWatermark}/${s.highWatermark}`];
  for (const n of s.namespaces) lines.push(`  ${n.name}: ${n.pages} pages of ${formatBytes(n.pageBytes)}, ${formatBytes(n.usedBytes)}${n.quotaBytes > 0 ? ` of quota ${formatBytes(n.quotaBytes)}` : ''}`);
  lines.push(`  ${Object.entries(s.counters).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  return lines.join('\n') + '\n';
}
