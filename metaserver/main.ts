// The metaserver role: wires config, store, cluster map, services and background runners.
import { pathToFileURL } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { bindServer, createServer, grpc, loadProtos, shutdownServer } from '../common/grpc.js';
import { flyfsError } from '../common/errors.js';
import { framedRpcDispatch } from '../common/framed-rpc.js';
import { startFramedServer, type FrameDispatch, type FramedServer } from '../common/framed-server.js';
import { listenHttp } from '../common/http.js';
import { ROOT_INODE_ID } from '../common/ids.js';
import { createLogger, silentLogger, type Logger } from '../common/log.js';
import { MetricsRegistry } from '../common/metrics.js';
import { announceReady, stopOnSignals } from '../common/ready.js';
import { grpcChunkRemover } from './chunk-remover.js';
import { ClusterMap } from './cluster-map.js';
import { chainTiming, metaserverConfig, parseMetaserverArgs, parsePeers, type MetaserverConfig } from './config.js';
import { openMetaEnv, type MetaEnv } from './db.js';
import { PeerTransport, PeerDirectory, publishPeerAddress } from './replication/peers.js';
import { MetaReplica } from './replication/replica.js';
import { replicationHandlers } from './replication/service.js';
import { GcRunner } from './gc-runner.js';
import { SessionPruner } from './session-pruner.js';
import { buildMetaserverHttp } from './http.js';
import { managementHandlers, metadataHandlers } from './service.js';
import { MetaStore } from './store.js';
import type { ChunkRemover } from './types.js';

export type { MetaserverConfig } from './config.js';
export { metaserverConfig, parseMetaserverArgs } from './config.js';

export interface MetaserverOptions {
  logger?: Logger;
  /** Clock for leases and inode times (tests pass a fake one). */
  now?: () => number;
  /** Chunk removal in place of Storage.RemoveChunks over gRPC (tests). */
  removeChunks?: ChunkRemover;
}

/** A metaserver built but not listening: tests drive its parts directly. */
export interface BuiltMetaserver {
  readonly config: MetaserverConfig;
  readonly store: MetaStore;
  readonly clusterMap: ClusterMap;
  readonly replica: MetaReplica;
  readonly metrics: MetricsRegistry;
  readonly gc: GcRunner;
  readonly sessions: SessionPruner;
  readonly grpcServer: grpc.Server;
  /** The unary methods of the same services, for common/framed-server.ts. */
  readonly framedDispatch: FrameDispatch;
  readonly http: FastifyInstance;
  readonly logger: Logger;
  /** Tells /status and GetEndpoints the listening addresses, once known. */
  setAddresses(a: { grpcAddress: string; framedAddress: string }): void;
  /** Closes what build opened (store, clients); servers must be stopped first. */
  dispose(): Promise<void>;
}

export interface RunningMetaserver {
  readonly grpcAddress: string;
  /** The framed RPC's address (common/framed-rpc.ts). */
  readonly framedAddress: string;
  readonly httpAddress: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly store: MetaStore;
  readonly clusterMap: ClusterMap;
  readonly replica: MetaReplica;
  stop(): Promise<void>;
}

export async function buildMetaserver(input: MetaserverConfig, options: MetaserverOptions = {}): Promise<BuiltMetaserver> {
  const config = metaserverConfig(input);
  const logger = options.logger ?? silentLogger();
  const now = options.now ?? Date.now;
  const env: MetaEnv = openMetaEnv(config.dataDir);
  const members = Array.from({ length: config.metaservers }, (_, i) => i + 1);
  const peers = new PeerDirectory({ static: parsePeers(config.peers, config.metaservers), dir: config.peersDir === '' ? undefined : config.peersDir });
  const transport = new PeerTransport(config.replicaId, peers, logger);
  const replica = new MetaReplica({ env, self: config.replicaId, members, timing: chainTiming(config), transport, logger: logger.child({ replica: config.replicaId }) });
  const store = MetaStore.create(replica.db, { rootChunkSizeBytes: config.rootChunkSizeBytes, rootStripe: config.rootStripe, now });
  const clusterMap = ClusterMap.create(replica.db, { leaseMs: config.leaseMs, replicas: config.replicas, now });
  // A new head begins its terms: the namespace root and the default chain table exist, every
  // known node and client gets a grace period before it can be declared dead.
  replica.onServingHead(() => {
    store.liveness.clear();
    void Promise.all([store.ensureRoot(), clusterMap.takeOver()]).catch((err: unknown) => {
      logger.warn({ err: (err as Error).message }, 'head start-up mutations failed');
    });
  });
  store.setChainTables(clusterMap);
  const grpcRemover = options.removeChunks === undefined ? grpcChunkRemover(clusterMap) : undefined;
  const remover = options.removeChunks ?? grpcRemover!.remove;
  store.setChunkRemover(remover);
  store.setChunkTrimmer(grpcRemover?.trim);
  const metrics = new MetricsRegistry();
  metrics.gauge('flyfs_meta_inodes', 'Inodes in the namespace.').track({}, () => store.inodeCount());
  metrics.gauge('flyfs_meta_gc_pending', 'Removed files whose chunks are still queued for removal.').track({}, () => store.gcCount());
  const active = (): boolean => replica.isServingHead();
  const gc = new GcRunner({ store, remover, intervalMs: config.gcIntervalMs, now, logger, active });
  const sessions = new SessionPruner({ store, intervalMs: config.sessionPruneIntervalMs, timeoutMs: config.sessionTimeoutMs, now, logger, active });
  let grpcAddress = '';
  let framedAddress = '';
  const deps = { store, clusterMap, replica, metrics, framedAddress: () => framedAddress };
  const protos = loadProtos();
  const services = [
    { definition: protos.flyfs.v1.Management.service, handlers: managementHandlers(deps) },
    { definition: protos.flyfs.v1.Metadata.service, handlers: metadataHandlers(deps) },
    { definition: protos.flyfs.v1.Replication.service, handlers: replicationHandlers(replica, config.replicaId, members) },
  ];
  const grpcServer = createServer();
  for (const s of services) grpcServer.addService(s.definition, s.handlers as grpc.UntypedServiceImplementation);
  const framedDispatch = framedRpcDispatch(services);
  const http = buildMetaserverHttp({ store, clusterMap, replica, metrics, grpcAddress: () => grpcAddress });
  return {
    config, store, clusterMap, replica, metrics, gc, sessions, grpcServer, framedDispatch, http, logger,
    setAddresses(a) { grpcAddress = a.grpcAddress; framedAddress = a.framedAddress; },
    async dispose() {
      await gc.stop(); await sessions.stop(); await replica.stop();
      transport.close(); grpcRemover?.close(); await env.close();
    },
  };
}

