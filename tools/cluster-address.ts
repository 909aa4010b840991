// Where the CLI finds the cluster: --cluster, then FLYFS_CLUSTER, then the state file of a
// running `flyfs up` (--data DIR, default ./flyfs-data).
import { resolve } from 'node:path';
import { flyfsError } from '../common/errors.js';
import { readClusterState } from './local-cluster.js';

export const DEFAULT_DATA_DIR = 'flyfs-data';

export async function resolveClusterAddress(opts: { cluster?: string | undefined; dataDir?: string | undefined }): Promise<string> {
  if (opts.cluster) return opts.cluster;
  const env = process.env['FLYFS_CLUSTER'];
  if (env) return env;
  const dir = resolve(opts.dataDir ?? DEFAULT_DATA_DIR);
  const state = await readClusterState(dir);
  if (state) return state.clusterAddress;
  throw flyfsError('FLYFS_ERR_NOT_CONNECTED',
    `no cluster: pass --cluster HOST:PORT, set FLYFS_CLUSTER, or run 'flyfs up' (no running cluster in ${dir})`);
}
