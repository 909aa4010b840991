// The metaserver's HTTP face: /healthz, /metrics, /status and the cluster-map dashboard.
import type { FastifyInstance } from 'fastify';
import { buildHttpApp } from '../common/http.js';
import type { MetricsRegistry } from '../common/metrics.js';
import type { ClusterMap, RoutingInfo } from './cluster-map.js';
import type { MetaReplica } from './replication/replica.js';
import type { MetaStore } from './store.js';

export interface MetaHttpDeps { store: MetaStore; clusterMap: ClusterMap; replica: MetaReplica; metrics: MetricsRegistry; grpcAddress: () => string }

export function metaserverStatus(d: MetaHttpDeps): unknown {
  const r = d.clusterMap.snapshot();
  return {
    role: 'metaserver',
    grpcAddress: d.grpcAddress(),
    chain: d.replica.status(),
    routingVersion: r.version,
    nodes: r.nodes.map((n) => ({ nodeId: n.nodeId, role: n.role, state: n.state, grpcAddress: n.grpcAddress, leaseExpiresMs: n.leaseExpiresMs })),
    targets: r.targets.map((t) => ({ targetId: t.targetId, nodeId: t.nodeId, chainId: t.chainId, state: t.state, usedBytes: t.usedBytes, capacityBytes: t.capacityBytes })),
    chains: r.chains,
    chainTables: r.chainTables,
    inodeCount: d.store.inodeCount(),
    gcPending: d.store.gcCount(),
  };
}

export function buildMetaserverHttp(d: MetaHttpDeps): FastifyInstance {
  return buildHttpApp({
    role: 'metaserver',
    metrics: d.metrics,
    health: () => ({ ok: true, chainRole: d.replica.status().role }),
    status: () => metaserverStatus(d),
    extend: (app) => {
      app.get('/dashboard', async (_req, reply) => {
        reply.type('text/html; charset=utf-8');
        return renderDashboard(d.clusterMap.snapshot(), d.store.inodeCount());
      });
    },
  });
}

function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function renderDashboard(r: RoutingInfo, inodes: number): string {
  const rows = (cells: Array<Array<string | number>>): string => cells.map((c) => `<tr>${c.map((x) => `<td>${esc(x)}</td>`).join('')}</tr>`).join('');
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>flyfs cluster</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.3em .6em}.alive,.serving{color:#070}.expired,.offline{color:#a00}</style></head><body>
<h1>flyfs cluster map</h1><p>routing version ${esc(r.version)} &middot; ${esc(inodes)} inodes</p>
<h2>Nodes</h2><table><tr><th>id</th><th>role</th><th>state</th><th>gRPC</th><th>HTTP</th></tr>${rows(r.nodes.map((n) => [n.nodeId, n.role, n.state, n.grpcAddress, n.httpAddress]))}</table>
<h2>Targets</h2><table><tr><th>id</th><th>node</th><th>chain</th><th>state</th><th>used / capacity bytes</th></tr>${rows(r.targets.map((t) => [t.targetId, t.nodeId, t.chainId, t.state, `${t.usedBytes} / ${t.capacityBytes}`]))}</table>
<h2>Chains</h2><table><tr><th>id</th><th>version</th><th>targets (head first)</th></tr>${rows(r.chains.map((c) => [c.chainId, c.version, c.targetIds.join(', ')]))}</table>
<h2>Chain tables</h2><table><tr><th>id</th><th>version</th><th>chains</th></tr>${rows(r.chainTables.map((t) => [t.tableId, t.version, t.chainIds.join(', ')]))}</table>
</body></html>`.replace(/<td>(alive|expired|serving|offline)<\/td>/g, '<td class="$1">$1</td>');
}
