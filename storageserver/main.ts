// The storage server role: wires config, the target chunk stores, membership (register, lease,
// routing), the chunk service behind gRPC and the framed data path, and the HTTP face.
//
// Listeners are bound first (their addresses go into the registration), but chunk requests are
// refused (FLYFS_ERR_NOT_SERVING) until registration succeeds; startStorageServer resolves only
// once registered.
import { bindServer, createServer, loadProtos, shutdownServer } from '../common/grpc.js';
import { listenHttp } from '../common/http.js';
import { createLogger, type Logger } from '../common/log.js';
import { MetricsRegistry } from '../common/metrics.js';
import { announceReady, stopOnSignals } from '../common/ready.js';
import { promises as fsp } from 'node:fs';
import { parseStorageServerArgs, storageServerLimits, type StorageServerConfig } from './config.js';
import { startDataServer, type DataServer } from './data-server.js';
import { ChunkEngine } from './chunk-engine.js';
import { createIoEngine, tuneAllocator } from './io-engine.js';
import { IoBufferPool } from './io-buffers.js';
import { Scrubber } from './scrubber.js';
import { buildStorageHttpApp } from './http.js';
import { Membership } from './membership.js';
import { ChunkService, storageGrpcHandlers } from './service.js';
import { FramedTransport } from '../client/framed-transport.js';
import { flyfsError } from '../common/errors.js';
import { targetId as toTargetId } from '../common/ids.js';
import { limits } from '../common/limits.js';
import type { ChunkStore } from './chunk-store.js';
import { Op } from '../common/frame.js';
import { encodePeerMessage } from './peer-codec.js';
import { ReplicatedTarget, type StoredMessage } from './replicated-target.js';

/** The target's replica once it exists; until then chunk requests are refused as not serving. */
function lazyStore(get: () => ReplicatedTarget | undefined, engine: ChunkEngine): ChunkStore {
  const replica = (): ReplicatedTarget => {
    const r = get();
    if (r === undefined) throw flyfsError('FLYFS_ERR_NOT_SERVING', 'target has no chain configuration yet');
    return r;
  };
  return {
    write: (...a) => replica().write(...a),
    read: (...a) => replica().read(...a),
    stat: (...a) => replica().stat(...a),
    truncate: (...a) => replica().truncate(...a),
    removeFrom: (...a) => replica().removeFrom(...a),
    usage: () => engine.usage(),
    close: async () => { await get()?.close(); },
  };
}

export type { StorageServerConfig } from './config.js';
export { parseStorageServerArgs, resolveStorageServerConfig } from './config.js';

export interface RunningStorageServer {
  readonly nodeId: number;
  /** host:port of the gRPC Storage service. */
  readonly grpcAddress: string;
  /** host:port of the framed binary data path. */
  readonly dataAddress: string;
  /** host:port of /healthz, /metrics, /status. */
  readonly httpAddress: string;
  stop(): Promise<void>;
}

export interface StartStorageServerOptions {
  logger?: Logger;
}

