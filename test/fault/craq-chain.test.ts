// CRAQ storage chains under real faults: a chain of 3 targets on 3 storage-server processes,
// 8 writers (one file of 4 chunks each, every write one whole 64 KiB chunk of verifiable
// content) and 8 readers running while the head, then the middle, then the tail is killed with
// SIGKILL, kept down a while and restarted. Every read must be exactly one write of that block
// (never torn, never a mix) and never older than the last write acknowledged before it began;
// writes must go on while the victim is down; and once the chain is whole again every block's
// last acknowledged write must read back identical through the client and from the chunk files
// on disk of each of the 3 replicas.
// Seeded: FLYFS_SEED=<n> replays the content and the load's choices (not the fault timing).
// FLYFS_FAULT_LOGS=<dir> keeps the children's logs past the cleanup.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type FileHandle, type FileSystem } from '../../client/index.js';
import type { LocalCluster, LocalNode } from '../../tools/local-cluster.js';
import { chunkFilesOf, startFaultCluster } from '../helpers/cluster.js';
import { blockContent, CraqLoad, decodeBlock, FileModel, sleep } from './helpers/craq-load.js';

const seed = Number(process.env['FLYFS_SEED'] ?? Date.now() % 1_000_000);
const chunkSizeBytes = 65_536;
const blocksPerFile = 4;
const writersCount = 8;
const readersCount = 8;
const connectionsCount = 4;
/** One operation's deadline, retries included: long enough to ride out a chain change. */
const opDeadlineMs = 15_000;

const writesMaxPerWriter = 3_000;
const readsMaxPerReader = 6_000;
/** One role's load stops when its fault is done, or at this bound. */
const loadTimeBoundMs = 25_000;
const writePauseMs = 10;
const readPauseMs = 5;
/** Load before the kill, so writes are flowing when it lands. */
const warmMs = 600;
/** The victim stays down at least this long, and until writes sent after the kill were acknowledged. */
const downMinMs = 2_500;
const downAckedMin = 8;
const downMaxMs = 10_000;
const servingTimeoutMs = 30_000;
/** Load after the chain is whole again, before it stops. */
const afterServingMs = 500;

interface StorageStatus { targets: Array<{ targetId: number }>; chains: Array<{ chainId: number; version: number; targetId: number; state: string }> }

type Role = 'head' | 'middle' | 'tail';

function storageNodes(cluster: LocalCluster): LocalNode[] {
  return cluster.nodes.filter((n) => n.role === 'storageserver');
}

async function statusOf(node: LocalNode): Promise<StorageStatus | undefined> {
  if (node.state !== 'running') return undefined;
  try {
    const res = await fetch(`http://${node.httpAddress}/status`, { signal: AbortSignal.timeout(1_000) });
    return res.ok ? await res.json() as StorageStatus : undefined;
  } catch {
    return undefined;
  }
}

interface WholeChain { version: number; routingVersion: number; byRole: Record<Role, LocalNode>; order: string }

/**
 * The chain once every storage server reports its target serving at one chain version and the
 * manager's routing lists the 3 targets serving; the roles are the routing's order (head first).
 */
async function wholeChain(cluster: LocalCluster, admin: FileSystem): Promise<WholeChain | undefined> {
  const nodes = storageNodes(cluster);
  if (nodes.length !== 3) return undefined;
  const statuses = await Promise.all(nodes.map(statusOf));
  const nodeOfTarget = new Map<number, LocalNode>();
  const versions = new Set<number>();
  for (const [i, s] of statuses.entries()) {
    if (!s || s.chains.length !== 1) return undefined;
    const c = s.chains[0]!;
    if (c.state !== 'TARGET_STATE_SERVING') return undefined;
    versions.add(c.version);
    for (const t of s.targets) nodeOfTarget.set(t.targetId, nodes[i]!);
  }
  if (versions.size !== 1) return undefined;
  const info = await admin.routingInfo().catch(() => undefined);
  if (!info || info.chains.length !== 1) return undefined;
  const chain = info.chains[0]!;
  if (chain.targetIds.length !== 3 || !chain.targetStates.every((s) => s === 'TARGET_STATE_SERVING')) return undefined;
  const members = chain.targetIds.map((t) => nodeOfTarget.get(t));
  if (members.some((m) => m === undefined) || new Set(members).size !== 3) return undefined;
  const [head, middle, tail] = members as [LocalNode, LocalNode, LocalNode];
  return {
    version: [...versions][0]!, routingVersion: chain.version, byRole: { head, middle, tail },
    order: chain.targetIds.map((t, i) => `${t}@${members[i]!.name}`).join(' -> '),
  };
}

