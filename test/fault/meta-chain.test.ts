// The metadata chain under real faults (issue 3): three metaservers and one storage server as
// processes, short chain timers. Sixteen workers create, rename, unlink and stat in their own
// directories while the head, then the middle, then the tail is killed with SIGKILL and
// restarted; the service must answer a fresh client within 5 s of each kill, each restarted
// metaserver must rejoin the chain under the load, and afterwards every directory (through the
// SDK and at each replica) must show each acknowledged operation applied once and each unknown
// one (some workers give up early) applied whole or not at all. Then a head stopped (SIGSTOP)
// past its lease and woken must refuse every mutation sent to it, and none may appear.
// Seeded: FLYFS_SEED=<n> replays a run's choices (the timing of faults still varies).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type FileSystem } from '../../client/index.js';
import { callUnary, channelOptions, grpc, loadProtos } from '../../common/grpc.js';
import { limits } from '../../common/limits.js';
import type { MetadataClient as RawMetadata } from '../../proto/gen/flyfs/v1/Metadata.js';
import type { LocalCluster, LocalNode } from '../../tools/local-cluster.js';
import { startFaultCluster } from '../helpers/cluster.js';
import { chainView, metaservers, probeServing, sleep, waitFor, waitFullChain } from './helpers/chain.js';
import { DirectoryWorker, rng } from './helpers/namespace-model.js';

const seed = Number(process.env['FLYFS_SEED'] ?? Date.now() % 1_000_000);
const chainArgs = ['--chain-heartbeat-ms', '50', '--chain-suspect-ms', '300', '--chain-lease-ms', '500'];
const chainLeaseMs = 500;

const workersCount = 16;
const opsMaxPerWorker = 2_000;
/** The load stops when the faults are done, or at this bound. */
const loadTimeBoundMs = 40_000;
/**
 * Between two operations of one worker (60 to 80 operations a second in all on 2 cores). A
 * restarted metaserver must catch up with the chain while this load goes on.
 */
const opPauseMs = Number(process.env["FLYFS_FAULT_PAUSE_MS"] ?? 50);
/** One operation's deadline, retries included: long enough to ride out a failover. */
const opDeadlineMs = 8_000;
/** These workers give up sooner, so some operations end with an unknown outcome. */
const impatientWorkers = 4;
const impatientDeadlineMs = 400;
const answerAfterKillMsMax = 5_000;
const chainFullTimeoutMs = 20_000;

const stopMs = 3 * chainLeaseMs;
const queuedCount = 8;
const burstCount = 16;
const trickleMs = 1_000;
const trickleEveryMs = 20;

function closeRaw(c: grpc.Client): void {
  // The generated Metadata client has a Close RPC that shadows grpc.Client#close.
  grpc.Client.prototype.close.call(c);
}

function rawClient(address: string): RawMetadata {
  return new (loadProtos().flyfs.v1.Metadata)(address, grpc.credentials.createInsecure(), channelOptions);
}

/** The names and inodes of a directory as one metaserver serves them, or undefined while it cannot serve reads. */
async function rawListing(c: RawMetadata, path: string): Promise<Map<string, number> | undefined> {
  const out = new Map<string, number>();
  let cursor = '';
  try {
    for (;;) {
      const page = await callUnary(c, c.Readdir, { path, cursor, limit: limits.readdirPageMax }, 1_000);
      for (const e of page.entries) out.set(e.name, e.inodeId);
      if (!page.nextCursor) return out;
      cursor = page.nextCursor;
    }
  } catch {
    return undefined;
  }
}

/** The directory as the SDK sees it: each name with the inode stat gives it. */
async function sdkListing(fs: FileSystem, dir: string): Promise<Map<string, number>> {
  const names = await fs.readdir(dir);
  const stats = await Promise.all(names.map((n) => fs.stat(`${dir}/${n}`)));
  return new Map(names.map((n, i) => [n, stats[i]!.ino]));
}

function sameListing(a: Map<string, number>, b: Map<string, number>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
}

/** Every metaserver, once it serves reads, lists `dir` exactly as `expected`. */
async function expectReplicasAgree(cluster: LocalCluster, dir: string, expected: Map<string, number>): Promise<void> {
  for (const node of metaservers(cluster)) {
    const c = rawClient(node.grpcAddress);
    try {
      const listing = await waitFor(`${node.name} serving reads of ${dir}`, 5_000, () => rawListing(c, dir));
      expect(sameListing(listing, expected), `${node.name} lists ${dir} as [${[...listing].join(' ')}], SDK saw [${[...expected].join(' ')}]`).toBe(true);
    } finally {
      closeRaw(c);
    }
  }
}