export async function startStorageServer(config: StorageServerConfig, options: StartStorageServerOptions = {}): Promise<RunningStorageServer> {
  const log = (options.logger ?? createLogger({ role: 'storageserver' })).child({ role: 'storageserver' });
  const metrics = new MetricsRegistry();
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const fn of cleanups.reverse()) {
      try { await fn(); } catch (err) { log.warn({ err }, 'error while stopping'); }
    }
    cleanups.length = 0;
  };
  try {
    await fsp.mkdir(config.dataDir, { recursive: true });
    const allocatorTuned = tuneAllocator({ mmapThresholdBytes: storageServerLimits.mallocMmapThresholdBytes, trimThresholdBytes: storageServerLimits.mallocTrimThresholdBytes });
    const io = createIoEngine(config.ioEngine);
    cleanups.push(() => io.shutdown());
    log.info({ ioEngine: io.kind, fallbackReason: io.fallbackReason, allocatorTuned }, 'file I/O engine');
    // Aligned read buffers, shared by the targets: used again once a batched read's reply has copied them.
    const ioBuffers = io.allocAligned(0) === undefined ? undefined : new IoBufferPool({
      alloc: (bytes) => io.allocAligned(bytes)!, classBytesMin: io.alignment,
      classBytesMax: storageServerLimits.ioBufferClassBytesMax, bytesMax: storageServerLimits.ioBufferPoolBytesMax,
    });
    const stores: ChunkEngine[] = [];
    for (const path of config.targets) {
      await fsp.mkdir(path, { recursive: true });
      const store = await ChunkEngine.open({
        dir: path, verifyChecksums: config.verifyChecksums, diskFullRatio: config.diskFullRatio, io, directIo: config.directIo,
        ...(ioBuffers === undefined ? {} : { ioBuffers }),
      });
      stores.push(store);
      cleanups.push(() => store.close());
    }
    const targets = config.targets.map((path, i) => ({ path, store: stores[i]! }));

    // One CRAQ replica per target; its messages to peers travel on the framed data path.
    let membership: Membership | undefined;
    const peerTransport = new FramedTransport();
    cleanups.push(async () => peerTransport.close());
    const peerLog = log.child({ component: 'craq' });
    const replicas: (ReplicatedTarget | undefined)[] = config.targets.map(() => undefined);
    const replicaOf = (targetId: number): ReplicatedTarget | undefined => replicas.find((r) => r?.self === targetId);
    const sendPeer = (message: StoredMessage, payload: Parameters<typeof encodePeerMessage>[1]): void => {
      const local = replicaOf(message.to);
      if (local !== undefined) { local.onPeer(message); return; }
      const address = membership?.dataAddressOf(message.to);
      if (address === undefined || address === '') return; // unknown peer: the next tick retransmits
      void encodePeerMessage(message, payload)
        .then((frame) => peerTransport.call({ nodeId: 0, grpcAddress: '', dataAddress: address }, Op.Peer, frame.header, frame.payload))
        .catch((err: unknown) => peerLog.debug({ err, to: message.to, kind: message.body.kind }, 'peer message not delivered'));
    };
    const replicaFor = (i: number, targetId: number): ReplicatedTarget => {
      let r = replicas[i];
      if (r === undefined || r.self !== targetId) {
        r = new ReplicatedTarget({
          self: toTargetId(targetId), engine: stores[i]!, send: sendPeer, logger: peerLog,
          onSyncDone: (t) => { peerLog.info({ target: t }, 'resync complete: reporting up-to-date'); membership?.markSynced(t); },
          tickMs: config.craqTickMs, replyTimeoutMs: limits.craqReplyTimeoutMsDefault,
          readFromPeer: async (target, chunk, chainId, chainVersion, length) => {
            const address = membership?.dataAddressOf(target);
            if (address === undefined || address === '') throw flyfsError('FLYFS_ERR_UNAVAILABLE', `target ${target} has no address`);
            const r = await peerTransport.readChunk({ nodeId: 0, grpcAddress: '', dataAddress: address }, { chainId, chainVersion, inodeId: chunk.inodeId, index: chunk.index, offset: 0, length });
            return r.data;
          },
        });
        replicas[i] = r;
      }
      return r;
    };
    cleanups.push(async () => { for (const r of replicas) await r?.close(); });
    const scrubber = new Scrubber({
      intervalMs: config.scrubIntervalMs, targets, logger: log.child({ component: 'scrub' }), metrics,
      repair: async (i, key) => (await replicas[i]?.repair(key)) ?? false,
    });
    scrubber.start();
    cleanups.push(() => scrubber.stop());

    const service = new ChunkService({
      route: (id) => membership?.route(id),
      notServingReason: () => membership === undefined ? 'starting' : membership.notServingReason(),
    }, metrics);

    const grpcServer = createServer();
    grpcServer.addService(loadProtos().flyfs.v1.Storage.service, storageGrpcHandlers(service));
    const grpcPort = await bindServer(grpcServer, config.host, config.grpcPort);
    cleanups.push(() => shutdownServer(grpcServer));
    const grpcAddress = `${config.host}:${grpcPort}`;

    const data: DataServer = await startDataServer({
      host: config.host, port: config.dataPort, service, logger: log.child({ component: 'data' }),
      onPeer: (m) => replicaOf(m.to)?.onPeer(m),
      ...(ioBuffers === undefined ? {} : { ioBuffers }),
    });
    cleanups.push(() => data.close());
    const dataAddress = `${config.host}:${data.port}`;

    let httpAddress = '';
    const app = buildStorageHttpApp({
      nodeId: () => membership?.nodeId ?? 0,
      notServingReason: () => membership === undefined ? 'starting' : membership.notServingReason(),
      chains: () => membership?.chainStatus() ?? [],
      targets: () => targets.map((t, i) => ({ targetId: membership?.targetIdOf(i) ?? 0, path: t.path, store: t.store })),
      addresses: () => ({ grpcAddress, dataAddress, httpAddress }),
      scrub: () => scrubber.status(),
    }, metrics);
    const httpPort = await listenHttp(app, config.host, config.httpPort);
    cleanups.push(() => app.close());
    httpAddress = `${config.host}:${httpPort}`;

    // Chunk requests go to each target's replica; it is (re)built once the target id is known.
    const replicatedTargets = targets.map((t, i) => ({ path: t.path, store: lazyStore(() => replicas[i], t.store) }));
    const m = new Membership({
      dataDir: config.dataDir, mgmtAddresses: config.mgmtAddresses, targets: replicatedTargets, grpcAddress, dataAddress, httpAddress,
      onChains: (chains) => { for (const c of chains) replicaFor(c.targetIndex, m.targetIdOf(c.targetIndex)).applyConfig(c.config); },
      logger: log.child({ component: 'membership' }),
    });
    cleanups.push(() => m.stop());
    membership = m;
    await m.start();
    const nodeLog = log.child({ nodeId: m.nodeId });
    nodeLog.info({ grpcAddress, dataAddress, httpAddress, targets: config.targets.length }, 'storage server ready');

    let stopping: Promise<void> | undefined;
    return {
      nodeId: m.nodeId, grpcAddress, dataAddress, httpAddress,
      stop: () => {
        stopping ??= cleanup().then(() => nodeLog.info('storage server stopped'));
        return stopping;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** `flyfs storageserver ...`: parse, start, print the ready line, stop on SIGINT/SIGTERM. */
export async function runStorageServerCli(argv: string[]): Promise<void> {
  const config = parseStorageServerArgs(argv);
  const server = await startStorageServer(config);
  announceReady({
    role: 'storageserver', pid: process.pid, nodeId: server.nodeId,
    grpcAddress: server.grpcAddress, dataAddress: server.dataAddress, httpAddress: server.httpAddress,
  });
  stopOnSignals(() => server.stop());
}
