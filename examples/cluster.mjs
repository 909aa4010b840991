// Where the examples find the cluster: FLYFS_CLUSTER, else the state file `npm start` writes
// (./flyfs-data/cluster.json, or FLYFS_DATA/cluster.json).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export function clusterAddress() {
  if (process.env.FLYFS_CLUSTER) return process.env.FLYFS_CLUSTER;
  const file = join(process.env.FLYFS_DATA ?? 'flyfs-data', 'cluster.json');
  try {
    return JSON.parse(readFileSync(file, 'utf8')).clusterAddress;
  } catch {
    throw new Error(`no cluster: run 'npm start' in another terminal, or set FLYFS_CLUSTER (no ${file})`);
  }
}

/** --name value flags, with defaults. */
export function flags(defaults) {
  const out = { ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)$/.exec(argv[i]);
    if (!m || !(m[1] in defaults)) throw new Error(`unknown argument ${argv[i]}; known: ${Object.keys(defaults).map((k) => '--' + k).join(' ')}`);
    const v = argv[++i];
    out[m[1]] = typeof defaults[m[1]] === 'number' ? Number(v) : v;
  }
  return out;
}