async function waitWholeChain(cluster: LocalCluster, admin: FileSystem, timeoutMs: number): Promise<WholeChain> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const c = await wholeChain(cluster, admin);
    if (c) return c;
    if (Date.now() > until) {
      const views = await Promise.all(storageNodes(cluster).map(async (n) => `${n.name} (${n.state}): ${JSON.stringify((await statusOf(n))?.chains) ?? 'no answer'}`));
      const info = await admin.routingInfo().catch((e: unknown) => String(e));
      throw new Error(`the chain was not whole (3 targets serving at one version) within ${timeoutMs} ms; `
        + `${views.join('; ')}; routing: ${JSON.stringify(typeof info === 'string' ? info : info.chains)}`);
    }
    await sleep(100);
  }
}

/** Each chunk index → the chunk files (path, version, bytes) one storage server holds for the inode. */
async function replicaFiles(root: string, ino: number): Promise<Map<number, Array<{ path: string; version: number; bytes: Buffer }>>> {
  const out = new Map<number, Array<{ path: string; version: number; bytes: Buffer }>>();
  for (const path of await chunkFilesOf(root, ino)) {
    const m = /(\d+)\.(\d+)$/.exec(path)!;
    const list = out.get(Number(m[1])) ?? [];
    list.push({ path, version: Number(m[2]), bytes: await readFile(path) });
    out.set(Number(m[1]), list);
  }
  return out;
}

interface RoleFigure {
  role: Role; victim: string; order: string; versionBefore: number; versionAfter: number;
  downMs: number; ackedWhileDown: number; ackedDuringDowntime: number; restartToWholeMs: number;
  writesAcked: number; writesFailed: number; readsChecked: number; readsFailed: number; pendingSeen: number;
}

