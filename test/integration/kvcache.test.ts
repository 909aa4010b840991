// The KV cache against a real cluster with its kvcache service: keys and puts, prefix lookups,
// whole-page and per-layer gets, the sparse gather, the reference sparse-attention consumer
// (bit for bit against a dense copy), namespace isolation, eviction (watermarks, LRU, quotas,
// pins and leases), a service restart, the HTTP face and the CLI; bad input.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKvNamespace, KvClient } from '../../kvcache/client.js';
import { entryOffset, pageBytes, type KvLayout } from '../../kvcache/layout.js';
import { denseSparseAttention, sparseAttention, type SparseQuery } from '../../kvcache/sparse-attention.js';
import { SeededRandom } from '../../client/dataset/index.js';
import type { LocalCluster } from '../../tools/local-cluster.js';
import { seededBytes, startTestCluster } from '../helpers/cluster.js';

const layout: KvLayout = { layers: 2, pageTokens: 64, latentBytesPerToken: 656, indexerBytesPerToken: 132 };
const pb = pageBytes(layout);
const leaseMs = 3_000;
/** Room for every context of the consumer test at once (416 pages) and more. */
const capacityPages = 600;

function tokensFor(seed: number, pages: number, prefix: number[] = []): number[] {
  const r = new SeededRandom(seed);
  const out = [...prefix];
  while (out.length < pages * 64) out.push(r.below(100_000));
  return out;
}

/** Plausible FP8 page bytes: random e4m3 codes (no NaNs) with finite positive scales and BF16 rope values. */
function pageData(seed: number): Buffer {
  const b = seededBytes(seed, pb);
  for (let i = 0; i < b.length; i++) if ((b[i]! & 0x7f) === 0x7f) b[i] = b[i]! & 0xf0;
  for (let layer = 0; layer < layout.layers; layer++) {
    for (let slot = 0; slot < 64; slot++) {
      const lat = entryOffset(layout, 'latent', layer, slot);
      for (let t = 0; t < 4; t++) b.writeFloatLE(0.01 + ((seed + slot + t) % 13) / 50, lat + 512 + 4 * t);
      for (let i = 0; i < 64; i++) b.writeUInt16LE(0x3c00 + ((seed * 31 + slot * 7 + i) % 512), lat + 528 + 2 * i);
      b.writeFloatLE(0.02 + ((seed + slot) % 7) / 40, entryOffset(layout, 'indexer', layer, slot) + 128);
    }
  }
  return b;
}

function query(seed: number, topK: number): SparseQuery {
  const r = new SeededRandom(seed);
  const f = (n: number): Float32Array => Float32Array.from({ length: n }, () => (r.below(2001) - 1000) / 1000);
  return { indexerQ: [f(128), f(128), f(128), f(128)], indexerW: f(4).map(Math.abs), q: f(576), topK, softmaxScale: 1 / Math.sqrt(576) };
}

