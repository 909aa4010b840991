// meta: the metadata service (3 chain-replicated metaservers, durable commits) from 1 client and
// from many concurrent clients — create, stat, readdir, rename, unlink — against the same
// operations as plain LMDB transactions in this process, synced, measured in the same run.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { open as openLmdb, type Database, type RootDatabase } from 'lmdb';
import { MetadataClient, OpenFlags } from '../client/metadata-client.js';
import { assert } from '../common/errors.js';
import { startLocalCluster } from '../tools/local-cluster.js';
import { figure, measured, type BenchContext, type Figure } from './harness.js';

export const unitOps = 'ops/s';
export const unitEntries = 'entries/s';

/** How much each figure does; every count and time has a bound. */
export interface MetaBenchConfig {
  /** Concurrent client loops of the "many clients" figures. */
  clients: number;
  /** MetadataClient instances (gRPC channel sets) the loops share. */
  connections: number;
  /** Operations per figure from 1 client and from `clients` clients (creates, renames, unlinks). */
  opsOneClient: number;
  opsManyClients: number;
  /** Stats per figure: they are cheap, so more of them, cycling over the files created. */
  statsOneClient: number;
  statsManyClients: number;
  /** Entries of the readdir directory, and full readdirs per figure. */
  dirEntries: number;
  readdirsOneClient: number;
  readdirsManyClients: number;
  /** Each figure stops taking new operations after this long. */
  figureMs: number;
  /** Baseline operations at 1 op per transaction, and at `batchOps` per transaction. */
  baselineOpsSingle: number;
  baselineOpsBatched: number;
  batchOps: number;
  baselineReaddirs: number;
  /** Child node flags (e.g. --cpu-prof) for profiling the cluster. */
  nodeArgs?: string[];
}

export const metaBenchDefaults: MetaBenchConfig = {
  clients: 64,
  connections: 4,
  opsOneClient: 1_000,
  opsManyClients: 5_000,
  statsOneClient: 20_000,
  statsManyClients: 200_000,
  dirEntries: 10_000,
  readdirsOneClient: 50,
  readdirsManyClients: 128,
  figureMs: 10_000,
  baselineOpsSingle: 1_000,
  baselineOpsBatched: 20_000,
  batchOps: 1_000,
  baselineReaddirs: 200,
};

/** What one timed loop did: operations completed (or entries read) over the wall time. */
interface Throughput {
  ops: number;
  ms: number;
}

function perSecond(t: Throughput): number {
  assert(t.ms > 0 && t.ops > 0, 'a figure completed work in positive time');
  return t.ops / (t.ms / 1000);
}

/**
 * Runs op(i) for i = 0.. from `loops` concurrent async loops until `count` are done or `figureMs`
 * has passed (an operation in flight then still finishes and counts). Returns the operations
 * done and the wall time; op returns how many units it did (1, or entries for readdir).
 */
async function timedLoops(loops: number, count: number, figureMs: number, op: (i: number, loop: number) => Promise<number>): Promise<Throughput & { done: number }> {
  let next = 0;
  let units = 0;
  const start = performance.now();
  const deadline = start + figureMs;
  const loop = async (l: number): Promise<void> => {
    while (next < count && performance.now() < deadline) {
      const i = next++;
      // Not `units += await op()`: that reads `units` before the await and loses the others' work.
      const done = await op(i, l);
      units += done;
    }
  };
  await Promise.all(Array.from({ length: Math.min(loops, count) }, (_, l) => loop(l)));
  return { ops: units, ms: performance.now() - start, done: next };
}

/** Synchronous ops in groups of `perTxn` per synced LMDB write transaction. */
function timedTxns(env: RootDatabase, count: number, perTxn: number, figureMs: number, op: (i: number) => void): Throughput & { done: number } {
  const start = performance.now();
  const deadline = start + figureMs;
  let i = 0;
  while (i < count && performance.now() < deadline) {
    const end = Math.min(count, i + perTxn);
    env.transactionSync(() => { for (let k = i; k < end; k++) op(k); });
    i = end;
  }
  return { ops: i, ms: performance.now() - start, done: i };
}