interface KillFigure { role: string; victim: string; answerMs: number; probeAttempts: number; restartToFullMs: number; epochBefore: number; epochAfter: number; opsInFlight: number; opsDuring: number }

describe('metadata chain under kill -9 and SIGSTOP (real processes)', () => {
  let cluster: LocalCluster;
  let cleanup: (() => Promise<void>) | undefined;
  let addresses: string[];
  let admin: FileSystem;
  const clients: FileSystem[] = [];
  /** The pid under SIGSTOP, so afterAll can wake it before stopping the cluster. */
  let stoppedPid: number | undefined;
  const expectedExits = new Set<string>();
  const unexpectedExits: string[] = [];

  beforeAll(async () => {
    console.log(`meta-chain fault test: seed ${seed} (FLYFS_SEED=${seed} replays the choices)`);
    const c = await startFaultCluster('meta-chain-fault', {
      metaservers: 3, storageServers: 1, targetsPerServer: 1,
      extraArgs: { metaserver: chainArgs },
    }, { expected: expectedExits, unexpected: unexpectedExits });
    cluster = c.cluster;
    cleanup = c.cleanup;
    addresses = metaservers(cluster).map((n) => n.grpcAddress);
    await waitFullChain(cluster, chainFullTimeoutMs);
    admin = await connect(addresses, { deadlineMs: opDeadlineMs });
    for (const d of ['/probe', '/sigstop', ...Array.from({ length: workersCount }, (_, k) => `/w${k}`)]) await admin.mkdir(d);
  }, 60_000);

  afterAll(async () => {
    if (stoppedPid !== undefined) { try { process.kill(stoppedPid, 'SIGCONT'); } catch { /* gone */ } }
    for (const c of clients) await c.close();
    await admin?.close();
    await cleanup?.();
  }, 30_000);

  it('kills the head, the middle and the tail under load: answers within 5 s, each operation applied exactly once', async () => {
    const workers: DirectoryWorker[] = [];
    for (let k = 0; k < workersCount; k++) {
      const fs = await connect(addresses, { deadlineMs: k < impatientWorkers ? impatientDeadlineMs : opDeadlineMs });
      clients.push(fs);
      workers.push(new DirectoryWorker(fs, `/w${k}`, rng(seed * 31 + k)));
    }
    let stopLoad = false;
    let inFlight = 0;
    let opsDone = 0;
    const loadStart = Date.now();
    const runs = workers.map(async (w) => {
      for (let i = 0; i < opsMaxPerWorker && !stopLoad && Date.now() - loadStart < loadTimeBoundMs; i++) {
        inFlight++;
        try { await w.step(); } finally { inFlight--; opsDone++; }
        await sleep(opPauseMs);
      }
    });
    // A worker that throws (a model bug, not a product failure) must stop the test loudly.
    const loadDone = Promise.all(runs);
    loadDone.catch(() => { stopLoad = true; });

    const figures: KillFigure[] = [];
    try {
      await sleep(500);
      for (const role of ['head', 'middle', 'tail'] as const) {
        const before = await waitFullChain(cluster, chainFullTimeoutMs);
        const victim: LocalNode = before.byRole[role];
        const opsInFlight = inFlight;
        const opsBefore = opsDone;
        expectedExits.add(victim.name);
        const killedAt = Date.now();
        cluster.kill(victim.name, 'SIGKILL');
        const probe = await probeServing({ addresses, dir: '/probe', tag: `after-${role}`, sinceMs: killedAt, timeoutMs: answerAfterKillMsMax });
        await waitFor(`${victim.name} exited`, 5_000, async () => metaservers(cluster).find((n) => n.name === victim.name)?.state === 'exited' || undefined);
        const restartAt = Date.now();
        await cluster.restartNode(victim.name);
        const after = await waitFullChain(cluster, chainFullTimeoutMs);
        const f: KillFigure = {
          role, victim: victim.name, answerMs: probe.elapsedMs, probeAttempts: probe.attempts,
          restartToFullMs: Date.now() - restartAt, epochBefore: before.epoch, epochAfter: after.epoch, opsInFlight,
          opsDuring: opsDone - opsBefore,
        };
        figures.push(f);
        console.log(`kill -9 ${role} (${victim.name}): a fresh client answered after ${f.answerMs} ms (${f.probeAttempts} probes); `
          + `restarted, chain of 3 again after ${f.restartToFullMs} ms; epoch ${f.epochBefore} -> ${f.epochAfter}; ${opsInFlight} ops in flight at the kill, ${f.opsDuring} done until the chain was whole`);
        expect(f.answerMs).toBeLessThanOrEqual(answerAfterKillMsMax);
        expect(f.epochAfter).toBeGreaterThan(f.epochBefore);
        await sleep(300);
      }
    } finally {
      stopLoad = true;
      await loadDone;
    }
    const loadMs = Date.now() - loadStart;

    const totals = { ops: 0, acked: 0, unknown: 0, refused: 0, closeFailed: 0 };
    const codes = new Map<string, number>();
    const fates = { 'present': 0, 'gone': 0, 'unknown-create': 0, 'unknown-rename': 0, 'unknown-unlink': 0 };
    const violations: string[] = [];
    for (const w of workers) {
      // The SDK's view (readdir + stat), and every replica's, must agree with the model.
      const listing = await sdkListing(admin, w.dir);
      w.check(listing);
      await expectReplicasAgree(cluster, w.dir, listing);
      const r = w.report;
      totals.ops += r.ops;
      totals.closeFailed += r.closeFailed;
      for (const t of Object.values(r.tally)) { totals.acked += t.acked; totals.unknown += t.unknown; totals.refused += t.refused; }
      for (const [c, n] of r.codes) codes.set(c, (codes.get(c) ?? 0) + n);
      for (const [k, n] of Object.entries(w.fates())) fates[k as keyof typeof fates] += n;
      violations.push(...r.violations);
    }
    const byKind = (k: 'create' | 'rename' | 'unlink' | 'stat'): string => {
      const t = workers.reduce((a, w) => ({ acked: a.acked + w.report.tally[k].acked, unknown: a.unknown + w.report.tally[k].unknown, refused: a.refused + w.report.tally[k].refused }), { acked: 0, unknown: 0, refused: 0 });
      return `${k} ${t.acked}/${t.unknown}/${t.refused}`;
    };
    console.log(`load: ${workersCount} workers, ${totals.ops} ops in ${loadMs} ms (${Math.round(totals.ops / (loadMs / 1000))} ops/s); `
      + `acknowledged ${totals.acked}, unknown outcome ${totals.unknown}, refused ${totals.refused}, close failed ${totals.closeFailed}`);
    console.log(`  acked/unknown/refused: ${['create', 'rename', 'unlink', 'stat'].map((k) => byKind(k as 'create')).join(', ')}`);
    console.log(`  failure codes: ${codes.size === 0 ? 'none' : [...codes].map(([c, n]) => `${c} x${n}`).join(', ')}`);
    console.log(`  final fates: ${Object.entries(fates).map(([k, n]) => `${k} ${n}`).join(', ')}`);
    if (violations.length > 0) console.log(`  violations:\n    ${violations.slice(0, 40).join('\n    ')}`);

    expect(violations).toEqual([]);
    expect(unexpectedExits).toEqual([]);
    expect(figures.length).toBe(3);
    // The load really ran across the faults: operations went on from each kill to the whole chain.
    for (const f of figures) expect(f.opsDuring, `ops done while the ${f.role} was down and rejoining`).toBeGreaterThan(0);
    expect(totals.acked).toBeGreaterThan(workersCount * 10);
  }, 75_000);

  it('a head stopped past its lease and woken refuses every mutation sent to it, and none applies', async () => {
    const before = await waitFullChain(cluster, chainFullTimeoutMs);
    const old = before.byRole.head;
    const raw = rawClient(old.grpcAddress);
    // A client whose last write went to this head: its next one, issued while the head is
    // stopped, waits on it, is refused when it wakes and must then apply once at the new head.
    const sdk = await connect(addresses, { deadlineMs: opDeadlineMs });
    clients.push(sdk);
    let requestId = 0;
    const outcomes: Array<Promise<{ name: string; phase: string; code: string; sentMs: number; answeredMs: number }>> = [];
    let contAt = 0;
    const send = (name: string, phase: string): void => {
      const sentMs = Date.now() - contAt;
      const ctx = { clientId: 'sigstop-raw', requestId: ++requestId };
      const path = `/sigstop/${name}`;
      // Alternate the two creating mutations: Mkdir, and Open with create + exclusive.
      const call = requestId % 2 === 0
        ? callUnary(raw, raw.Mkdir, { ctx, path, mode: 0o755, recursive: false, layoutPolicy: { chunkSize: 0, stripe: 0, chainTableId: 0 } }, 3_000)
        : callUnary(raw, raw.Open, { ctx, path, flags: 2 | 4 | 8, mode: 0o644 }, 3_000);
      outcomes.push(call.then(
        () => ({ name, phase, code: 'APPLIED', sentMs, answeredMs: Date.now() - contAt }),
        (e: { code?: string }) => ({ name, phase, code: String(e.code), sentMs, answeredMs: Date.now() - contAt }),
      ));
    };
    let sdkCreate: Promise<number> | undefined;
    try {
      // Connect the raw channel and point the SDK at this head before it stops.
      await callUnary(raw, raw.Stat, { path: '/', noFollow: false }, 2_000).catch(() => undefined);
      const warm = await sdk.open('/sigstop-warm', 'wx');
      await warm.close();

      const stoppedAt = Date.now();
      stoppedPid = old.pid;
      process.kill(old.pid, 'SIGSTOP');
      const others = metaservers(cluster).filter((n) => n.name !== old.name);
      const newHead = await waitFor('another metaserver heading a new epoch', 10_000, async () => {
        for (const n of others) {
          const v = await chainView(n);
          if (v?.role === 'head' && v.epoch > before.epoch) return { node: n, epoch: v.epoch };
        }
        return undefined;
      });
      const newHeadMs = Date.now() - stoppedAt;
      const sdkStart = Date.now();
      sdkCreate = sdk.open('/sigstop-sdk', 'wx').then(async (h) => { await h.close(); return Date.now() - sdkStart; });
      await sleep(Math.max(0, stopMs - (Date.now() - stoppedAt)));
      // Sent while it sleeps: they wait in its socket and are the first thing it reads on waking.
      for (let i = 0; i < queuedCount; i++) send(`queued-${i}`, 'queued');
      await sleep(50);
      contAt = Date.now();
      process.kill(old.pid, 'SIGCONT');
      stoppedPid = undefined;
      const stoppedForMs = contAt - stoppedAt;
      for (let i = 0; i < burstCount; i++) send(`burst-${i}`, 'burst');
      for (let i = 0; Date.now() - contAt < trickleMs; i++) {
        await sleep(trickleEveryMs);
        send(`trickle-${i}`, 'trickle');
      }
      const results = await Promise.all(outcomes);
      const sdkMs = await sdkCreate;
      const codeCount = new Map<string, number>();
      for (const r of results) codeCount.set(`${r.phase}:${r.code}`, (codeCount.get(`${r.phase}:${r.code}`) ?? 0) + 1);
      const firstBurstAnswerMs = Math.min(...results.filter((r) => r.phase !== 'trickle').map((r) => r.answeredMs));
      console.log(`SIGSTOP head (${old.name}, epoch ${before.epoch}) for ${stoppedForMs} ms: ${newHead.node.name} heads epoch ${newHead.epoch} after ${newHeadMs} ms`);
      console.log(`  after SIGCONT: ${results.length} mutations (${queuedCount} queued while stopped, ${burstCount} at once, the rest over ${trickleMs} ms); `
        + `first answer at ${firstBurstAnswerMs} ms; ${[...codeCount].map(([c, n]) => `${c} x${n}`).join(', ')}`);
      console.log(`  an SDK create issued to the stopped head completed after ${sdkMs} ms`);

      for (const r of results) {
        expect(r.code, `${r.name} (${r.phase}, sent at +${r.sentMs} ms)`).not.toBe('APPLIED');
        expect(['FLYFS_ERR_NOT_HEAD', 'FLYFS_ERR_UNAVAILABLE'], `${r.name} (${r.phase})`).toContain(r.code);
      }
      expect(results.filter((r) => r.phase === 'burst' && r.sentMs <= 100).length).toBe(burstCount);

      // Nothing of it in the namespace, as a fresh client sees it ...
      const check = await connect(addresses, { deadlineMs: opDeadlineMs });
      clients.push(check);
      expect(await check.readdir('/sigstop')).toEqual([]);
      await expect(check.stat(`/sigstop/${results[0]!.name}`)).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await check.stat('/sigstop-sdk')).isFile()).toBe(true);
      // ... nor at any replica once the old head is back in the chain.
      const rejoinAt = Date.now();
      const full = await waitFullChain(cluster, chainFullTimeoutMs);
      console.log(`  the old head rejoined: chain of 3 again after ${Date.now() - rejoinAt} ms, epoch ${full.epoch}, head ${full.byRole.head.name}`);
      await expectReplicasAgree(cluster, '/sigstop', new Map());
      expect(unexpectedExits).toEqual([]);
    } finally {
      if (stoppedPid !== undefined) { process.kill(stoppedPid, 'SIGCONT'); stoppedPid = undefined; }
      await sdkCreate?.catch(() => undefined);
      closeRaw(raw);
    }
  }, 40_000);
});
