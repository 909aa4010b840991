// A seeded simulation of one CRAQ chain: replicas (the pure core), a lossy reordering network,
// crashes (also between persisting and sending), a cluster manager that reconfigures the chain,
// and clients that write and read with retries. Invariants are checked as the run goes and once
// the chain has settled.
import { chainId, chainVersion, inodeId, targetId, type ChunkKey, type TargetId } from '../../../common/ids.js';
import { ErrorCodes } from '../../../common/errors.js';
import {
  CraqReplica, DurableImage, applyUpdate, chunkName, clientId, emptyContent, sameBytes,
  type ChainConfig, type ChainMember, type ClientId, type ClientReply, type CommittedChunk, type CraqInput,
  type CraqOutput, type DurableWrite, type SyncDoneEvent, type WriteId,
} from '../../../storageserver/craq/index.js';
import { Network, reliableNetwork, type NetworkFaults } from './network.js';
import { Prng } from './prng.js';
import { EventQueue } from './event-queue.js';

export interface ReplicaLike {
  step(input: CraqInput): CraqOutput;
}

export interface CraqSimOptions {
  readonly seed: number;
  readonly clients?: number;
  readonly chunks?: number;
  readonly opsPerClient?: number;
  /** Faults happen before this time; then the network heals and every node comes back. */
  readonly faultUntil?: number;
  /** The chain must have settled by this time. */
  readonly settleUntil?: number;
  readonly trace?: boolean;
  /** Wraps each replica, so a test can plant a broken variant and see the checker catch it. */
  readonly wrap?: (replica: CraqReplica, durable: DurableImage) => ReplicaLike;
}

export interface CraqSimResult {
  readonly seed: number;
  readonly violations: string[];
  readonly trace: string[];
  readonly stats: { replicas: number; writesAcked: number; reads: number; crashes: number; reconfigurations: number; messages: number; endTime: number };
}

export const replayCommand = (seed: number): string => `CRAQ_SEED=${seed} npx vitest run test/sim/craq.test.ts`;

type Address = string; // 'n<target>', 'c<client>', 'm'
type SimMessage =
  | { readonly kind: 'input'; readonly input: CraqInput }
  | { readonly kind: 'reply'; readonly reply: ClientReply }
  | { readonly kind: 'syncDone'; readonly event: SyncDoneEvent };

interface SimNode {
  readonly id: TargetId;
  alive: boolean;
  replica: ReplicaLike | null;
  readonly disk: DurableImage;
  downSince: number;
  upSince: number;
}

interface Op {
  readonly kind: 'write' | 'read';
  readonly requestId: number;
  readonly chunk: ChunkKey;
  readonly offsetBytes: number;
  readonly bytes: Uint8Array;
}

interface SimClient {
  readonly id: ClientId;
  nextRequestId: number;
  opsLeft: number;
  current: Op | null;
  view: ChainConfig;
  attempt: number;
}

const CHUNK_SIZE_BYTES = 8;
const TICK = 10;
const MANAGER_TICK = 20;
const CLIENT_TIMEOUT = 80;

const writeKey = (w: WriteId): string => `${w.clientId}:${w.requestId}`;

