// A local cluster as child processes: what `flyfs up` runs and what integration tests start.
// It only composes the roles (each also runs alone): metaservers first, then storage servers
// pointed at them; it waits for each ready line, writes DIR/cluster.json, holds DIR/up.lock so
// a second `up` on the same folder is refused, and stops every child on stop().
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { flyfsError } from '../common/errors.js';
import { limits } from '../common/limits.js';
import { parseReadyLine, type ReadyInfo } from '../common/ready.js';
import { cliPath } from './package-root.js';

export interface LocalClusterOptions {
  dataDir: string;
  metaservers?: number;
  storageServers?: number;
  targetsPerServer?: number;
  /** Targets per chain (the metaservers' --replicas). Default: 3, or fewer storage servers. */
  replicas?: number;
  /** KV cache services (0 or 1; default 0). */
  kvcache?: number;
  host?: string;
  /** Where children's stderr goes; DIR/logs by default. */
  logDir?: string;
  /** Restart a child that dies (off by default: a death is reported, not hidden). */
  restart?: boolean;
  /** Called when a child exits while the cluster is running. */
  onChildExit?: (node: LocalNode, code: number | null, signal: NodeJS.Signals | null) => void;
  /** Extra arguments per role, for tests (e.g. a short lease). */
  extraArgs?: { metaserver?: string[]; storageserver?: string[]; kvcache?: string[] };
  /** Node flags for every child (e.g. --cpu-prof for profiling). */
  nodeArgs?: string[];
  /** Milliseconds to wait for one child to be ready. */
  readyTimeoutMs?: number;
}

export interface LocalNode {
  name: string;
  role: ReadyInfo['role'];
  pid: number;
  nodeId?: number;
  grpcAddress: string;
  httpAddress: string;
  dataAddress?: string;
  state: 'running' | 'exited';
}

export interface ClusterState {
  upPid: number;
  clusterAddress: string;
  dataDir: string;
  startedAt: string;
  nodes: LocalNode[];
}

export interface LocalCluster {
  clusterAddress: string;
  dataDir: string;
  nodes: LocalNode[];
  /** Stops every child (SIGTERM, then SIGKILL after a grace period) and releases the folder. */
  stop(): Promise<void>;
  /** Sends a signal to one child (tests: kill -9 a storage server). */
  kill(name: string, signal: NodeJS.Signals): void;
  /** Starts a stopped child again with its old ports. */
  restartNode(name: string): Promise<LocalNode>;
}

export const STATE_FILE = 'cluster.json';
const LOCK_FILE = 'up.lock';
const stopGraceMs = 10_000;

function isAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

async function takeLock(dataDir: string): Promise<void> {
  const path = join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
        throw flyfsError('FLYFS_ERR_CLUSTER_RUNNING', `${dataDir} is used by pid ${pid}`);
      }
      await rm(path, { force: true });
    }
  }
  throw flyfsError('FLYFS_ERR_CLUSTER_RUNNING', `could not lock ${dataDir}`);
}

function portOf(address: string | undefined): string {
  return address ? address.slice(address.lastIndexOf(':') + 1) : '0';
}

interface Child { node: LocalNode; proc: ChildProcess; args: string[]; log: WriteStream }