/** Reads in groups of `perTxn` per read snapshot (the shared read transaction is renewed between groups). */
function timedReads(db: Database, count: number, perTxn: number, figureMs: number, op: (i: number) => number): Throughput {
  const start = performance.now();
  const deadline = start + figureMs;
  let i = 0;
  let units = 0;
  while (i < count && performance.now() < deadline) {
    db.resetReadTxn();
    const end = Math.min(count, i + perTxn);
    for (; i < end; i++) units += op(i);
  }
  return { ops: units, ms: performance.now() - start };
}

// ---- baselines: plain lmdb, in process ----

/** An inode record shaped like the metaserver's (metaserver/types.ts), so values are of similar size. */
function inodeRecord(id: number, nowMs: number): object {
  return {
    inodeId: id, kind: 'file', mode: 0o644, nlink: 1, length: 0, uid: 0, gid: 0, writeSessions: 0,
    ctimeMs: nowMs, mtimeMs: nowMs, atimeMs: nowMs, birthtimeMs: nowMs,
    layout: { chunkSizeBytes: 4 << 20, stripe: 1, chainTableId: 1, chainTableVersion: 1, chains: [1], seed: id },
  };
}

interface BaselineRun {
  create: { single: number; batched: number };
  stat: { single: number; batched: number };
  rename: { single: number; batched: number };
  unlink: { single: number; batched: number };
  readdir: { readdirs: number; entries: number };
}

/**
 * One run of every baseline on its own LMDB environment (sync on, overlappingSync off, as in
 * metaserver/db.ts): create = put inode + put dirent [parent, name]; stat = get dirent + get inode;
 * rename = remove dirent + put dirent; unlink = remove dirent + remove inode; readdir = a range
 * read of the directory's dirents.
 */
async function baselineRun(dir: string, cfg: MetaBenchConfig): Promise<BaselineRun> {
  const env = openLmdb({ path: dir, maxDbs: 4, overlappingSync: false });
  try {
    const inodes = env.openDB({ name: 'inodes' });
    const dirents = env.openDB({ name: 'dirents' });
    let nextId = 2;
    const nowMs = Date.now();
    const variant = (perTxn: number, count: number, parent: number): { create: number; stat: number; rename: number; unlink: number } => {
      const ids: number[] = [];
      const created = timedTxns(env, count, perTxn, cfg.figureMs, (i) => {
        const id = nextId++;
        ids[i] = id;
        inodes.putSync(id, inodeRecord(id, nowMs));
        dirents.putSync([parent, `f${i}`], { inodeId: id, kind: 'file' });
      });
      const n = created.done;
      const statCount = perTxn === 1 ? cfg.statsOneClient : cfg.statsManyClients;
      const stat = timedReads(inodes, statCount, perTxn, cfg.figureMs, (i) => {
        const d = dirents.get([parent, `f${i % n}`]) as { inodeId: number } | undefined;
        assert(d !== undefined && inodes.get(d.inodeId) !== undefined, 'baseline stat finds the file');
        return 1;
      });
      const renamed = timedTxns(env, n, perTxn, cfg.figureMs, (i) => {
        const d = dirents.get([parent, `f${i}`]);
        dirents.removeSync([parent, `f${i}`]);
        dirents.putSync([parent, `r${i}`], d);
      });
      const unlinked = timedTxns(env, renamed.done, perTxn, cfg.figureMs, (i) => {
        dirents.removeSync([parent, `r${i}`]);
        inodes.removeSync(ids[i]!);
      });
      return { create: perSecond(created), stat: perSecond(stat), rename: perSecond(renamed), unlink: perSecond(unlinked) };
    };
    const single = variant(1, cfg.baselineOpsSingle, 1_000_001);
    const batched = variant(cfg.batchOps, cfg.baselineOpsBatched, 1_000_002);

    const listParent = 1_000_003;
    env.transactionSync(() => {
      for (let i = 0; i < cfg.dirEntries; i++) dirents.putSync([listParent, `e${String(i).padStart(6, '0')}`], { inodeId: nextId++, kind: 'file' });
    });
    let readdirs = 0;
    const listed = timedReads(dirents, cfg.baselineReaddirs, 1, cfg.figureMs, () => {
      let entries = 0;
      for (const { value } of dirents.getRange({ start: [listParent], end: [listParent + 1] })) if (value !== undefined) entries++;
      assert(entries === cfg.dirEntries, 'baseline readdir lists every entry');
      readdirs++;
      return entries;
    });
    return {
      create: { single: single.create, batched: batched.create },
      stat: { single: single.stat, batched: batched.stat },
      rename: { single: single.rename, batched: batched.rename },
      unlink: { single: single.unlink, batched: batched.unlink },
      readdir: { readdirs: perSecond({ ops: readdirs, ms: listed.ms }), entries: perSecond(listed) },
    };
  } finally {
    await env.close();
  }
}

