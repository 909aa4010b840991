// The KV cache under crashes (issue 6): 8 clients put and look up overlapping prefixes (a shared
// system prompt, shared documents, private suffixes) while the kvcache service and then a storage
// server are killed with SIGKILL and restarted. Every page's bytes are derived from its key, so
// any reader can check what it got. During the load no lookup may return a page whose bytes
// differ from what was committed; afterwards every page any client saw committed (nothing is
// evicted: the capacity is ample) must still be found, with its bytes.
// FLYFS_SEED=<n> replays the load's choices; FLYFS_FAULT_LOGS=<dir> keeps the children's logs.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SeededRandom } from '../../client/dataset/index.js';
import { createKvNamespace, KvClient } from '../../kvcache/client.js';
import { pageBytes, type KvLayout } from '../../kvcache/layout.js';
import type { LocalCluster } from '../../tools/local-cluster.js';
import { seededBytes, startFaultCluster } from '../helpers/cluster.js';

const seed = Number(process.env['FLYFS_SEED'] ?? Date.now() % 1_000_000);
const layout: KvLayout = { layers: 2, pageTokens: 64, latentBytesPerToken: 656, indexerBytesPerToken: 132 };
const pb = pageBytes(layout);
const clientsCount = 8;
const loadMs = 14_000;
const opsMaxPerClient = 400;

const contentOf = (key: Buffer): Buffer => seededBytes(key.readUInt32LE(0) ^ key.readUInt32LE(28), pb);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('kv cache under kill -9 of the service and of a storage server', () => {
  let cluster: LocalCluster;
  let cleanup: (() => Promise<void>) | undefined;
  let kvAddress = '';
  let token = '';
  const expectedExits = new Set<string>();
  const unexpectedExits: string[] = [];
  const clients: KvClient[] = [];

  beforeAll(async () => {
    const c = await startFaultCluster('kv-crash', {
      metaservers: 1, storageServers: 3, targetsPerServer: 1, replicas: 3, kvcache: 1,
      extraArgs: {
        metaserver: ['--lease-ms', '1000'], storageserver: ['--craq-tick-ms', '100'],
        kvcache: ['--lease-ms', '2000', '--reserve-ms', '3000', '--tick-ms', '100', '--file-bytes', String(64 * pb)],
      },
    }, { expected: expectedExits, unexpected: unexpectedExits });
    cluster = c.cluster;
    cleanup = c.cleanup;
    kvAddress = cluster.nodes.find((n) => n.role === 'kvcache')!.grpcAddress;
    const admin = (await readFile(join(cluster.dataDir, 'kvcache-0', 'admin.token'), 'utf8')).trim();
    token = (await createKvNamespace(kvAddress, admin, { name: 'crash', tenant: 't', model: 'm', kvFormat: 'flashmla-fp8', layout, quotaBytes: 0, ttlMs: 0 })).token;
    for (let i = 0; i < clientsCount; i++) clients.push(await KvClient.connect({ kvAddress, cluster: cluster.clusterAddress, namespace: 'crash', token, deadlineMs: 20_000 }));
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) await c.close();
    await cleanup?.();
  }, 60_000);

  it('no lookup returns bytes other than those committed; no committed page is lost', async () => {
    console.log(`kvcache-crash: seed ${seed} (FLYFS_SEED=${seed} replays the load's choices)`);
    const r0 = new SeededRandom(seed);
    const system = Array.from({ length: 3 * 64 }, () => r0.below(50_000));
    const docs = Array.from({ length: 6 }, () => Array.from({ length: 4 * 64 }, () => r0.below(50_000)));
    const committed = new Map<string, Buffer>();
    const stats = { puts: 0, putErrors: 0, lookups: 0, lookupErrors: 0, pagesRead: 0, mismatches: 0 };
    const mismatches: string[] = [];
    const errors = new Map<string, number>();
    const noteError = (err: unknown): void => { const k = (err as { code?: string }).code ?? String(err); errors.set(k, (errors.get(k) ?? 0) + 1); };
    let stop = false;
    const started = Date.now();
    const runClient = async (c: KvClient, i: number): Promise<void> => {
      const r = new SeededRandom(seed * 31 + i);
      for (let op = 0; op < opsMaxPerClient && !stop && Date.now() - started < loadMs + 10_000; op++) {
        const doc = docs[r.below(docs.length)]!;
        const suffix = Array.from({ length: (1 + r.below(2)) * 64 }, () => r.below(50_000));
        const tokens = [...system, ...doc.slice(0, (1 + r.below(4)) * 64), ...(r.below(2) === 0 ? suffix : [])];
        if (r.below(3) > 0) {
          stats.puts++;
          const keys = c.keysOf(tokens);
          try {
            const res = await c.putPages(tokens, keys.map(contentOf));
            res.statuses.forEach((s, k) => { if (s === 'stored' || s === 'existed') committed.set(keys[k]!.toString('hex'), keys[k]!); });
          } catch (err) { stats.putErrors++; noteError(err); }
        } else {
          stats.lookups++;
          try {
            const { keys, loadable } = await c.lookupPrefix(tokens);
            const pages = await c.getPages(keys.slice(0, loadable));
            pages.forEach((p, k) => {
              if (p === null) return;
              stats.pagesRead++;
              if (!p.equals(contentOf(keys[k]!))) { stats.mismatches++; mismatches.push(keys[k]!.toString('hex')); }
            });
          } catch (err) { stats.lookupErrors++; noteError(err); }
        }
      }
    };
    const load = Promise.all(clients.map(runClient));
    try {
      await sleep(2_000);
      for (const victim of ['kvcache-0', 'storage-1']) {
        expectedExits.add(victim);
        cluster.kill(victim, 'SIGKILL');
        await sleep(victim === 'kvcache-0' ? 800 : 2_500);
        await cluster.restartNode(victim);
        await sleep(2_500);
      }
      await sleep(Math.max(0, loadMs - (Date.now() - started)));
    } finally {
      stop = true;
    }
    await load;
    console.log(`kvcache-crash: ${JSON.stringify(stats)}, ${committed.size} pages seen committed; errors ${JSON.stringify(Object.fromEntries(errors))}`);
    expect(unexpectedExits).toEqual([]);
    expect(mismatches).toEqual([]);
    expect(stats.pagesRead).toBeGreaterThan(100);
    expect(committed.size).toBeGreaterThan(20);
    // Afterwards: every page seen committed is found, with its bytes; nothing was evicted.
    const check = clients[0]!;
    const keys = [...committed.values()];
    const found = await check.getPages(keys);
    const lost = keys.filter((_, k) => found[k] === null).map((k) => k.toString('hex'));
    const wrong = keys.filter((k, j) => found[j] !== null && !found[j]!.equals(contentOf(k))).map((k) => k.toString('hex'));
    expect(lost).toEqual([]);
    expect(wrong).toEqual([]);
    const st = await check.stats() as { counters: { evicted: number } };
    expect(st.counters.evicted).toBe(0);
  }, 120_000);
});