export function runCraqSim(options: CraqSimOptions): CraqSimResult {
  const prng = new Prng(options.seed);
  const sched = new EventQueue();
  const violations: string[] = [];
  const trace: string[] = [];
  const tracing = options.trace === true;
  const faultUntil = options.faultUntil ?? 1500;
  const settleUntil = options.settleUntil ?? faultUntil + 6000;
  const replicas = prng.pick([2, 3, 3, 4]);
  const faultyNet: NetworkFaults = {
    dropProbability: prng.pick([0, 0.05, 0.1, 0.2]),
    duplicateProbability: prng.pick([0, 0.05, 0.1]),
    delayMin: 1,
    delayMax: prng.pick([5, 20, 40]),
  };
  const crashEvery = prng.pick([60, 150, 400]);
  const midStepCrashProbability = prng.pick([0, 0.002, 0.01]);
  const stats = { replicas, writesAcked: 0, reads: 0, crashes: 0, reconfigurations: 0, messages: 0, endTime: 0 };
  const violate = (what: string): void => {
    if (violations.length < 20) violations.push(`t=${sched.nowMs} ${what}`);
  };
  const note = tracing ? (line: string): void => { trace.push(`${sched.nowMs} ${line}`); } : (): void => {};

  // ---- what the checker knows ----
  const writes = new Map<string, Op>();
  const commits = new Map<string, Map<number, CommittedChunk>>();
  const committedAt = new Map<string, number>(); // write → the version it became
  const ackedMax = new Map<string, number>();
  const readMin = new Map<string, { chunk: ChunkKey; minVersion: number }>();

  function observeCommit(chunk: ChunkKey, c: CommittedChunk): void {
    const name = chunkName(chunk);
    let versions = commits.get(name);
    if (versions === undefined) commits.set(name, (versions = new Map()));
    const known = versions.get(c.version);
    if (known !== undefined) {
      if (!sameBytes(known.content, c.content)) violate(`divergent commit of ${name} v${c.version}`);
      return;
    }
    const base = c.version === 1 ? emptyContent : versions.get(c.version - 1)?.content;
    const write = c.writeId === null ? undefined : writes.get(writeKey(c.writeId));
    if (base === undefined) violate(`${name} v${c.version} committed before v${c.version - 1}`);
    else if (write === undefined || c.writeId === null) violate(`${name} v${c.version} committed from an unknown write`);
    else {
      if (chunkName(write.chunk) !== name) violate(`write ${writeKey(c.writeId)} committed on the wrong chunk`);
      if (!sameBytes(applyUpdate(base, write.offsetBytes, write.bytes), c.content)) violate(`${name} v${c.version} is not v${c.version - 1} + its write (torn)`);
      const earlier = committedAt.get(writeKey(c.writeId));
      if (earlier !== undefined) violate(`write ${writeKey(c.writeId)} applied twice (v${earlier} and v${c.version})`);
      committedAt.set(writeKey(c.writeId), c.version);
    }
    versions.set(c.version, c);
  }

  function observePersist(node: SimNode, w: DurableWrite): void {
    if (w.kind !== 'putChunk' || w.record.committed === null) return;
    const before = node.disk.get(chunkName(w.record.chunk))?.committed ?? null;
    const c = w.record.committed;
    if (before !== null && c.version < before.version) violate(`n${node.id} ${chunkName(w.record.chunk)} went back from v${before.version} to v${c.version}`);
    if (before?.version !== c.version) observeCommit(w.record.chunk, c);
  }

  function checkReplyAtSource(reply: ClientReply): void {
    if (reply.kind !== 'read' || !reply.result.ok) return;
    stats.reads++;
    const info = readMin.get(`${reply.clientId}:${reply.requestId}`);
    if (info === undefined) return;
    const v = reply.result.version;
    const content = reply.result.content ?? emptyContent;
    const committed = v === 0 ? emptyContent : commits.get(chunkName(info.chunk))?.get(v)?.content;
    if (committed === undefined || !sameBytes(committed, content)) violate(`read of ${chunkName(info.chunk)} at n${reply.from} returned uncommitted v${v}`);
    if (v < info.minVersion) violate(`read of ${chunkName(info.chunk)} at n${reply.from} returned v${v}, older than acknowledged v${info.minVersion}`);
  }

  // ---- nodes ----
  const nodes: SimNode[] = [];
  for (let i = 1; i <= replicas; i++) nodes.push({ id: targetId(i), alive: true, replica: null, disk: new DurableImage(), downSince: 0, upSince: 0 });
  const nodeOf = (t: TargetId): SimNode => nodes[t - 1]!;
  const build = (node: SimNode): ReplicaLike => {
    const core = new CraqReplica({ self: node.id, durable: node.disk.snapshot() });
    return options.wrap ? options.wrap(core, node.disk) : core;
  };
  for (const n of nodes) n.replica = build(n);

  const net = new Network<Address, SimMessage>(sched, prng, faultyNet, (to, msg) => deliver(to, msg));

  function stepNode(node: SimNode, input: CraqInput): void {
    const replica = node.replica;
    if (!node.alive || replica === null) return;
    const out = replica.step(input);
    if (tracing) note(`n${node.id} ${describe(input)} -> p${out.persist.length} m${out.messages.map((m) => m.body.kind[0]).join('')} r${out.replies.length}`);
    for (const w of out.persist) {
      observePersist(node, w);
      node.disk.apply(w);
    }
    if (sched.nowMs < faultUntil && prng.chance(midStepCrashProbability)) {
      note(`n${node.id} crashes after persisting, before sending`);
      return crash(node);
    }
    for (const m of out.messages) net.send(`n${m.to}`, { kind: 'input', input: { kind: 'peer', message: m } });
    for (const r of out.replies) {
      checkReplyAtSource(r);
      net.send(`c${r.clientId}`, { kind: 'reply', reply: r });
    }
    for (const e of out.events) net.send('m', { kind: 'syncDone', event: e });
  }

  function crash(node: SimNode): void {
    if (!node.alive) return;
    stats.crashes++;
    node.alive = false;
    node.replica = null;
    node.downSince = sched.nowMs;
    note(`n${node.id} crash`);
    sched.after(prng.int(30, 400), () => restart(node));
  }

  function restart(node: SimNode): void {
    if (node.alive) return;
    node.alive = true;
    node.upSince = sched.nowMs;
    node.replica = build(node);
    note(`n${node.id} restart`);
    net.send(`n${node.id}`, { kind: 'input', input: { kind: 'config', config } });
  }

  function nodeTick(node: SimNode): void {
    stepNode(node, { kind: 'tick' });
    sched.after(TICK, () => nodeTick(node));
  }

  // ---- the cluster manager ----
  let config: ChainConfig = { chainId: chainId(1), version: chainVersion(1), members: nodes.map((n) => ({ target: n.id, state: 'serving' })) };

  function publish(members: ChainMember[], why: string): void {
    config = { chainId: config.chainId, version: chainVersion(config.version + 1), members };
    stats.reconfigurations++;
    note(`manager v${config.version} ${why}: ${members.map((m) => `${m.target}${m.state[0]}`).join(',')}`);
    broadcastConfig();
  }

  function broadcastConfig(): void {
    for (const n of nodes) if (n.alive) net.send(`n${n.id}`, { kind: 'input', input: { kind: 'config', config } });
  }

  function managerTick(): void {
    let members = [...config.members];
    let why = '';
    for (const m of config.members) {
      const node = nodeOf(m.target);
      if (m.state === 'offline' || node.alive || sched.nowMs - node.downSince < 2 * MANAGER_TICK) continue;
      const otherServing = members.some((o) => o.target !== m.target && o.state === 'serving' && nodeOf(o.target).alive);
      if (m.state === 'serving' && !otherServing) continue; // the last serving replica stays
      members = [...members.filter((o) => o.target !== m.target), { target: m.target, state: 'offline' }];
      why += ` remove ${m.target}`;
    }
    if (!members.some((m) => m.state === 'syncing')) {
      const back = members.find((m) => m.state === 'offline' && nodeOf(m.target).alive && sched.nowMs - nodeOf(m.target).upSince >= MANAGER_TICK);
      if (back !== undefined) {
        const serving = members.filter((m) => m.state === 'serving');
        const rest = members.filter((m) => m.state === 'offline' && m.target !== back.target);
        members = [...serving, { target: back.target, state: 'syncing' }, ...rest];
        why += ` sync ${back.target}`;
      }
    }
    if (why !== '') publish(members, why.trim());
    else broadcastConfig();
    if (sched.nowMs >= faultUntil) checkSettled();
    sched.after(MANAGER_TICK, managerTick);
  }

  function onSyncDone(e: SyncDoneEvent): void {
    if (e.chainVersion !== config.version) return;
    if (!config.members.some((m) => m.target === e.target && m.state === 'syncing')) return;
    publish(config.members.map((m) => (m.target === e.target ? { target: m.target, state: 'serving' } : m)), `serve ${e.target}`);
  }

  // ---- clients ----
  // Lanes of operations: two lanes share each client id (odd and even request ids), so one
  // client has writes in flight on several chunks at once, as the SDK does.
  const clientCount = options.clients ?? 4;
  const chunkCount = options.chunks ?? 2;
  const chunks: ChunkKey[] = [];
  for (let i = 0; i < chunkCount; i++) chunks.push({ inodeId: inodeId(100), index: i });
  const clients: SimClient[] = [];
  for (let i = 1; i <= clientCount; i++) clients.push({ id: clientId(Math.ceil(i / 2)), nextRequestId: 2 - (i % 2), opsLeft: options.opsPerClient ?? 10, current: null, view: config, attempt: 0 });
  const lanesOf = (id: ClientId): SimClient[] => clients.filter((c) => c.id === id);

  function startOp(c: SimClient): void {
    if (c.opsLeft === 0) return;
    const chunk = prng.pick(chunks);
    const requestId = c.nextRequestId;
    c.nextRequestId += 2;
    const isWrite = prng.chance(0.6);
    const offsetBytes = prng.int(0, CHUNK_SIZE_BYTES - 2);
    const op: Op = { kind: isWrite ? 'write' : 'read', requestId, chunk, offsetBytes, bytes: isWrite ? prng.bytes(prng.int(1, CHUNK_SIZE_BYTES - offsetBytes)) : emptyContent };
    if (isWrite) writes.set(writeKey({ clientId: c.id, requestId }), op);
    else readMin.set(`${c.id}:${requestId}`, { chunk, minVersion: ackedMax.get(chunkName(chunk)) ?? 0 });
    c.current = op;
    attempt(c, prng.chance(0.5));
  }

  function attempt(c: SimClient, refresh: boolean): void {
    const op = c.current;
    if (op === null) return;
    if (refresh) c.view = config;
    const serving = c.view.members.filter((m) => m.state === 'serving');
    const head = c.view.members[0];
    const target = op.kind === 'write' ? (head?.state === 'serving' ? head.target : undefined) : serving.length > 0 ? prng.pick(serving).target : undefined;
    const attemptNo = ++c.attempt;
    sched.after(CLIENT_TIMEOUT, () => {
      if (c.current === op && c.attempt === attemptNo) attempt(c, true);
    });
    if (target === undefined) return;
    const input: CraqInput = op.kind === 'write'
      ? { kind: 'write', request: { clientId: c.id, requestId: op.requestId, chainVersion: c.view.version, chunk: op.chunk, update: { offsetBytes: op.offsetBytes, bytes: op.bytes, chunkSizeBytes: CHUNK_SIZE_BYTES } } }
      : { kind: 'read', request: { clientId: c.id, requestId: op.requestId, chainVersion: c.view.version, chunk: op.chunk } };
    net.send(`n${target}`, { kind: 'input', input });
  }

  function onReply(c: SimClient, reply: ClientReply): void {
    const op = c.current;
    if (op === null || reply.requestId !== op.requestId || reply.kind !== op.kind) return;
    const result = reply.result;
    if (!result.ok) {
      if (!ErrorCodes[result.code].retryable) violate(`client ${c.id} got ${result.code} (${result.detail})`);
      const attemptNo = ++c.attempt;
      sched.after(prng.int(5, 30), () => {
        if (c.current === op && c.attempt === attemptNo) attempt(c, true);
      });
      return;
    }
    if (op.kind === 'write') {
      const name = chunkName(op.chunk);
      const committed = commits.get(name)?.get(result.version);
      const wid = committed?.writeId;
      if (wid == null || wid.clientId !== c.id || wid.requestId !== op.requestId) violate(`write ${c.id}:${op.requestId} acknowledged as ${name} v${result.version}, which is not its commit`);
      ackedMax.set(name, Math.max(ackedMax.get(name) ?? 0, result.version));
      stats.writesAcked++;
    }
    note(`c${c.id} done ${op.kind} ${op.requestId} v${result.version}`);
    c.current = null;
    c.opsLeft--;
    c.attempt++;
    sched.after(prng.int(1, 40), () => startOp(c));
  }

  function deliver(to: Address, msg: SimMessage): void {
    stats.messages++;
    if (to === 'm') {
      if (msg.kind === 'syncDone') onSyncDone(msg.event);
      return;
    }
    const id = Number(to.slice(1));
    if (to[0] === 'c') {
      if (msg.kind === 'reply') for (const c of lanesOf(clientId(id))) onReply(c, msg.reply);
      return;
    }
    if (msg.kind === 'input') stepNode(nodeOf(targetId(id)), msg.input);
  }

  // ---- faults and settling ----
  function chaos(): void {
    if (sched.nowMs >= faultUntil) return;
    const alive = nodes.filter((n) => n.alive);
    if (alive.length > 0) crash(prng.pick(alive));
    sched.after(prng.int(crashEvery / 2, crashEvery * 2), chaos);
  }

  function heal(): void {
    net.faults = reliableNetwork;
    note('heal');
    for (const n of nodes) if (!n.alive) restart(n);
  }

  let settled = false;
  function checkSettled(): void {
    if (clients.some((c) => c.opsLeft > 0)) return;
    if (!nodes.every((n) => n.alive) || !config.members.every((m) => m.state === 'serving')) return;
    for (const n of nodes) for (const r of n.disk.snapshot().chunks) if (r.pending !== null) return;
    // Every replica has the final configuration (it answers reads routed with it).
    for (const n of nodes) if (probeRead(n, chunks[0]!)?.ok !== true) return;
    settled = true;
  }

  function probeRead(node: SimNode, chunk: ChunkKey): ClientReply['result'] | undefined {
    const out = node.replica?.step({ kind: 'read', request: { clientId: clientId(0), requestId: 0, chainVersion: config.version, chunk } });
    return out?.replies[0]?.result;
  }

  function finalCheck(): void {
    const reference = nodeOf(config.members[0]!.target);
    for (const chunk of chunks) {
      const name = chunkName(chunk);
      const want = reference.disk.get(name)?.committed ?? null;
      const acked = ackedMax.get(name) ?? 0;
      if ((want?.version ?? 0) < acked) violate(`settled: ${name} at v${want?.version ?? 0} lost acknowledged v${acked}`);
      for (const m of config.members) {
        const node = nodeOf(m.target);
        const have = node.disk.get(name)?.committed ?? null;
        if ((have?.version ?? 0) !== (want?.version ?? 0) || !sameBytes(have?.content ?? emptyContent, want?.content ?? emptyContent)) {
          violate(`settled: n${m.target} has ${name} v${have?.version ?? 0}, n${reference.id} has v${want?.version ?? 0}`);
        }
        const r = probeRead(node, chunk);
        if (r === undefined || !r.ok || r.version !== (want?.version ?? 0) || !sameBytes(r.content ?? emptyContent, want?.content ?? emptyContent)) {
          violate(`settled: a read of ${name} at n${m.target} does not return v${want?.version ?? 0}`);
        }
      }
    }
  }

  for (const n of nodes) {
    sched.after(prng.int(0, TICK), () => nodeTick(n));
    stepNode(n, { kind: 'config', config });
  }
  sched.after(0, managerTick);
  sched.after(prng.int(crashEvery / 2, crashEvery * 2), chaos);
  sched.at(faultUntil, heal);
  for (const c of clients) sched.after(prng.int(0, 20), () => startOp(c));

  sched.runUntil(settleUntil, () => settled);
  stats.endTime = sched.nowMs;
  if (settled) finalCheck();
  else {
    const busy = clients.filter((c) => c.opsLeft > 0).map((c) => `c${c.id}:${c.current?.kind ?? '-'}${c.current?.requestId ?? ''}`);
    violate(`did not settle: v${config.version} ${config.members.map((m) => `${m.target}${m.state[0]}`).join(',')} clients ${busy.join(' ')}`);
  }
  return { seed: options.seed, violations, trace, stats };
}

function describe(input: CraqInput): string {
  switch (input.kind) {
    case 'peer': {
      const b = input.message.body;
      const detail = b.kind === 'update' || b.kind === 'ack' ? ` ${chunkName(b.chunk)} v${b.version}` : '';
      return `${b.kind} from ${input.message.from} @${input.message.chainVersion}${detail}`;
    }
    case 'write': return `write ${input.request.clientId}:${input.request.requestId} @${input.request.chainVersion}`;
    case 'read': return `read ${input.request.clientId}:${input.request.requestId} @${input.request.chainVersion}`;
    case 'config': return `config v${input.config.version}`;
    case 'tick': return 'tick';
  }
}

/** Runs seeds [from, from + count) and returns one line per failing seed. */
export function runSeeds(from: number, count: number, options: Omit<CraqSimOptions, 'seed'> = {}): string[] {
  const failures: string[] = [];
  for (let seed = from; seed < from + count; seed++) {
    const r = runCraqSim({ ...options, seed });
    if (r.violations.length > 0) failures.push(`seed=${seed}: ${r.violations[0]} — replay: ${replayCommand(seed)}`);
  }
  return failures;
}