// ---- flyfs: MetadataClient against the cluster ----

interface FlyfsRun {
  create: number;
  createOnly: number;
  stat: number;
  rename: number;
  unlink: number;
  readdirs: number;
  readdirEntries: number;
}

const createFlags = OpenFlags.write | OpenFlags.create | OpenFlags.exclusive;
/** One RPC: a read open creates the file but starts no write session, so there is nothing to close. */
const createOnlyFlags = OpenFlags.read | OpenFlags.create | OpenFlags.exclusive;
const fileMode = 0o644;

/** One run of every flyfs figure at one concurrency, in a fresh directory. */
async function flyfsRun(clients: readonly MetadataClient[], loops: number, dir: string, listDir: string, cfg: MetaBenchConfig): Promise<FlyfsRun> {
  const one = loops === 1;
  const count = one ? cfg.opsOneClient : cfg.opsManyClients;
  const client = (loop: number): MetadataClient => clients[loop % clients.length]!;
  await clients[0]!.mkdir(dir, { recursive: true, mode: 0o755 });

  const created = await timedLoops(loops, count, cfg.figureMs, async (i, l) => {
    const c = client(l);
    const { attrs, sessionId } = await c.open(`${dir}/f${i}`, createFlags, fileMode);
    await c.close(attrs.inodeId, sessionId, undefined);
    return 1;
  });
  const createdOnly = await timedLoops(loops, count, cfg.figureMs, async (i, l) => {
    await client(l).open(`${dir}/g${i}`, createOnlyFlags, fileMode);
    return 1;
  });
  const n = created.done;
  const stat = await timedLoops(loops, one ? cfg.statsOneClient : cfg.statsManyClients, cfg.figureMs, async (i, l) => {
    await client(l).stat(`${dir}/f${i % n}`);
    return 1;
  });
  const renamed = await timedLoops(loops, n, cfg.figureMs, async (i, l) => {
    await client(l).rename(`${dir}/f${i}`, `${dir}/r${i}`);
    return 1;
  });
  const unlinked = await timedLoops(loops, renamed.done, cfg.figureMs, async (i, l) => {
    await client(l).unlink(`${dir}/r${i}`);
    return 1;
  });
  const listed = await timedLoops(loops, one ? cfg.readdirsOneClient : cfg.readdirsManyClients, cfg.figureMs, async (_, l) => {
    const entries = (await client(l).readdir(listDir)).length;
    assert(entries === cfg.dirEntries, 'readdir lists every entry');
    return entries;
  });
  return {
    create: perSecond(created), createOnly: perSecond(createdOnly), stat: perSecond(stat),
    rename: perSecond(renamed), unlink: perSecond(unlinked),
    readdirs: perSecond({ ops: listed.done, ms: listed.ms }), readdirEntries: perSecond(listed),
  };
}

/** The readdir directory: `dirEntries` files, made with every loop at once (not timed). */
async function fillListDir(clients: readonly MetadataClient[], loops: number, listDir: string, cfg: MetaBenchConfig): Promise<void> {
  await clients[0]!.mkdir(listDir, { recursive: true, mode: 0o755 });
  const fill = await timedLoops(loops, cfg.dirEntries, Number.POSITIVE_INFINITY, async (i, l) => {
    await clients[l % clients.length]!.open(`${listDir}/e${String(i).padStart(6, '0')}`, createOnlyFlags, fileMode);
    return 1;
  });
  assert(fill.done === cfg.dirEntries, 'the readdir directory is full');
}

