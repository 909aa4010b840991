// `flyfs up`: a local cluster in the foreground until Ctrl-C or SIGTERM.
import { resolve } from 'node:path';
import { flag, intFlag, boolFlag, parseArgs } from '../args.js';
import { DEFAULT_DATA_DIR } from '../cluster-address.js';
import { startLocalCluster } from '../local-cluster.js';

export async function upCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['restart']);
  const dataDir = resolve(flag(args, 'data') ?? DEFAULT_DATA_DIR);
  const started = Date.now();
  let stopping = false;
  const cluster = await startLocalCluster({
    dataDir,
    metaservers: intFlag(args, 'metaservers', 3),
    storageServers: intFlag(args, 'storage-servers', 3),
    targetsPerServer: intFlag(args, 'targets', 2),
    ...(flag(args, 'replicas') === undefined ? {} : { replicas: intFlag(args, 'replicas', 3) }),
    kvcache: intFlag(args, 'kvcache', 1),
    host: flag(args, 'host') ?? '127.0.0.1',
    restart: boolFlag(args, 'restart'),
    onChildExit: (node, code, signal) => {
      if (!stopping) process.stderr.write(`flyfs up: ${node.name} (pid ${node.pid}) exited with ${signal ?? code}; see ${dataDir}/logs/${node.name}.log\n`);
    },
  });
  const out: string[] = [];
  out.push(`flyfs cluster is up in ${((Date.now() - started) / 1000).toFixed(1)} s, data in ${dataDir}`);
  for (const n of cluster.nodes) {
    out.push(`  ${n.name.padEnd(14)} pid ${String(n.pid).padEnd(8)} grpc ${n.grpcAddress.padEnd(21)} http ${n.httpAddress}${n.dataAddress ? `  data ${n.dataAddress}` : ''}`);
  }
  out.push('', `cluster address: ${cluster.clusterAddress}`, '',
    'in another shell (the address is found through the state file in ./flyfs-data):',
    '  npx flyfs cp ./some-file flyfs:/some-file',
    '  npx flyfs ls /',
    '  npx flyfs status',
    `or from code: const fs = await connect('${cluster.clusterAddress}')`,
    '', 'Ctrl-C stops the cluster.');
  process.stdout.write(out.join('\n') + '\n');
  await new Promise<void>((resolveStop) => {
    const onSignal = (): void => { if (!stopping) { stopping = true; resolveStop(); } };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  process.stdout.write('flyfs up: stopping...\n');
  await cluster.stop();
  process.stdout.write('flyfs up: stopped\n');
  return 0;
}
