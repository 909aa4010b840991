// The metaserver role: wires config, store, cluster map, services and background runners.
import { pathToFileURL } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { bindServer, createServer, grpc, loadProtos, shutdownServer } from '../common/grpc.js';
import { listenHttp } from '../common/http.js';
import { createLogger, silentLogger, type Logger } from '../common/log.js';
import { MetricsRegistry } from '../common/metrics.js';
import { announceReady, stopOnSignals } from '../common/ready.js';
import { grpcChunkRemover } from './chunk-remover.js';
import { ClusterMap } from './cluster-map.js';
import { metaserverConfig, parseMetaserverArgs, type MetaserverConfig } from './config.js';
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
  readonly metrics: MetricsRegistry;
  readonly gc: GcRunner;
  readonly sessions: SessionPruner;
  readonly grpcServer: grpc.Server;
  readonly http: FastifyInstance;
  readonly logger: Logger;
  /** Tells /status the listening address, once known. */
  setGrpcAddress(address: string): void;
  /** Closes what build opened (store, clients); servers must be stopped first. */
  dispose(): Promise<void>;
}

export interface RunningMetaserver {
  readonly grpcAddress: string;
  readonly httpAddress: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly store: MetaStore;
  readonly clusterMap: ClusterMap;
  stop(): Promise<void>;
}

export async function buildMetaserver(input: MetaserverConfig, options: MetaserverOptions = {}): Promise<BuiltMetaserver> {
  const config = metaserverConfig(input);
  const logger = options.logger ?? silentLogger();
  const now = options.now ?? Date.now;
  const store = await MetaStore.open({ dataDir: config.dataDir, rootChunkSizeBytes: config.rootChunkSizeBytes, rootStripe: config.rootStripe, now });
  const clusterMap = await ClusterMap.open(store.db, { leaseMs: config.leaseMs, replicas: config.replicas, now });
  store.setChainTables(clusterMap);
  const grpcRemover = options.removeChunks === undefined ? grpcChunkRemover(clusterMap) : undefined;
  const remover = options.removeChunks ?? grpcRemover!.remove;
  store.setChunkRemover(remover);
  store.setChunkTrimmer(grpcRemover?.trim);
  const metrics = new MetricsRegistry();
  metrics.gauge('flyfs_meta_inodes', 'Inodes in the namespace.').track({}, () => store.inodeCount());
  metrics.gauge('flyfs_meta_gc_pending', 'Removed files whose chunks are still queued for removal.').track({}, () => store.gcCount());
  const gc = new GcRunner({ store, remover, intervalMs: config.gcIntervalMs, now, logger });
  const sessions = new SessionPruner({ store, intervalMs: config.sessionPruneIntervalMs, timeoutMs: config.sessionTimeoutMs, now, logger });
  const grpcServer = createServer();
  const protos = loadProtos();
  grpcServer.addService(protos.flyfs.v1.Management.service, managementHandlers({ store, clusterMap, metrics }));
  grpcServer.addService(protos.flyfs.v1.Metadata.service, metadataHandlers({ store, clusterMap, metrics }));
  let grpcAddress = '';
  const http = buildMetaserverHttp({ store, clusterMap, metrics, grpcAddress: () => grpcAddress });
  return {
    config, store, clusterMap, metrics, gc, sessions, grpcServer, http, logger,
    setGrpcAddress(address) { grpcAddress = address; },
    async dispose() { await gc.stop(); await sessions.stop(); grpcRemover?.close(); await store.close(); },
  };
}

export async function startMetaserver(config: MetaserverConfig, options: MetaserverOptions = {}): Promise<RunningMetaserver> {
  const built = await buildMetaserver(config, options);
  const c = built.config;
  let grpcPort: number;
  let httpPort: number;
  try {
    grpcPort = await bindServer(built.grpcServer, c.host, c.grpcPort);
    httpPort = await listenHttp(built.http, c.host, c.httpPort);
  } catch (err) {
    built.grpcServer.forceShutdown();
    await built.http.close().catch(() => undefined);
    await built.dispose();
    throw err;
  }
  const grpcAddress = `${c.host}:${grpcPort}`;
  built.setGrpcAddress(grpcAddress);
  built.gc.start();
  built.sessions.start();
  // Publishes lease expiries even when nobody asks for routing info.
  const ticker = setInterval(() => { void built.clusterMap.refresh().catch(() => undefined); }, Math.max(50, Math.floor(c.leaseMs / 4)));
  ticker.unref();
  built.logger.info({ grpcAddress, httpPort, dataDir: c.dataDir }, 'metaserver listening');
  let stopping: Promise<void> | undefined;
  return {
    grpcAddress, httpAddress: `${c.host}:${httpPort}`, grpcPort, httpPort, store: built.store, clusterMap: built.clusterMap,
    stop() {
      stopping ??= (async () => {
        clearInterval(ticker);
        await shutdownServer(built.grpcServer);
        await built.http.close();
        await built.dispose();
      })();
      return stopping;
    },
  };
}

export async function runMetaserverCli(argv: string[]): Promise<void> {
  const config = parseMetaserverArgs(argv);
  const logger = createLogger({ role: 'metaserver' });
  const running = await startMetaserver(config, { logger });
  announceReady({ role: 'metaserver', pid: process.pid, grpcAddress: running.grpcAddress, httpAddress: running.httpAddress });
  stopOnSignals(() => running.stop());
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runMetaserverCli(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`metaserver: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
