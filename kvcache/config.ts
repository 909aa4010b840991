// The KV cache service's configuration: one typed, validated object with defaults, from flags.
import { flyfsError } from '../common/errors.js';
import { flag, parseArgs } from '../tools/args.js';

export interface KvServiceConfig {
  dataDir: string;
  /** Metaserver addresses of the flyfs cluster that holds the page files. */
  cluster: string;
  host: string;
  grpcPort: number;
  httpPort: number;
  /** Port of the framed RPC (the KvCache methods over common/frame.ts); 0 picks an ephemeral one. */
  rpcPort: number;
  /** The flyfs folder of every namespace's page files. */
  root: string;
  capacityBytes: number;
  highWatermark: number;
  lowWatermark: number;
  /** How long a lookup or resolve keeps its pages readable. */
  leaseMs: number;
  /** How long a reservation waits for its commit. */
  reserveMs: number;
  /** Page data per page file. */
  fileBytes: number;
  /** Expiry, eviction and access-time write-back run this often. */
  tickMs: number;
}

const GiB = 1024 ** 3;

export const kvServiceDefaults: Omit<KvServiceConfig, 'dataDir' | 'cluster'> = {
  host: '127.0.0.1', grpcPort: 0, httpPort: 0, rpcPort: 0, root: '/.kvcache',
  capacityBytes: 64 * GiB, highWatermark: 0.9, lowWatermark: 0.8,
  leaseMs: 30_000, reserveMs: 60_000, fileBytes: 256 * 1024 * 1024, tickMs: 1_000,
};

function bad(detail: string): never { throw flyfsError('FLYFS_ERR_BAD_CONFIG', detail); }

export function kvServiceConfig(input: Partial<KvServiceConfig> & { dataDir: string; cluster: string }): KvServiceConfig {
  const c: KvServiceConfig = { ...kvServiceDefaults, ...input };
  if (c.dataDir === '') bad('--data DIR is required');
  if (c.cluster === '') bad('--cluster HOST:PORT[,…] is required');
  if (!c.root.startsWith('/') || c.root.length < 2) bad('--root must be an absolute flyfs path other than /');
  const int = (name: string, v: number, min: number, max: number): void => { if (!Number.isSafeInteger(v) || v < min || v > max) bad(`${name} must be an integer in [${min}, ${max}], got ${v}`); };
  int('port', c.grpcPort, 0, 65535);
  int('http-port', c.httpPort, 0, 65535);
  int('rpc-port', c.rpcPort, 0, 65535);
  int('capacity-bytes', c.capacityBytes, 1, 2 ** 52);
  int('lease-ms', c.leaseMs, 10, 3_600_000);
  int('reserve-ms', c.reserveMs, 10, 3_600_000);
  int('file-bytes', c.fileBytes, 1, 2 ** 40);
  int('tick-ms', c.tickMs, 5, 60_000);
  if (!(c.lowWatermark > 0 && c.lowWatermark < c.highWatermark && c.highWatermark <= 1)) bad('watermarks: 0 < low < high <= 1');
  return c;
}

export function parseKvServiceArgs(argv: readonly string[]): KvServiceConfig {
  const a = parseArgs(argv);
  const known = new Set(['data', 'cluster', 'host', 'port', 'http-port', 'rpc-port', 'root', 'capacity-bytes', 'high-watermark', 'low-watermark', 'lease-ms', 'reserve-ms', 'file-bytes', 'tick-ms']);
  for (const k of a.flags.keys()) if (!known.has(k)) bad(`unknown argument --${k}`);
  if (a.positionals.length > 0) bad(`unexpected argument ${a.positionals[0]}`);
  const num = (k: string, fallback: number): number => {
    const v = flag(a, k);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n)) bad(`--${k} expects a number, got '${v}'`);
    return n;
  };
  const d = kvServiceDefaults;
  return kvServiceConfig({
    dataDir: flag(a, 'data') ?? '', cluster: flag(a, 'cluster') ?? '', host: flag(a, 'host') ?? d.host, root: flag(a, 'root') ?? d.root,
    grpcPort: num('port', d.grpcPort), httpPort: num('http-port', d.httpPort), rpcPort: num('rpc-port', d.rpcPort), capacityBytes: num('capacity-bytes', d.capacityBytes),
    highWatermark: num('high-watermark', d.highWatermark), lowWatermark: num('low-watermark', d.lowWatermark),
    leaseMs: num('lease-ms', d.leaseMs), reserveMs: num('reserve-ms', d.reserveMs), fileBytes: num('file-bytes', d.fileBytes), tickMs: num('tick-ms', d.tickMs),
  });
}
