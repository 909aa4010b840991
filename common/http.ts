// The HTTP face of every server (fastify): /healthz, /metrics (Prometheus text) and /status
// (JSON). build() returns the app without listening so tests can inject requests.
import Fastify, { type FastifyInstance } from 'fastify';
import type { MetricsRegistry } from './metrics.js';

export interface Health { ok: boolean; reason?: string }

export interface HttpOptions {
  role: string;
  metrics: MetricsRegistry;
  health: () => Health;
  status: () => unknown | Promise<unknown>;
  /** Extra routes (the metaserver's dashboard). */
  extend?: (app: FastifyInstance) => void;
}

/** Largest request body the status endpoints accept (they take none). */
const httpBodyBytesMax = 64 * 1024;

export function buildHttpApp(options: HttpOptions): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: httpBodyBytesMax, connectionTimeout: 30_000, keepAliveTimeout: 5_000 });
  app.get('/healthz', async (_req, reply) => {
    const h = options.health();
    reply.code(h.ok ? 200 : 503);
    return { ok: h.ok, role: options.role, ...(h.reason === undefined ? {} : { reason: h.reason }) };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.type('text/plain; version=0.0.4');
    return options.metrics.render();
  });
  app.get('/status', async () => options.status());
  options.extend?.(app);
  return app;
}

export async function listenHttp(app: FastifyInstance, host: string, port: number): Promise<number> {
  await app.listen({ host, port });
  const addr = app.server.address();
  if (addr === null || typeof addr === 'string') throw new Error('HTTP server has no TCP address');
  return addr.port;
}
