// The KV cache service's API, once: `KvApi` takes plain requests (keys as bytes) and is served
// over gRPC (KvCache in proto/kvcache.proto) and over HTTP as POST /v1/<method> with JSON bodies
// (keys as hex strings). Every namespace call is checked against the namespace's token.
import type { FastifyInstance } from 'fastify';
import { flyfsError, FlyfsError } from '../common/errors.js';
import { unary } from '../common/grpc.js';
import type { KvCacheHandlers } from '../proto/gen/flyfs/v1/KvCache.js';
import type { KvIndex, NamespaceSpec } from './index-store.js';

interface Auth { namespace: string; token: string }

export interface KvExtentOut { found: boolean; path: string; offset: number; length: number; crc32: number }

const none: KvExtentOut = { found: false, path: '', offset: 0, length: 0, crc32: 0 };

export class KvApi {
  constructor(private readonly index: KvIndex) {}

  private ns(auth: Auth | null | undefined) {
    if (auth === null || auth === undefined || typeof auth.namespace !== 'string' || typeof auth.token !== 'string') {
      throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'auth { namespace, token } is required');
    }
    return this.index.auth(auth.namespace, auth.token);
  }

  async createNamespace(adminToken: string, spec: NamespaceSpec) {
    const { state, token } = await this.index.createNamespace(adminToken, spec);
    return { info: this.index.namespaceInfo(state), token };
  }

  lookup(auth: Auth, keys: Uint8Array[]) { return this.index.lookup(this.ns(auth), keys); }

  resolve(auth: Auth, keys: Uint8Array[]) {
    const r = this.index.resolve(this.ns(auth), keys);
    return { extents: r.extents.map((e) => (e === undefined ? none : { found: true, ...e })), leaseUntilMs: r.leaseUntilMs, leaseMs: r.leaseMs };
  }

  async reserve(auth: Auth, keys: Uint8Array[]) {
    const r = await this.index.reserve(this.ns(auth), keys);
    return { ...r, pages: r.pages.map((p) => ({ status: p.status, extent: p.extent === undefined ? none : { found: true, ...p.extent } })) };
  }

  commit(auth: Auth, reservationId: string, keys: Uint8Array[], crc32: number[]) { return { committed: this.index.commit(this.ns(auth), reservationId, keys, crc32) }; }
  abort(auth: Auth, reservationId: string) { return { count: this.index.abort(this.ns(auth), reservationId) }; }
  remove(auth: Auth, keys: Uint8Array[]) { return { count: this.index.remove(this.ns(auth), keys) }; }
  pin(auth: Auth, keys: Uint8Array[], untilMs: number) { return { count: this.index.pin(this.ns(auth), keys, untilMs) }; }

  stats(auth: Auth | null | undefined, adminToken: string) {
    if (adminToken !== '') { this.index.checkAdmin(adminToken); return this.index.stats(); }
    return this.index.stats(this.ns(auth));
  }

  evict(adminToken: string, namespace: string, targetBytes: number) {
    this.index.checkAdmin(adminToken);
    const only = namespace === '' ? undefined : this.index.namespaceByName(namespace);
    const evicted = targetBytes > 0 || only !== undefined ? this.index.evict(targetBytes, only) : this.index.evict();
    return { evicted, ...this.index.stats() };
  }

  list(adminToken: string, namespace: string, limit: number) {
    this.index.checkAdmin(adminToken);
    if (namespace === '') return { namespaces: this.index.namespaceNames() };
    return { namespace, pages: this.index.list(this.index.namespaceByName(namespace), limit > 0 ? limit : 1000) };
  }
}

const specOf = (s: { name?: string; tenant?: string; model?: string; kvFormat?: string; layout?: { layers?: number; pageTokens?: number; latentBytesPerToken?: number; indexerBytesPerToken?: number } | null; quotaBytes?: number; ttlMs?: number } | null | undefined): NamespaceSpec => {
  if (s === null || s === undefined || s.layout === null || s.layout === undefined) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'a namespace spec with a layout is required');
  return {
    name: s.name ?? '', tenant: s.tenant ?? '', model: s.model ?? '', kvFormat: s.kvFormat ?? '',
    layout: { layers: s.layout.layers ?? 0, pageTokens: s.layout.pageTokens ?? 0, latentBytesPerToken: s.layout.latentBytesPerToken ?? 0, indexerBytesPerToken: s.layout.indexerBytesPerToken ?? 0 },
    quotaBytes: Number(s.quotaBytes ?? 0), ttlMs: Number(s.ttlMs ?? 0),
  };
};

