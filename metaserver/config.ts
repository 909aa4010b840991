// The metaserver's one typed, validated configuration, with its defaults and its CLI parser.
import { assert, flyfsError } from '../common/errors.js';
import { limits } from '../common/limits.js';
import { validateChunkSize } from '../common/layout.js';

export interface MetaserverConfig {
  /** Folder of the LMDB environment (created if missing). */
  dataDir: string;
  /** Listen host of gRPC and HTTP. Default 127.0.0.1. */
  host: string;
  /** gRPC port; 0 (default) picks an ephemeral one. */
  grpcPort: number;
  /** HTTP port; 0 (default) picks an ephemeral one. */
  httpPort: number;
  /** Port of the framed RPC (the gRPC services' unary methods over common/frame.ts); 0 (default) picks an ephemeral one. */
  rpcPort: number;
  /** Node lease. Default limits.leaseMsDefault. */
  leaseMs: number;
  /** Chunk size of the root directory's layout policy. Default limits.chunkSizeBytesDefault. */
  rootChunkSizeBytes: number;
  /** Stripe of the root directory's layout policy. Default limits.stripeDefault. */
  rootStripe: number;
  /** How often the chunk garbage collector runs. Default metaserverDefaults.gcIntervalMs. */
  gcIntervalMs: number;
  /** Targets per chain, each on a different node. Default 1 (storage servers do not replicate yet). */
  replicas: number;
  /** Write sessions of a client unheard (no KeepAlive) for longer than this are pruned. Default metaserverDefaults.sessionTimeoutMs. */
  sessionTimeoutMs: number;
  /** How often the session pruner looks for dead clients. Default metaserverDefaults.sessionPruneIntervalMs. */
  sessionPruneIntervalMs: number;
  /** This metaserver's id in the chain, 1..metaservers. Default 1. */
  replicaId: number;
  /** How many metaservers the chain has (ids 1..n); a majority decides each epoch. Default 1. */
  metaservers: number;
  /** Peer addresses, 'id=host:port,id=host:port'. Default none (see peersDir). */
  peers: string;
  /** A folder where every metaserver publishes its address at start (flyfs up, tests). Default none. */
  peersDir: string;
  /** Chain heartbeat between metaservers. Default 100. */
  chainHeartbeatMs: number;
  /** A metaserver unheard this long is suspected failed. Default 600. */
  chainSuspectMs: number;
  /** How long a majority's grant lets a metaserver serve; a new epoch waits this long. Default 1000. */
  chainLeaseMs: number;
}

export const metaserverDefaults = {
  host: '127.0.0.1',
  grpcPort: 0,
  httpPort: 0,
  rpcPort: 0,
  leaseMs: limits.leaseMsDefault,
  rootChunkSizeBytes: limits.chunkSizeBytesDefault,
  rootStripe: limits.stripeDefault,
  gcIntervalMs: 1_000,
  replicas: 1,
  sessionTimeoutMs: 60_000,
  sessionPruneIntervalMs: 5_000,
  replicaId: 1,
  metaservers: 1,
  peers: '',
  peersDir: '',
  chainHeartbeatMs: 100,
  chainSuspectMs: 600,
  chainLeaseMs: 1_000,
} as const;

/** Bounds local to the metaserver. */
export const metaserverLimits = {
  leaseMsMin: 100,
  leaseMsMax: 600_000,
  gcIntervalMsMin: 10,
  gcIntervalMsMax: 600_000,
  sessionTimeoutMsMin: 100,
  sessionTimeoutMsMax: 24 * 3_600_000,
  sessionPruneIntervalMsMin: 10,
  sessionPruneIntervalMsMax: 600_000,
  /** Clients whose last KeepAlive the metaserver remembers at once. */
  keepAliveClientsMax: 100_000,
  /** Longest pause between two attempts of one GC entry. */
  gcBackoffMsMax: 60_000,
  /** Remembered (clientId, requestId) results; the oldest are forgotten first. */
  requestCacheEntriesMax: 100_000,
  /** Bytes of a client id. */
  clientIdBytesMax: 128,
  /** Mutations one group commit carries. */
  commitBatchMax: 1024,
  /** Bytes of an address or hostname in a registration. */
  addressBytesMax: 256,
  /** Targets of one chain. */
  replicasMax: 16,
  /** Metaservers of the metadata chain. */
  metaserversMax: 9,
  chainHeartbeatMsMin: 5,
  chainHeartbeatMsMax: 10_000,
  chainLeaseMsMax: 60_000,
} as const;

// A client keeping to the default KeepAlive interval must not be pruned between two of its calls.
assert(metaserverDefaults.sessionTimeoutMs >= 2 * limits.keepAliveIntervalMsDefault, 'session timeout spans two KeepAlive intervals');

function bad(detail: string): never {
  throw flyfsError('FLYFS_ERR_BAD_CONFIG', detail);
}

function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) bad(`${name} must be an integer in [${min}, ${max}], got ${value}`);
}