describe('CRAQ chain of 3 under kill -9 of head, middle and tail (real processes)', () => {
  let cluster: LocalCluster;
  let cleanup: (() => Promise<void>) | undefined;
  let dataDir: string;
  let admin: FileSystem;
  const conns: FileSystem[] = [];
  const handles: FileHandle[] = [];
  const files: FileModel[] = [];
  const inodes: number[] = [];
  let writeHandles: FileHandle[] = [];
  let readHandles: FileHandle[][] = [];
  const nextWriteNo = Array.from({ length: writersCount }, () => 1);
  const expectedExits = new Set<string>();
  const unexpectedExits: string[] = [];
  const figures: RoleFigure[] = [];
  let load: CraqLoad | undefined;

  beforeAll(async () => {
    console.log(`craq-chain fault test: seed ${seed} (FLYFS_SEED=${seed} replays content and choices)`);
    const c = await startFaultCluster('craq-chain-fault', {
      metaservers: 1, storageServers: 3, targetsPerServer: 1,
      extraArgs: { metaserver: ['--replicas', '3', '--lease-ms', '1000'], storageserver: ['--craq-tick-ms', '100'] },
    }, { expected: expectedExits, unexpected: unexpectedExits });
    cluster = c.cluster;
    cleanup = c.cleanup;
    dataDir = cluster.dataDir;
    admin = await connect(cluster.clusterAddress, { deadlineMs: opDeadlineMs });
    await admin.mkdir('/load', { chunkSizeBytes, stripe: 1 });
    for (let i = 0; i < connectionsCount; i++) conns.push(await connect(cluster.clusterAddress, { deadlineMs: opDeadlineMs }));
    // Each file starts as write 0 of each of its blocks, acknowledged.
    for (let w = 0; w < writersCount; w++) {
      const path = `/load/w${w}`;
      const initial = Buffer.concat(Array.from({ length: blocksPerFile }, (_, b) => blockContent(seed, w, b, 0, chunkSizeBytes)));
      await admin.writeFile(path, initial);
      files.push(new FileModel(w, path, blocksPerFile));
      inodes.push((await admin.stat(path)).ino);
    }
    writeHandles = await Promise.all(files.map((f, w) => conns[w % connectionsCount]!.open(f.path, 'r+')));
    readHandles = await Promise.all(Array.from({ length: readersCount }, (_, r) =>
      Promise.all(files.map((f) => conns[(r + 1) % connectionsCount]!.open(f.path, 'r')))));
    handles.push(...writeHandles, ...readHandles.flat());
  }, 60_000);

  afterAll(async () => {
    await load?.stop().catch(() => undefined);
    for (const h of handles) await h.close().catch(() => undefined);
    for (const c of conns) await c.close();
    await admin?.close();
    await cleanup?.();
    if (figures.length > 0) {
      console.log(`craq-chain totals (seed ${seed}): writes acked ${figures.reduce((a, f) => a + f.writesAcked, 0)}, `
        + `reads checked ${figures.reduce((a, f) => a + f.readsChecked, 0)}, `
        + `writes acked while down ${figures.map((f) => `${f.role} ${f.ackedWhileDown}`).join(', ')}`);
    }
  }, 30_000);

  /** Every block's last acknowledged write, through the client and at each replica on disk. */
  async function checkAcknowledged(role: Role): Promise<number> {
    let pendingSeen = 0;
    const problems: string[] = [];
    const check = await connect(cluster.clusterAddress, { deadlineMs: opDeadlineMs });
    try {
      for (const [w, f] of files.entries()) {
        for (let b = 0; b < blocksPerFile; b++) {
          if (f.inFlight[b] !== undefined) problems.push(`${f.path} block ${b}: write ${f.inFlight[b]} still in flight after the load stopped`);
        }
        const viaClient = await check.readFile(f.path) as Buffer;
        if (viaClient.length !== blocksPerFile * chunkSizeBytes) problems.push(`${f.path}: client read ${viaClient.length} bytes, want ${blocksPerFile * chunkSizeBytes}`);
        const replicas = await Promise.all(storageNodes(cluster).map(async (n) => ({ name: n.name, files: await replicaFiles(join(dataDir, n.name), inodes[w]!) })));
        for (const r of replicas) {
          const extra = [...r.files.keys()].filter((i) => i >= blocksPerFile);
          if (extra.length > 0) problems.push(`${f.path} at ${r.name}: chunk files for indexes ${extra.join(',')} beyond the file`);
        }
        for (let b = 0; b < blocksPerFile; b++) {
          const allowed = f.allowedFinal(b);
          const where = `${f.path} block ${b} (last acknowledged write ${f.lastAcked[b]}${allowed.length > 1 ? `, failed writes after it ${allowed.slice(1).join(',')}` : ''})`;
          const what = (bytes: Buffer): string => {
            const d = decodeBlock(seed, bytes, chunkSizeBytes);
            return d ? `write ${d.writeNo} of writer ${d.writer} block ${d.block}${d.exact ? '' : ' (torn)'}` : `unrecognised bytes ${bytes.subarray(0, 16).toString('hex')}`;
          };
          const matches = (bytes: Buffer): number | undefined =>
            allowed.find((n) => bytes.equals(blockContent(seed, w, b, n, chunkSizeBytes)));
          const clientBlock = viaClient.subarray(b * chunkSizeBytes, (b + 1) * chunkSizeBytes);
          const clientWrite = matches(clientBlock);
          if (clientWrite === undefined) problems.push(`${where}: the client reads ${what(clientBlock)}`);
          for (const r of replicas) {
            const copies = r.files.get(b) ?? [];
            if (copies.length === 0 || copies.length > 2) {
              problems.push(`${where} at ${r.name}: ${copies.length} chunk files (${copies.map((c) => c.path).join(', ')}), want 1 committed (+ at most 1 pending)`);
              continue;
            }
            if (copies.length === 2) pendingSeen++;
            const hit = copies.find((c) => matches(c.bytes) !== undefined);
            if (!hit) {
              problems.push(`${where} at ${r.name}: no chunk file holds it; ${copies.map((c) => `${c.path.slice(dataDir.length)} holds ${what(c.bytes)}`).join('; ')}`);
              continue;
            }
            const n = matches(hit.bytes)!;
            if (clientWrite !== undefined && n !== clientWrite) problems.push(`${where} at ${r.name}: the replica holds write ${n}, the client reads write ${clientWrite}`);
          }
        }
      }
    } finally {
      await check.close();
    }
    if (problems.length > 0) console.log(`after the ${role} kill, ${problems.length} problems:\n  ${problems.slice(0, 40).join('\n  ')}`);
    expect(problems, `every acknowledged write at the client and at each of the 3 replicas after the ${role} kill`).toEqual([]);
    return pendingSeen;
  }

  for (const role of ['head', 'middle', 'tail'] as const) {
    it(`kill -9 of the ${role} under load: writes go on, reads are never torn or stale, every acknowledged write is on all 3 replicas`, async () => {
      const before = await waitWholeChain(cluster, admin, servingTimeoutMs);
      const victim = before.byRole[role];
      load = new CraqLoad({
        seed, blockSize: chunkSizeBytes, files, writeHandles, readHandles, nextWriteNo,
        writesMaxPerWriter, readsMaxPerReader, timeBoundMs: loadTimeBoundMs, writePauseMs, readPauseMs,
      });
      let killedAt = 0;
      let restartAt = 0;
      let wholeAt = 0;
      let after: WholeChain | undefined;
      try {
        await sleep(warmMs);
        expect(load.counts.writesAcked, 'writes acknowledged before the kill').toBeGreaterThan(0);
        expectedExits.add(victim.name);
        killedAt = Date.now();
        cluster.kill(victim.name, 'SIGKILL');
        // Down at least downMinMs, and until writes sent after the kill were acknowledged.
        while (Date.now() - killedAt < downMaxMs
          && (Date.now() - killedAt < downMinMs || load.ackedWithin(killedAt, Date.now()) < downAckedMin)) {
          await sleep(100);
        }
        for (let i = 0; i < 50 && storageNodes(cluster).find((n) => n.name === victim.name)?.state !== 'exited'; i++) await sleep(100);
        restartAt = Date.now();
        await cluster.restartNode(victim.name);
        after = await waitWholeChain(cluster, admin, servingTimeoutMs);
        wholeAt = Date.now();
        await sleep(afterServingMs);
      } finally {
        await load.stop();
      }
      const l = load;
      load = undefined;
      if (!after) throw new Error('the chain never became whole');
      const f: RoleFigure = {
        role, victim: victim.name, order: `${before.order}  =>  ${after.order}`,
        versionBefore: before.version, versionAfter: after.version,
        downMs: restartAt - killedAt,
        ackedWhileDown: l.ackedWithin(killedAt, restartAt),
        ackedDuringDowntime: l.acks.filter((a) => a.ackedAt >= killedAt && a.ackedAt <= restartAt).length,
        restartToWholeMs: wholeAt - restartAt,
        writesAcked: l.counts.writesAcked, writesFailed: l.counts.writesFailed,
        readsChecked: l.counts.readsChecked, readsFailed: l.counts.readsFailed, pendingSeen: 0,
      };
      figures.push(f);
      const loadMs = Date.now() - l.startedAt;
      console.log(`kill -9 ${role} (${victim.name}), chain ${f.order}, version ${f.versionBefore} -> ${f.versionAfter}: down ${f.downMs} ms, `
        + `${f.ackedWhileDown} writes sent and acknowledged while down (${f.ackedDuringDowntime} acknowledged in that time); whole again ${f.restartToWholeMs} ms after the restart`);
      console.log(`  load ${loadMs} ms: writes sent ${l.counts.writesSent}, acked ${f.writesAcked}, failed ${f.writesFailed}; `
        + `reads checked ${f.readsChecked}, failed ${f.readsFailed}; errors: ${l.errors.size === 0 ? 'none' : [...l.errors].map(([c, n]) => `${c} x${n}`).join(', ')}`);
      if (l.violations.length > 0) console.log(`  read violations (${l.violations.length}):\n    ${l.violations.slice(0, 40).join('\n    ')}`);

      expect(l.violations, `reads during the ${role} kill`).toEqual([]);
      f.pendingSeen = await checkAcknowledged(role);
      if (f.pendingSeen > 0) console.log(`  ${f.pendingSeen} replica chunks still had a pending file next to the committed one`);
      expect(unexpectedExits).toEqual([]);
      expect(f.ackedWhileDown, `writes sent after the ${role} was killed and acknowledged before it restarted`).toBeGreaterThan(0);
      expect(f.readsChecked).toBeGreaterThan(0);
    }, 60_000);
  }
});