const keysOf = (k: unknown): Uint8Array[] => {
  if (!Array.isArray(k)) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'keys must be a list');
  return k as Uint8Array[];
};

export function kvGrpcHandlers(api: KvApi, framedAddress: () => string): KvCacheHandlers {
  return {
    GetEndpoints: unary(async () => ({ framedAddress: framedAddress() })),
    CreateNamespace: unary(async (r) => {
      const out = await api.createNamespace(r.adminToken, specOf(r.spec));
      return { token: out.token, info: { ...out.info, spec: out.info.spec } };
    }),
    Lookup: unary(async (r) => api.lookup(r.auth as Auth, keysOf(r.keys))),
    Resolve: unary(async (r) => api.resolve(r.auth as Auth, keysOf(r.keys))),
    Reserve: unary(async (r) => api.reserve(r.auth as Auth, keysOf(r.keys))),
    Commit: unary(async (r) => api.commit(r.auth as Auth, r.reservationId, keysOf(r.keys), r.crc32)),
    Abort: unary(async (r) => api.abort(r.auth as Auth, r.reservationId)),
    Remove: unary(async (r) => api.remove(r.auth as Auth, keysOf(r.keys))),
    Pin: unary(async (r) => api.pin(r.auth as Auth, keysOf(r.keys), Number(r.untilMs))),
    Stats: unary(async (r) => ({ json: JSON.stringify(api.stats(r.auth as Auth | null, r.adminToken)) })),
    Evict: unary(async (r) => ({ json: JSON.stringify(api.evict(r.adminToken, r.namespace, Number(r.targetBytes))) })),
    List: unary(async (r) => ({ json: JSON.stringify(api.list(r.adminToken, r.namespace, r.limit)) })),
  };
}

/** Bytes of one HTTP request body: a request of keysPerRequestMax hex keys fits. */
export const kvHttpBodyBytesMax = 1024 * 1024;

/** POST /v1/<method>: the same calls as gRPC, JSON in and out, keys in hex. */
export function kvHttpRoutes(api: KvApi): (app: FastifyInstance) => void {
  const hexKeys = (v: unknown): Uint8Array[] => {
    if (!Array.isArray(v) || !v.every((k) => typeof k === 'string' && /^[0-9a-f]*$/i.test(k))) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'keys must be a list of hex strings');
    return v.map((k: string) => Buffer.from(k, 'hex'));
  };
  type Body = Record<string, unknown> & { auth?: Auth };
  const routes: Record<string, (b: Body) => unknown> = {
    createNamespace: async (b) => api.createNamespace(String(b['adminToken'] ?? ''), specOf(b['spec'] as never)),
    lookup: (b) => api.lookup(b.auth as Auth, hexKeys(b['keys'])),
    resolve: (b) => api.resolve(b.auth as Auth, hexKeys(b['keys'])),
    reserve: (b) => api.reserve(b.auth as Auth, hexKeys(b['keys'])),
    commit: (b) => api.commit(b.auth as Auth, String(b['reservationId'] ?? ''), hexKeys(b['keys']), (b['crc32'] ?? []) as number[]),
    abort: (b) => api.abort(b.auth as Auth, String(b['reservationId'] ?? '')),
    remove: (b) => api.remove(b.auth as Auth, hexKeys(b['keys'])),
    pin: (b) => api.pin(b.auth as Auth, hexKeys(b['keys']), Number(b['untilMs'])),
    stats: (b) => api.stats(b.auth, String(b['adminToken'] ?? '')),
    evict: (b) => api.evict(String(b['adminToken'] ?? ''), String(b['namespace'] ?? ''), Number(b['targetBytes'] ?? 0)),
    list: (b) => api.list(String(b['adminToken'] ?? ''), String(b['namespace'] ?? ''), Number(b['limit'] ?? 0)),
  };
  return (app) => {
    for (const [name, fn] of Object.entries(routes)) {
      app.post(`/v1/${name}`, { bodyLimit: kvHttpBodyBytesMax }, async (req, reply) => {
        try {
          const body = (req.body ?? {}) as Body;
          if (typeof body !== 'object' || Array.isArray(body)) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'the body must be a JSON object');
          return await fn(body);
        } catch (err) {
          const fe = err instanceof FlyfsError ? err : flyfsError('FLYFS_ERR_INTERNAL', (err as Error).message);
          reply.code(fe.code === 'FLYFS_ERR_NOT_PERMITTED' ? 403 : fe.code === 'FLYFS_ERR_NOT_FOUND' ? 404 : fe.code === 'FLYFS_ERR_INTERNAL' ? 500 : 400);
          return { error: fe.code, message: fe.message };
        }
      });
    }
  };
}