describe('kv cache', () => {
  let cluster: LocalCluster;
  let cleanup: () => Promise<void>;
  let kvAddress: string;
  let adminToken: string;
  const clients: KvClient[] = [];
  const open = async (namespace: string, token: string): Promise<KvClient> => {
    const c = await KvClient.connect({ kvAddress, cluster: cluster.clusterAddress, namespace, token });
    clients.push(c);
    return c;
  };
  const kvNode = () => cluster.nodes.find((n) => n.role === 'kvcache')!;
  const ns = (name: string, extra: { quotaBytes?: number; ttlMs?: number } = {}) => createKvNamespace(kvAddress, adminToken, {
    name, tenant: 't', model: 'deepseek-v3.2-tiny', kvFormat: 'flashmla-fp8', layout, quotaBytes: extra.quotaBytes ?? 0, ttlMs: extra.ttlMs ?? 0,
  });

  beforeAll(async () => {
    const c = await startTestCluster('kvcache', {
      metaservers: 1, storageServers: 3, targetsPerServer: 1, kvcache: 1,
      extraArgs: { kvcache: ['--capacity-bytes', String(capacityPages * pb), '--lease-ms', String(leaseMs), '--tick-ms', '50', '--file-bytes', String(32 * pb)] },
    });
    cluster = c.cluster;
    cleanup = c.cleanup;
    kvAddress = kvNode().grpcAddress;
    adminToken = (await readFile(join(cluster.dataDir, 'kvcache-0', 'admin.token'), 'utf8')).trim();
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) await c.close();
    await cleanup?.();
  });

  it('puts pages, finds the cached prefix, gets whole pages and layers, gathers tokens', async () => {
    const { token } = await ns('main');
    const kv = await open('main', token);
    const tokens = tokensFor(1, 10);
    const pages = Array.from({ length: 10 }, (_, i) => pageData(100 + i));
    const put = await kv.putPages(tokens, pages.slice(0, 8));
    expect(put).toMatchObject({ stored: 8, existed: 0, busy: 0, noSpace: 0 });
    expect((await kv.lookupPrefix(tokens)).loadable).toBe(8);
    // A second put of the same prefix stores only the new pages.
    expect(await kv.putPages(tokens, pages)).toMatchObject({ stored: 2, existed: 8 });
    expect((await kv.lookupPrefix(tokens)).loadable).toBe(10);
    // A prompt that diverges inside page 6 shares 6 pages.
    const fork = [...tokens.slice(0, 6 * 64 + 10), ...tokensFor(2, 4).slice(0, 54 + 3 * 64)];
    expect((await kv.lookupPrefix(fork)).loadable).toBe(6);
    expect((await kv.lookupPrefix(tokens.slice(0, 5 * 64 + 63))).loadable).toBe(5);

    const keys = kv.keysOf(tokens);
    const whole = await kv.getPages(keys);
    whole.forEach((p, i) => expect(p!.equals(pages[i]!)).toBe(true));
    const layer1 = await kv.getPages(keys.slice(3, 5), { pool: 'indexer', layers: [1] });
    const il = 64 * 132;
    layer1.forEach((p, k) => expect(p!.equals(pages[3 + k]!.subarray(entryOffset(layout, 'indexer', 1, 0), entryOffset(layout, 'indexer', 1, 0) + il))).toBe(true));
    const two = await kv.getPages([keys[1]!], { pool: 'latent', layers: [0, 1] });
    expect(two[0]!.equals(pages[1]!.subarray(0, entryOffset(layout, 'indexer', 0, 0)))).toBe(true);
    expect((await kv.getPages([Buffer.alloc(32, 9)]))[0]).toBeNull();

    const r = new SeededRandom(5);
    for (const pool of ['latent', 'indexer'] as const) {
      const bpt = pool === 'latent' ? 656 : 132;
      const idx = Int32Array.from({ length: 300 }, (_, j) => (j % 17 === 0 ? -1 : j < 40 ? 100 + j : r.below(640)));
      const got = await kv.gatherTokens(keys, 1, idx, pool);
      expect(got.length).toBe(idx.length * bpt);
      idx.forEach((t, j) => {
        const want = t === -1 ? Buffer.alloc(bpt) : pages[Math.floor(t / 64)]!.subarray(entryOffset(layout, pool, 1, t % 64), entryOffset(layout, pool, 1, t % 64) + bpt);
        expect(got.subarray(j * bpt, (j + 1) * bpt).equals(want), `${pool} token ${t}`).toBe(true);
      });
    }
  });

  it('the reference sparse-attention consumer matches a dense copy bit for bit (1-200 pages, top-k up to 2048)', async () => {
    const { token } = await ns('attn');
    const kv = await open('attn', token);
    const cases: Array<[number, number]> = [[1, 1], [1, 64], [3, 100], [17, 700], [64, 2048], [130, 2048], [200, 2048]];
    for (const [pages, topK] of cases) {
      const tokens = tokensFor(1000 + pages, pages);
      const data = Array.from({ length: pages }, (_, i) => pageData(pages * 1000 + i));
      const put = await kv.putPages(tokens, data);
      expect(put.stored + put.existed).toBe(pages);
      const keys = kv.keysOf(tokens);
      for (const layer of [0, layout.layers - 1]) {
        const q = query(pages * 7 + layer, topK);
        const fromStore = await sparseAttention(kv, keys, layer, q);
        const dense = denseSparseAttention(layout, data, layer, q);
        expect(fromStore.indices.length).toBe(Math.min(topK, pages * 64));
        expect([...fromStore.indices]).toEqual([...dense.indices]);
        expect(Buffer.from(fromStore.output.buffer).equals(Buffer.from(dense.output.buffer)), `${pages} pages, top-${topK}, layer ${layer}`).toBe(true);
        expect(fromStore.output.every(Number.isFinite)).toBe(true);
      }
      await kv.remove(keys);
    }
  }, 120_000);

  it('namespaces are isolated: wrong tokens, foreign keys and removals are refused or find nothing', async () => {
    const a = await ns('iso-a');
    const b = await ns('iso-b');
    const ka = await open('iso-a', a.token);
    const kb = await open('iso-b', b.token);
    const tokens = tokensFor(77, 3);
    await ka.putPages(tokens, [pageData(1), pageData(2), pageData(3)]);
    const keys = ka.keysOf(tokens);
    expect((await kb.lookup(keys)).loadable).toBe(0);
    expect((await kb.getPages(keys)).every((p) => p === null)).toBe(true);
    await expect(kb.gatherTokens(keys, 0, Int32Array.from([0, 1]))).rejects.toMatchObject({ code: 'FLYFS_ERR_NOT_FOUND' });
    expect(await kb.remove(keys)).toBe(0);
    expect((await ka.lookup(keys)).loadable).toBe(3);
    await expect(open('iso-a', b.token)).rejects.toMatchObject({ code: 'FLYFS_ERR_NOT_PERMITTED' });
    await expect(open('iso-missing', b.token)).rejects.toMatchObject({ code: 'FLYFS_ERR_NOT_PERMITTED' });
    await expect(ns('iso-a')).rejects.toMatchObject({ code: 'FLYFS_ERR_EXISTS' });
    await expect(createKvNamespace(kvAddress, 'not-the-admin-token', { name: 'x', tenant: '', model: '', kvFormat: '', layout, quotaBytes: 0, ttlMs: 0 })).rejects.toMatchObject({ code: 'FLYFS_ERR_NOT_PERMITTED' });
    expect(a.directory).not.toBe(b.directory);
  });

  it('refuses bad input with clear errors and keeps serving', async () => {
    const { token } = await ns('bad');
    const kv = await open('bad', token);
    const tokens = tokensFor(9, 2);
    await expect(kv.putPages(tokens, [Buffer.alloc(pb - 1)])).rejects.toThrow(/bytes; this namespace's pages are/);
    await expect(kv.putPages(tokens, [pageData(1), pageData(2), pageData(3)])).rejects.toThrow(/whole pages/);
    await expect(kv.lookup([Buffer.alloc(31)])).rejects.toMatchObject({ code: 'FLYFS_ERR_INVALID_ARGUMENT' });
    await expect(kv.lookup(Array.from({ length: 5000 }, () => Buffer.alloc(32)))).rejects.toMatchObject({ code: 'FLYFS_ERR_LIMIT' });
    await kv.putPages(tokens, [pageData(1), pageData(2)]);
    const keys = kv.keysOf(tokens);
    await expect(kv.gatherTokens(keys, 0, Int32Array.from([128]))).rejects.toThrow(/outside -1\.\.127/);
    await expect(kv.gatherTokens(keys, 0, Int32Array.from([-2]))).rejects.toMatchObject({ code: 'FLYFS_ERR_INVALID_ARGUMENT' });
    await expect(kv.gatherTokens(keys, 2, Int32Array.from([0]))).rejects.toThrow(/layer 2/);
    await expect(kv.getPages(keys, { pool: 'nope' as never })).rejects.toThrow(/pool/);
    await expect(createKvNamespace(kvAddress, adminToken, { name: 'bad/name', tenant: '', model: '', kvFormat: '', layout, quotaBytes: 0, ttlMs: 0 })).rejects.toMatchObject({ code: 'FLYFS_ERR_INVALID_ARGUMENT' });
    await expect(createKvNamespace(kvAddress, adminToken, { name: 'huge', tenant: '', model: '', kvFormat: '', layout: { ...layout, layers: 100_000 }, quotaBytes: 0, ttlMs: 0 })).rejects.toMatchObject({ code: 'FLYFS_ERR_INVALID_ARGUMENT' });
    // The HTTP face answers bad bodies with 400 and good ones like gRPC.
    const http = kvNode().httpAddress;
    const bad = await fetch(`http://${http}/v1/lookup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ auth: { namespace: 'bad', token }, keys: ['zz'] }) });
    expect(bad.status).toBe(400);
    const good = await fetch(`http://${http}/v1/lookup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ auth: { namespace: 'bad', token }, keys: keys.map((k) => k.toString('hex')) }) });
    expect(await good.json()).toMatchObject({ loadable: 2 });
    const forbidden = await fetch(`http://${http}/v1/lookup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ auth: { namespace: 'bad', token: 'x' }, keys: [] }) });
    expect(forbidden.status).toBe(403);
    expect((await kv.lookup(keys)).loadable).toBe(2);
  });

  it('quota: a namespace over its quota evicts its own LRU pages; pinned and leased pages survive', async () => {
    const { token } = await ns('quota', { quotaBytes: 10 * pb });
    const kv = await open('quota', token);
    const seqs = Array.from({ length: 16 }, (_, i) => tokensFor(500 + i, 1));
    for (let i = 0; i < 10; i++) expect((await kv.putPages(seqs[i]!, [pageData(i)])).stored).toBe(1);
    const key = (i: number): Buffer => kv.keysOf(seqs[i]!)[0]!;
    // Page 0 pinned, page 1 leased (looked up now), page 2 touched last: LRU order is 3, 4, …
    await kv.pin([key(0)], Date.now() + 60_000);
    await new Promise((r) => setTimeout(r, leaseMs + 200));
    await kv.lookup([key(2)]);
    await kv.lookup([key(1)]);
    for (let i = 10; i < 13; i++) expect((await kv.putPages(seqs[i]!, [pageData(i)])).stored).toBe(1);
    const alive = async (i: number): Promise<boolean> => (await kv.lookup([key(i)])).loadable === 1;
    expect(await alive(0)).toBe(true);
    expect(await alive(1)).toBe(true);
    expect(await alive(2)).toBe(true);
    expect([await alive(3), await alive(4), await alive(5)]).toEqual([false, false, false]);
    for (let i = 6; i < 13; i++) expect(await alive(i), `page ${i}`).toBe(true);
    const st = await kv.stats() as { namespaces: Array<{ usedBytes: number; pages: number }> };
    expect(st.namespaces[0]!.pages).toBe(10);
    // The evicted pages' slots come back once their (expired) leases allow: usage stays within the quota.
    expect(st.namespaces[0]!.usedBytes).toBeLessThanOrEqual(13 * pb);
  });

  it('TTL: pages older than the namespace TTL go, pinned ones stay', async () => {
    const { token } = await ns('ttl', { ttlMs: 800 });
    const kv = await open('ttl', token);
    const a = tokensFor(41, 2);
    await kv.putPages(a, [pageData(1), pageData(2)]);
    const keys = kv.keysOf(a);
    await kv.pin([keys[1]!], Date.now() + 60_000);
    expect((await kv.lookup(keys)).loadable).toBe(2);
    // Past the TTL and the lease the lookup granted, the unpinned page is gone, the pinned one stays.
    await new Promise((r) => setTimeout(r, leaseMs + 900));
    expect((await kv.lookup([keys[0]!])).loadable).toBe(0);
    expect((await kv.lookup([keys[1]!])).loadable).toBe(1);
    const st = await kv.stats() as { counters: { expired: number }; namespaces: Array<{ pages: number }> };
    expect(st.counters.expired).toBeGreaterThanOrEqual(1);
    expect(st.namespaces[0]!.pages).toBe(1);
  });

  it('capacity: filling past the high watermark brings usage under the low watermark, least recently used first', async () => {
    const { token } = await ns('fill');
    const kv = await open('fill', token);
    await new Promise((r) => setTimeout(r, leaseMs + 100));
    const before = await kv.stats() as { usedBytes: number };
    // One page past the high watermark.
    const room = Math.floor((0.9 * capacityPages * pb - before.usedBytes) / pb);
    const total = room + 1;
    // One long context: its pages commit in order, oldest first in the LRU.
    const tokens = tokensFor(9000, total);
    const keys = kv.keysOf(tokens);
    for (let at = 0; at < total; at += 40) {
      const put = await kv.putPages(tokens.slice(0, Math.min(total, at + 40) * 64), Array.from({ length: Math.min(total, at + 40) }, (_, j) => pageData(j)));
      expect(put.noSpace).toBe(0);
    }
    // Let the leases of the fill end, then let the service's tick evict.
    await new Promise((r) => setTimeout(r, leaseMs + 500));
    const after = await kv.stats() as { usedBytes: number; capacityBytes: number; lowWatermark: number; counters: { evicted: number } };
    expect(after.counters.evicted - (before as unknown as { counters: { evicted: number } }).counters.evicted).toBeGreaterThanOrEqual(Math.floor(0.1 * capacityPages) - 1);
    expect(after.usedBytes).toBeLessThanOrEqual(after.lowWatermark * after.capacityBytes + pb);
    // The newest pages are the ones kept.
    const alive = await Promise.all(keys.map(async (k) => (await kv.lookup([k])).loadable === 1));
    // Eviction is LRU over every namespace: the older namespaces' unpinned pages went first, then
    // the oldest of this fill; what survives of the fill is its newest part.
    const firstAlive = alive.indexOf(true);
    expect(firstAlive).toBeGreaterThan(0);
    expect(alive.slice(firstAlive).every(Boolean)).toBe(true);
  }, 60_000);

  it('the index survives a kill -9 of the service; the CLI reports and evicts', async () => {
    const { token } = await ns('restart');
    const kv = await open('restart', token);
    const tokens = tokensFor(31, 4);
    const pages = Array.from({ length: 4 }, (_, i) => pageData(300 + i));
    await kv.putPages(tokens, pages);
    cluster.kill('kvcache-0', 'SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    const node = await cluster.restartNode('kvcache-0');
    expect(node.grpcAddress).toBe(kvAddress);
    const kv2 = await open('restart', token);
    expect((await kv2.lookupPrefix(tokens)).loadable).toBe(4);
    (await kv2.getPages(kv2.keysOf(tokens))).forEach((p, i) => expect(p!.equals(pages[i]!)).toBe(true));

    const cli = (args: string[]): Promise<{ code: number | null; out: string }> => new Promise((resolve) => {
      const p = spawn(process.execPath, ['dist/tools/cli.js', 'kv', ...args, '--kv', kvAddress, '--admin-token', adminToken], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      p.on('close', (code) => resolve({ code, out }));
    });
    const stats = await cli(['stats', '--json']);
    expect(stats.code).toBe(0);
    expect(JSON.parse(stats.out).namespaces.map((n: { name: string }) => n.name)).toContain('restart');
    const ls = await cli(['ls', 'restart']);
    expect(ls.out.trim().split('\n').length).toBe(4);
    const rm = await cli(['rm', 'restart', '--token', token, kv2.keysOf(tokens)[3]!.toString('hex')]);
    expect(rm.out).toMatch(/removed 1 of 1/);
    expect((await kv2.lookupPrefix(tokens)).loadable).toBe(3);
    const ev = await cli(['evict', 'restart', '--target-bytes', '1']);
    expect(ev.code).toBe(0);
  }, 60_000);
});