// ---- figures and targets ----

interface Series { [key: string]: number[] }

function push(series: Series, key: string, value: number): void {
  (series[key] ??= []).push(value);
}

const lmdbNote = 'plain lmdb, sync';

function baselineName(op: string, perTxn: number): string {
  return `lmdb ${op}, ${perTxn} op${perTxn === 1 ? '' : 's'}/txn (${lmdbNote})`;
}

function clientsLabel(loops: number): string {
  return `${loops} client${loops === 1 ? '' : 's'}`;
}

/** The lmdb operations each flyfs operation is compared with. */
const baselineOps = {
  create: 'put inode+dirent',
  createOnly: 'put inode+dirent',
  stat: 'get dirent+inode',
  rename: 'remove+put dirent',
  unlink: 'remove dirent+inode',
} as const;

const flyfsOpNames = {
  create: 'create (open w|creat|excl + close)',
  createOnly: 'create-only (open r|creat|excl, 1 RPC)',
  stat: 'stat',
  rename: 'rename',
  unlink: 'unlink',
} as const;

type PointOp = keyof typeof baselineOps;
const pointOps = Object.keys(baselineOps) as PointOp[];

function figures(series: Series, cfg: MetaBenchConfig): Figure[] {
  const get = (key: string): ReturnType<typeof measured> => {
    const runs = series[key];
    assert(runs !== undefined && runs.length > 0, `runs of ${key}`);
    return measured(runs);
  };
  const out: Figure[] = [];
  const baselineKey = (op: PointOp): string => (op === 'createOnly' ? 'create' : op);
  for (const op of pointOps) {
    for (const loops of [1, cfg.clients]) {
      const name = `flyfs ${flyfsOpNames[op]}, ${clientsLabel(loops)}`;
      out.push(figure(name, unitOps, get(`flyfs.${op}.${loops}`), baselineName(baselineOps[op], 1), get(`lmdb.${baselineKey(op)}.single`)));
      out.push(figure(name, unitOps, get(`flyfs.${op}.${loops}`), baselineName(baselineOps[op], cfg.batchOps), get(`lmdb.${baselineKey(op)}.batched`)));
    }
  }
  for (const loops of [1, cfg.clients]) {
    const label = `flyfs readdir ${cfg.dirEntries} entries, ${clientsLabel(loops)}`;
    out.push(figure(`${label} (readdirs)`, unitOps, get(`flyfs.readdirs.${loops}`), `lmdb range read ${cfg.dirEntries} dirents (${lmdbNote})`, get('lmdb.readdirs')));
    out.push(figure(`${label} (entries)`, unitEntries, get(`flyfs.readdirEntries.${loops}`), `lmdb range read ${cfg.dirEntries} dirents (${lmdbNote})`, get('lmdb.readdirEntries')));
  }
  return out;
}

export interface TargetVerdict {
  target: string;
  holds: boolean;
  detail: string;
}

/** Issue 3's targets: many-client creates ≥ 0.4× the batched durable lmdb put rate; stats ≥ 50,000/s. */
export const createRatioTarget = 0.4;
export const statTargetOpsPerSecond = 50_000;

export function metaTargets(figs: readonly Figure[], cfg: Pick<MetaBenchConfig, 'clients' | 'batchOps'> = metaBenchDefaults): TargetVerdict[] {
  const find = (name: string, baseline?: string): Figure => {
    const f = figs.find((x) => x.name === name && (baseline === undefined || x.baseline === baseline));
    assert(f !== undefined, `figure ${name} is measured`);
    return f;
  };
  const many = clientsLabel(cfg.clients);
  const create = find(`flyfs ${flyfsOpNames.create}, ${many}`, baselineName(baselineOps.create, cfg.batchOps));
  const stat = find(`flyfs ${flyfsOpNames.stat}, ${many}`);
  return [
    {
      target: `${many} creates >= ${createRatioTarget}x lmdb ${cfg.batchOps}-ops/txn durable put rate`,
      holds: create.ratio >= createRatioTarget,
      detail: `${create.value.toFixed(0)} vs ${create.baselineValue.toFixed(0)} ops/s = ${create.ratio.toFixed(3)}x`,
    },
    {
      target: `${many} stats >= ${statTargetOpsPerSecond} ops/s`,
      holds: stat.value >= statTargetOpsPerSecond,
      detail: `${stat.value.toFixed(0)} ops/s`,
    },
  ];
}