/** Fills defaults and validates; throws FLYFS_ERR_BAD_CONFIG. */
export function metaserverConfig(input: Partial<MetaserverConfig> & { dataDir: string }): MetaserverConfig {
  const c: MetaserverConfig = { ...metaserverDefaults, ...input };
  if (typeof c.dataDir !== 'string' || c.dataDir.length === 0) bad('dataDir (--data) is required');
  if (typeof c.host !== 'string' || c.host.length === 0) bad('host must not be empty');
  checkInt('grpcPort', c.grpcPort, 0, 65535);
  checkInt('httpPort', c.httpPort, 0, 65535);
  checkInt('rpcPort', c.rpcPort, 0, 65535);
  checkInt('leaseMs', c.leaseMs, metaserverLimits.leaseMsMin, metaserverLimits.leaseMsMax);
  checkInt('rootStripe', c.rootStripe, 1, limits.stripeMax);
  checkInt('gcIntervalMs', c.gcIntervalMs, metaserverLimits.gcIntervalMsMin, metaserverLimits.gcIntervalMsMax);
  checkInt('replicas', c.replicas, 1, metaserverLimits.replicasMax);
  checkInt('sessionTimeoutMs', c.sessionTimeoutMs, metaserverLimits.sessionTimeoutMsMin, metaserverLimits.sessionTimeoutMsMax);
  checkInt('sessionPruneIntervalMs', c.sessionPruneIntervalMs, metaserverLimits.sessionPruneIntervalMsMin, metaserverLimits.sessionPruneIntervalMsMax);
  checkInt('metaservers', c.metaservers, 1, metaserverLimits.metaserversMax);
  checkInt('replicaId', c.replicaId, 1, c.metaservers);
  checkInt('chainHeartbeatMs', c.chainHeartbeatMs, metaserverLimits.chainHeartbeatMsMin, metaserverLimits.chainHeartbeatMsMax);
  checkInt('chainSuspectMs', c.chainSuspectMs, 2 * c.chainHeartbeatMs, metaserverLimits.chainLeaseMsMax);
  checkInt('chainLeaseMs', c.chainLeaseMs, 2 * c.chainHeartbeatMs, metaserverLimits.chainLeaseMsMax);
  parsePeers(c.peers, c.metaservers);
  try { validateChunkSize(c.rootChunkSizeBytes); } catch (err) { bad(`rootChunkSizeBytes: ${(err as Error).message}`); }
  return c;
}

const flagToKey: Record<string, keyof MetaserverConfig> = {
  '--data': 'dataDir', '--host': 'host', '--port': 'grpcPort', '--http-port': 'httpPort', '--rpc-port': 'rpcPort',
  '--lease-ms': 'leaseMs', '--chunk-size': 'rootChunkSizeBytes', '--stripe': 'rootStripe', '--gc-interval-ms': 'gcIntervalMs',
  '--replicas': 'replicas',
  '--session-timeout-ms': 'sessionTimeoutMs', '--session-prune-interval-ms': 'sessionPruneIntervalMs',
  '--replica-id': 'replicaId', '--metaservers': 'metaservers', '--peers': 'peers', '--peers-dir': 'peersDir',
  '--chain-heartbeat-ms': 'chainHeartbeatMs', '--chain-suspect-ms': 'chainSuspectMs', '--chain-lease-ms': 'chainLeaseMs',
};

const stringKeys: ReadonlySet<keyof MetaserverConfig> = new Set(['dataDir', 'host', 'peers', 'peersDir']);

/** 'id=host:port,...' -> id -> address. */
export function parsePeers(text: string, metaservers: number): Map<number, string> {
  const out = new Map<number, string>();
  if (text === '') return out;
  for (const part of text.split(',')) {
    const m = /^(\d+)=([^\s=,]+:\d{1,5})$/.exec(part.trim());
    if (m === null) bad(`peers: '${part}' is not id=host:port`);
    const id = Number(m[1]);
    if (id < 1 || id > metaservers || out.has(id)) bad(`peers: bad or repeated id ${id}`);
    out.set(id, m[2]!);
  }
  return out;
}

/** The chain core's timing, derived from the three configured times. */
export function chainTiming(c: MetaserverConfig): { heartbeatMs: number; suspectMs: number; leaseMs: number; candidateStaggerMs: number; proposalTimeoutMs: number; retransmitMs: number } {
  return {
    heartbeatMs: c.chainHeartbeatMs, suspectMs: c.chainSuspectMs, leaseMs: c.chainLeaseMs,
    candidateStaggerMs: 2 * c.chainHeartbeatMs, proposalTimeoutMs: 3 * c.chainSuspectMs + c.chainLeaseMs, retransmitMs: 2 * c.chainHeartbeatMs,
  };
}

function parseNumber(flag: string, text: string): number {
  if (!/^\d+$/.test(text)) bad(`${flag} expects a non-negative integer, got '${text}'`);
  return Number(text);
}

/** Parses `--data DIR --host H --port P --http-port P --lease-ms N --chunk-size N --stripe N [--gc-interval-ms N] [--session-timeout-ms N] [--session-prune-interval-ms N]`. */
export function parseMetaserverArgs(argv: readonly string[]): MetaserverConfig {
  const out: Partial<MetaserverConfig> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const key = flagToKey[flag];
    if (key === undefined) bad(`unknown argument '${arg}'`);
    let value: string | undefined;
    if (flag !== arg) value = arg.slice(eq + 1);
    else { value = argv[i + 1]; i++; }
    if (value === undefined || value.length === 0) bad(`${flag} needs a value`);
    if (stringKeys.has(key)) (out as Record<string, unknown>)[key] = value;
    else (out as Record<string, unknown>)[key] = parseNumber(flag, value);
  }
  if (out.dataDir === undefined) bad('--data DIR is required');
  return metaserverConfig({ ...out, dataDir: out.dataDir });
}