export async function startMetaserver(config: MetaserverConfig, options: MetaserverOptions = {}): Promise<RunningMetaserver> {
  const built = await buildMetaserver(config, options);
  const c = built.config;
  let grpcPort: number;
  let httpPort: number;
  let framed: FramedServer | undefined;
  try {
    grpcPort = await bindServer(built.grpcServer, c.host, c.grpcPort);
    httpPort = await listenHttp(built.http, c.host, c.httpPort);
    framed = await startFramedServer({ host: c.host, port: c.rpcPort, dispatch: built.framedDispatch, logger: built.logger });
  } catch (err) {
    built.grpcServer.forceShutdown();
    await built.http.close().catch(() => undefined);
    await framed?.close();
    await built.dispose();
    throw err;
  }
  const framedServer = framed;
  const grpcAddress = `${c.host}:${grpcPort}`;
  const framedAddress = `${c.host}:${framedServer.port}`;
  built.setAddresses({ grpcAddress, framedAddress });
  if (c.peersDir !== '') publishPeerAddress(c.peersDir, { replicaId: c.replicaId, grpcAddress, framedAddress, httpAddress: `${c.host}:${httpPort}`, pid: process.pid });
  built.replica.start();
  built.gc.start();
  built.sessions.start();
  // Publishes lease expiries even when nobody asks for routing info (the head's work).
  const ticker = setInterval(() => {
    if (built.replica.isServingHead()) void built.clusterMap.refresh().catch(() => undefined);
  }, Math.max(50, Math.floor(c.leaseMs / 4)));
  ticker.unref();
  // Alone, this metaserver is its own chain: it is up once it heads it and the namespace has a root.
  if (c.metaservers === 1) await waitFor(() => built.replica.isServingHead() && built.store.statInode(ROOT_INODE_ID) !== undefined, soloStartMsMax);
  built.logger.info({ grpcAddress, framedAddress, httpPort, dataDir: c.dataDir }, 'metaserver listening');
  let stopping: Promise<void> | undefined;
  return {
    grpcAddress, framedAddress, httpAddress: `${c.host}:${httpPort}`, grpcPort, httpPort, store: built.store, clusterMap: built.clusterMap, replica: built.replica,
    stop() {
      stopping ??= (async () => {
        clearInterval(ticker);
        await shutdownServer(built.grpcServer);
        await framedServer.close();
        await built.http.close();
        await built.dispose();
      })();
      return stopping;
    },
  };
}

const soloStartMsMax = 10_000;

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw flyfsError('FLYFS_ERR_TIMEOUT', `metaserver did not start heading its chain within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function runMetaserverCli(argv: string[]): Promise<void> {
  const config = parseMetaserverArgs(argv);
  const logger = createLogger({ role: 'metaserver' });
  const running = await startMetaserver(config, { logger });
  // The framed RPC address is announced as the data address (the port beside gRPC that speaks frames).
  announceReady({ role: 'metaserver', pid: process.pid, grpcAddress: running.grpcAddress, httpAddress: running.httpAddress, dataAddress: running.framedAddress });
  stopOnSignals(() => running.stop());
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runMetaserverCli(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`metaserver: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
