// The kvcache role: the index (LMDB in --data), page files in flyfs (through the client SDK),
// the KvCache gRPC service, and HTTP (/healthz, /metrics, /status and the API under /v1).
// Its admin token is written to DATA/admin.token (mode 0600) for the CLI.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { connect, type FileSystem } from '../client/index.js';
import { bindServer, createServer, loadProtos, shutdownServer } from '../common/grpc.js';
import { framedRpcDispatch } from '../common/framed-rpc.js';
import { startFramedServer } from '../common/framed-server.js';
import { buildHttpApp, listenHttp } from '../common/http.js';
import { createLogger, silentLogger, type Logger } from '../common/log.js';
import { MetricsRegistry } from '../common/metrics.js';
import { announceReady, stopOnSignals } from '../common/ready.js';
import { kvServiceConfig, parseKvServiceArgs, type KvServiceConfig } from './config.js';
import { KvIndex, type PageFiles } from './index-store.js';
import { KvApi, kvGrpcHandlers, kvHttpRoutes } from './service.js';

export const adminTokenFile = 'admin.token';

export interface RunningKvService {
  readonly grpcAddress: string;
  /** The framed RPC's address (common/framed-rpc.ts). */
  readonly framedAddress: string;
  readonly httpAddress: string;
  readonly index: KvIndex;
  stop(): Promise<void>;
}

/** Page files through the SDK: folders striped over every chain, files created full-size. */
export function sdkPageFiles(fs: FileSystem): PageFiles {
  return {
    async mkdir(dir, chunkBytes) { await fs.mkdir(dir, { recursive: true, chunkSizeBytes: chunkBytes }); },
    async create(path, bytes) {
      const h = await fs.open(path, 'w');
      try { await h.truncate(bytes); } finally { await h.close(); }
    },
    async remove(path) { await fs.rm(path, { force: true }); },
    async list(dir) { return (await fs.readdir(dir, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name); },
  };
}

export async function startKvService(input: KvServiceConfig, o: { logger?: Logger } = {}): Promise<RunningKvService> {
  const c = kvServiceConfig(input);
  const logger = o.logger ?? silentLogger();
  const fs = await connect(c.cluster);
  let index: KvIndex;
  try {
    index = await KvIndex.open({
      dataDir: c.dataDir, root: c.root, files: sdkPageFiles(fs), capacityBytes: c.capacityBytes,
      highWatermark: c.highWatermark, lowWatermark: c.lowWatermark, leaseMs: c.leaseMs, reserveMs: c.reserveMs, fileBytes: c.fileBytes, logger,
    });
  } catch (err) {
    await fs.close();
    throw err;
  }
  writeFileSync(join(c.dataDir, adminTokenFile), index.adminToken, { mode: 0o600 });
  const api = new KvApi(index);
  const metrics = new MetricsRegistry();
  metrics.gauge('flyfs_kv_used_bytes', 'Bytes of page slots in use (committed, reserved, or awaiting the end of a lease).').track({}, () => index.usedBytes);
  metrics.gauge('flyfs_kv_capacity_bytes', 'Configured capacity.').track({}, () => c.capacityBytes);
  const counters = metrics.counter('flyfs_kv_events_total', 'Index events, by kind.');
  let framedAddress = '';
  const handlers = kvGrpcHandlers(api, () => framedAddress);
  const definition = loadProtos().flyfs.v1.KvCache.service;
  const grpcServer = createServer();
  grpcServer.addService(definition, handlers);
  const http = buildHttpApp({
    role: 'kvcache', metrics, health: () => ({ ok: true }), status: () => index.stats(),
    extend: kvHttpRoutes(api),
  });
  const grpcPort = await bindServer(grpcServer, c.host, c.grpcPort);
  const httpPort = await listenHttp(http, c.host, c.httpPort);
  const framed = await startFramedServer({ host: c.host, port: c.rpcPort, logger, dispatch: framedRpcDispatch([{ definition, handlers }]) });
  framedAddress = `${c.host}:${framed.port}`;
  let last = { ...index.counters };
  const ticker = setInterval(() => {
    try { index.tick(); } catch (err) { logger.warn({ err: (err as Error).message }, 'kv tick failed'); }
    for (const [k, v] of Object.entries(index.counters)) counters.inc({ kind: k }, v - (last as Record<string, number>)[k]!);
    last = { ...index.counters };
  }, c.tickMs);
  const grpcAddress = `${c.host}:${grpcPort}`;
  logger.info({ grpcAddress, framedAddress, httpPort, capacityBytes: c.capacityBytes }, 'kvcache listening');
  let stopping: Promise<void> | undefined;
  return {
    grpcAddress, framedAddress, httpAddress: `${c.host}:${httpPort}`, index,
    stop() {
      stopping ??= (async () => {
        clearInterval(ticker);
        await shutdownServer(grpcServer);
        await framed.close();
        await http.close();
        await index.close();
        await fs.close();
      })();
      return stopping;
    },
  };
}

export async function runKvServiceCli(argv: string[]): Promise<void> {
  const config = parseKvServiceArgs(argv);
  const logger = createLogger({ role: 'kvcache' });
  const running = await startKvService(config, { logger });
  announceReady({ role: 'kvcache', pid: process.pid, grpcAddress: running.grpcAddress, httpAddress: running.httpAddress, dataAddress: running.framedAddress });
  stopOnSignals(() => running.stop());
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runKvServiceCli(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`kvcache: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