export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  const metaCount = options.metaservers ?? 3;
  const storageCount = options.storageServers ?? 3;
  const targets = options.targetsPerServer ?? 2;
  const replicas = options.replicas ?? Math.min(3, storageCount);
  const host = options.host ?? '127.0.0.1';
  if (!Number.isInteger(metaCount) || metaCount < 1 || metaCount > limits.upMetaserversMax) {
    throw flyfsError('FLYFS_ERR_BAD_CONFIG', `metaservers must be 1..${limits.upMetaserversMax}`);
  }
  if (!Number.isInteger(storageCount) || storageCount < 1 || storageCount > limits.upStorageServersMax) {
    throw flyfsError('FLYFS_ERR_BAD_CONFIG', `storage servers must be 1..${limits.upStorageServersMax}`);
  }
  if (!Number.isInteger(targets) || targets < 1 || targets > limits.targetsPerNodeMax) {
    throw flyfsError('FLYFS_ERR_BAD_CONFIG', `targets per server must be 1..${limits.targetsPerNodeMax}`);
  }
  const kvCount = options.kvcache ?? 0;
  if (kvCount !== 0 && kvCount !== 1) throw flyfsError('FLYFS_ERR_BAD_CONFIG', 'kvcache services must be 0 or 1');
  await mkdir(options.dataDir, { recursive: true });
  await takeLock(options.dataDir);
  const logDir = options.logDir ?? join(options.dataDir, 'logs');
  await mkdir(logDir, { recursive: true });
  const children = new Map<string, Child>();
  let stopping = false;
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;

  const spawnChild = (name: string, role: ReadyInfo['role'], args: string[]): Promise<Child> => {
    const log = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
    const proc = spawn(process.execPath, [...(options.nodeArgs ?? []), cliPath(), role, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Own process group: a terminal's Ctrl-C reaches `up` alone, which then stops the
      // children in order (storage servers first) instead of racing their own exits.
      detached: true,
    });
    proc.stderr!.pipe(log, { end: false });
    return new Promise<Child>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(flyfsError('FLYFS_ERR_CHILD_FAILED', `${name} was not ready within ${readyTimeoutMs} ms (log: ${join(logDir, `${name}.log`)})`));
      }, readyTimeoutMs);
      const lines = createInterface({ input: proc.stdout! });
      lines.on('line', (line) => {
        const info = parseReadyLine(line);
        if (!info || ready) { log.write(line + '\n'); return; }
        ready = true;
        clearTimeout(timer);
        const node: LocalNode = {
          name, role, pid: info.pid, grpcAddress: info.grpcAddress, httpAddress: info.httpAddress, state: 'running',
          ...(info.nodeId === undefined ? {} : { nodeId: info.nodeId }),
          ...(info.dataAddress === undefined ? {} : { dataAddress: info.dataAddress }),
        };
        const child: Child = { node, proc, args, log };
        children.set(name, child);
        resolve(child);
      });
      proc.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (!ready) {
          reject(flyfsError('FLYFS_ERR_CHILD_FAILED', `${name} exited (${code ?? signal}) before it was ready (log: ${join(logDir, `${name}.log`)})`));
          return;
        }
        const child = children.get(name);
        if (!child || child.proc !== proc) return;
        child.node.state = 'exited';
        if (stopping) return;
        options.onChildExit?.(child.node, code, signal);
        void writeState();
        if (options.restart) void restartNode(name).catch(() => undefined);
      });
    });
  };

  const clusterAddress = (): string =>
    [...children.values()].filter((c) => c.node.role === 'metaserver').map((c) => c.node.grpcAddress).join(',');

  const writeState = async (): Promise<void> => {
    const state: ClusterState = {
      upPid: process.pid, clusterAddress: clusterAddress(), dataDir: options.dataDir, startedAt: new Date().toISOString(),
      nodes: [...children.values()].map((c) => c.node),
    };
    const tmp = join(options.dataDir, `${STATE_FILE}.tmp`);
    await writeFile(tmp, JSON.stringify(state, null, 2));
    await rename(tmp, join(options.dataDir, STATE_FILE));
  };

  const restartNode = async (name: string): Promise<LocalNode> => {
    const old = children.get(name);
    if (!old) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `no node ${name}`);
    if (old.node.state === 'running' && old.proc.exitCode === null && old.proc.signalCode === null) {
      throw flyfsError('FLYFS_ERR_BUSY', `${name} is running`);
    }
    old.log.end();
    const child = await spawnChild(name, old.node.role, old.args);
    await writeState();
    return child.node;
  };

  const stopChild = (c: Child): Promise<void> => new Promise((resolve) => {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) { c.log.end(); resolve(); return; }
    const timer = setTimeout(() => c.proc.kill('SIGKILL'), stopGraceMs);
    c.proc.once('exit', () => { clearTimeout(timer); c.log.end(); resolve(); });
    c.proc.kill('SIGTERM');
  });

  // If this process exits without stop() (an uncaught error), take the children with it.
  const killAll = (): void => {
    for (const c of children.values()) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  };
  process.on('exit', killAll);

  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.off('exit', killAll);
    const all = [...children.values()];
    await Promise.all(all.filter((c) => c.node.role === 'kvcache').map(stopChild));
    await Promise.all(all.filter((c) => c.node.role === 'storageserver').map(stopChild));
    await Promise.all(all.filter((c) => c.node.role === 'metaserver').map(stopChild));
    await rm(join(options.dataDir, STATE_FILE), { force: true });
    await rm(join(options.dataDir, LOCK_FILE), { force: true });
  };

  try {
    // The metaservers find one another through the addresses each publishes in peers/.
    const peersDir = join(options.dataDir, 'peers');
    await mkdir(peersDir, { recursive: true });
    const metas = await Promise.all(Array.from({ length: metaCount }, (_, i) =>
      spawnChild(`metaserver-${i}`, 'metaserver', [
        '--data', join(options.dataDir, `metaserver-${i}`), '--host', host, '--port', '0', '--http-port', '0', '--rpc-port', '0',
        '--replica-id', String(i + 1), '--metaservers', String(metaCount), '--peers-dir', peersDir,
        '--replicas', String(replicas),
        ...(options.extraArgs?.metaserver ?? []),
      ])));
    // Restarts of a metaserver keep its ports, so storage servers can find it again.
    for (const m of metas) {
      m.args = m.args.map((a, i, arr) => arr[i - 1] === '--port' ? portOf(m.node.grpcAddress)
        : arr[i - 1] === '--http-port' ? portOf(m.node.httpAddress) : arr[i - 1] === '--rpc-port' ? portOf(m.node.dataAddress) : a);
    }
    const mgmt = metas.map((m) => m.node.grpcAddress).join(',');
    const storages = await Promise.all(Array.from({ length: storageCount }, (_, i) =>
      spawnChild(`storage-${i}`, 'storageserver', [
        '--data', join(options.dataDir, `storage-${i}`), '--mgmt', mgmt, '--targets', String(targets),
        '--host', host, '--port', '0', '--data-port', '0', '--http-port', '0',
        ...(options.extraArgs?.storageserver ?? []),
      ])));
    for (const s of storages) {
      s.args = s.args.map((a, i, arr) => arr[i - 1] === '--port' ? portOf(s.node.grpcAddress)
        : arr[i - 1] === '--data-port' ? portOf(s.node.dataAddress) : arr[i - 1] === '--http-port' ? portOf(s.node.httpAddress) : a);
    }
    for (let i = 0; i < kvCount; i++) {
      const kv = await spawnChild(`kvcache-${i}`, 'kvcache', [
        '--data', join(options.dataDir, `kvcache-${i}`), '--cluster', mgmt, '--host', host, '--port', '0', '--http-port', '0', '--rpc-port', '0',
        ...(options.extraArgs?.kvcache ?? []),
      ]);
      kv.args = kv.args.map((a, j, arr) => arr[j - 1] === '--port' ? portOf(kv.node.grpcAddress)
        : arr[j - 1] === '--http-port' ? portOf(kv.node.httpAddress) : arr[j - 1] === '--rpc-port' ? portOf(kv.node.dataAddress) : a);
    }
    await writeState();
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    get clusterAddress() { return clusterAddress(); },
    dataDir: options.dataDir,
    get nodes() { return [...children.values()].map((c) => c.node); },
    stop,
    kill(name, signal) {
      const c = children.get(name);
      if (!c) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `no node ${name}`);
      c.proc.kill(signal);
    },
    restartNode,
  };
}

/** Reads DIR/cluster.json of a running `flyfs up`, or undefined. */
export async function readClusterState(dataDir: string): Promise<ClusterState | undefined> {
  try {
    const state = JSON.parse(await readFile(join(dataDir, STATE_FILE), 'utf8')) as ClusterState;
    return isAlive(state.upPid) ? state : undefined;
  } catch {
    return undefined;
  }
}