// ---- the benchmark ----

/** The meta benchmark with an explicit configuration (tests use a tiny one). */
export async function runMetaBench(ctx: BenchContext, cfg: MetaBenchConfig): Promise<Figure[]> {
  assert(cfg.clients > 1 && cfg.connections >= 1 && cfg.batchOps >= 1, 'meta bench config is sane');
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'flyfs-bench-meta-'));
  const stops: Array<() => Promise<void>> = [];
  const cleanUp = async (): Promise<void> => {
    for (let stop = stops.pop(); stop !== undefined; stop = stops.pop()) await stop().catch((e: unknown) => ctx.log(`meta: cleanup failed: ${String(e)}`));
    await rm(tmp, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    void cleanUp().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    ctx.log(`meta: ${ctx.runs} runs, ${cfg.clients} clients over ${cfg.connections} connections, temp folder ${tmp}`);
    const cluster = await startLocalCluster({
      dataDir: path.join(tmp, 'cluster'), logDir: path.join(tmp, 'logs'), host: '127.0.0.1',
      metaservers: 3, storageServers: 1, targetsPerServer: 1,
      ...(cfg.nodeArgs === undefined ? {} : { nodeArgs: cfg.nodeArgs }),
    });
    stops.push(() => cluster.stop());
    ctx.log(`meta: cluster up at ${cluster.clusterAddress} (${cluster.nodes.map((n) => n.role).join(', ')})`);
    const addresses = cluster.clusterAddress.split(',');
    const clients = Array.from({ length: cfg.connections }, () => new MetadataClient(addresses, randomUUID()));
    stops.push(async () => { for (const c of clients) c.shutdown(); });
    // The first call waits out the chain's election.
    await clients[0]!.routingInfo();

    const listDir = '/bench-meta-list';
    await fillListDir(clients, cfg.clients, listDir, cfg);
    ctx.log(`meta: ${listDir} holds ${cfg.dirEntries} entries`);

    const series: Series = {};
    // Runs interleave baselines and flyfs so that both see the same noise on a shared machine.
    for (let r = 0; r < ctx.runs; r++) {
      const b = await baselineRun(path.join(tmp, `lmdb-${r}`), cfg);
      for (const op of ['create', 'stat', 'rename', 'unlink'] as const) {
        push(series, `lmdb.${op}.single`, b[op].single);
        push(series, `lmdb.${op}.batched`, b[op].batched);
      }
      push(series, 'lmdb.readdirs', b.readdir.readdirs);
      push(series, 'lmdb.readdirEntries', b.readdir.entries);
      ctx.log(`meta: run ${r + 1} lmdb ops/s: ${JSON.stringify(b, (_, v: unknown) => (typeof v === 'number' ? Math.round(v) : v))}`);
      for (const loops of [1, cfg.clients]) {
        const f = await flyfsRun(loops === 1 ? clients.slice(0, 1) : clients, loops, `/bench-meta-${r}-${loops}`, listDir, cfg);
        for (const [k, v] of Object.entries(f)) push(series, `flyfs.${k}.${loops}`, v);
        ctx.log(`meta: run ${r + 1} flyfs ${clientsLabel(loops)} ops/s: ${JSON.stringify(f, (_, v: unknown) => (typeof v === 'number' ? Math.round(v) : v))}`);
      }
    }
    const out = figures(series, cfg);
    for (const t of metaTargets(out, cfg)) ctx.log(`meta: target ${t.holds ? 'HOLDS' : 'MISSES'}: ${t.target} (${t.detail})`);
    return out;
  } finally {
    await cleanUp();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The meta benchmark (registered in bench/index.ts); ctx.sizeBytes is unused. */
export async function runMeta(ctx: BenchContext): Promise<Figure[]> {
  return runMetaBench(ctx, metaBenchDefaults);
}
