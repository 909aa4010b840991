// gRPC plumbing shared by every role: loading the contracts in proto/, typed service
// definitions, servers and clients with flyfs's limits, and error mapping between FlyfsError
// and gRPC status (the registry code travels in the 'flyfs-code' trailer).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FlyfsError, flyfsError, isErrorCode } from './errors.js';
import { limits } from './limits.js';
import type { ProtoGrpcType as KvCacheProto } from '../proto/gen/kvcache.js';
import type { ProtoGrpcType as ManagementProto } from '../proto/gen/management.js';
import type { ProtoGrpcType as MetadataProto } from '../proto/gen/metadata.js';
import type { ProtoGrpcType as ReplicationProto } from '../proto/gen/replication.js';
import type { ProtoGrpcType as StorageProto } from '../proto/gen/storage.js';

export type { KvCacheProto, ManagementProto, MetadataProto, ReplicationProto, StorageProto };
type AllProtos = KvCacheProto & ManagementProto & MetadataProto & ReplicationProto & StorageProto;

const CODE_KEY = 'flyfs-code';
/** Where to go instead (the chain head's or a serving replica's address), when the server knows. */
const HINT_KEY = 'flyfs-hint';

function findProtoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'proto', 'management.proto');
    if (existsSync(candidate)) return join(dir, 'proto');
    dir = dirname(dir);
  }
  throw new Error('proto/ folder not found above ' + fileURLToPath(import.meta.url));
}

/** Loader options: these must match the options tools/gen-proto.mjs generates types with. */
const loaderOptions: protoLoader.Options = {
  keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true,
};

let cached: AllProtos | undefined;

export function loadProtos(): AllProtos {
  if (cached) return cached;
  const protoDir = findProtoDir();
  const def = protoLoader.loadSync(['kvcache.proto', 'management.proto', 'metadata.proto', 'replication.proto', 'storage.proto'], {
    ...loaderOptions, includeDirs: [protoDir],
  });
  cached = grpc.loadPackageDefinition(def) as unknown as AllProtos;
  return cached;
}

export const channelOptions: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': limits.grpcMessageBytesMax,
  'grpc.max_send_message_length': limits.grpcMessageBytesMax,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_permit_without_calls': 1,
};

export function createServer(): grpc.Server {
  return new grpc.Server(channelOptions);
}

/** Binds host:port (port 0 = ephemeral) and resolves to the bound port. */
export function bindServer(server: grpc.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err) reject(err);
      else resolve(bound);
    });
  });
}

export function shutdownServer(server: grpc.Server, graceMs = 2000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { server.forceShutdown(); resolve(); }, graceMs);
    timer.unref();
    server.tryShutdown(() => { clearTimeout(timer); resolve(); });
  });
}

/** Converts any thrown value into a gRPC service error, keeping flyfs's code. */
export function toServiceError(err: unknown): grpc.ServiceError {
  const fe = err instanceof FlyfsError ? err : flyfsError('FLYFS_ERR_INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
  const metadata = new grpc.Metadata();
  metadata.set(CODE_KEY, fe.code);
  if (fe.path !== undefined) metadata.set('flyfs-path', Buffer.from(fe.path).toString('base64'));
  if (fe.hint !== undefined) metadata.set(HINT_KEY, fe.hint);
  return Object.assign(new Error(fe.message), {
    code: fe.grpcStatus, details: fe.message, metadata,
  }) as grpc.ServiceError;
}

/** Converts a gRPC client error back into a FlyfsError. */
export function fromServiceError(err: unknown): FlyfsError {
  if (err instanceof FlyfsError) return err;
  const se = err as Partial<grpc.ServiceError>;
  const code = se.metadata?.get(CODE_KEY)[0];
  const details = typeof se.details === 'string' ? se.details : (err instanceof Error ? err.message : String(err));
  if (isErrorCode(code)) {
    const known = flyfsError(code, undefined, { cause: err });
    // Keep the server's message (it already carries the detail).
    known.message = details;
    const hint = se.metadata?.get(HINT_KEY)[0];
    if (typeof hint === 'string' && hint !== '') known.hint = hint;
    return known;
  }
  switch (se.code) {
    case grpc.status.UNAVAILABLE: return flyfsError('FLYFS_ERR_UNAVAILABLE', details, { cause: err });
    case grpc.status.DEADLINE_EXCEEDED: return flyfsError('FLYFS_ERR_TIMEOUT', details, { cause: err });
    case grpc.status.RESOURCE_EXHAUSTED: return flyfsError('FLYFS_ERR_MESSAGE_TOO_LARGE', details, { cause: err });
    case grpc.status.CANCELLED: return flyfsError('FLYFS_ERR_CLOSED', details, { cause: err });
    default: return flyfsError('FLYFS_ERR_INTERNAL', details, { cause: err });
  }
}

/** The async function behind each handler made by `unary`, for transports other than grpc-js. */
const unaryFunctions = new WeakMap<object, (request: unknown) => Promise<unknown>>();

/** Wraps an async handler as a grpc-js unary handler that maps errors. */
export function unary<Req, Res>(fn: (request: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  const handler: grpc.handleUnaryCall<Req, Res> = (call, callback) => {
    fn(call.request).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toServiceError(err)),
    );
  };
  unaryFunctions.set(handler, fn as (request: unknown) => Promise<unknown>);
  return handler;
}

/** The request -> reply function of a handler made by `unary` (errors are thrown FlyfsErrors). */
export function unaryFunction(handler: unknown): ((request: unknown) => Promise<unknown>) | undefined {
  return typeof handler === 'function' ? unaryFunctions.get(handler) : undefined;
}

/** The last (shortest) overload of a generated client method: TypeScript infers from it. */
type UnaryMethod<Req, Res> = (request: Req, callback: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;
type UnaryMethodFull<Req, Res> = (
  request: Req, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<Res>,
) => grpc.ClientUnaryCall;

/** Calls a generated client method, with a deadline, mapping errors to FlyfsError. */
export function callUnary<Req, Res>(client: grpc.Client, method: UnaryMethod<Req, Res>, request: Req,
  deadlineMs: number = limits.rpcDeadlineMsDefault): Promise<Res> {
  const full = method as unknown as UnaryMethodFull<Req, Res>;
  return new Promise((resolve, reject) => {
    full.call(client, request, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
      if (err) reject(fromServiceError(err));
      else if (res === undefined) reject(flyfsError('FLYFS_ERR_INTERNAL', 'empty reply'));
      else resolve(res);
    });
  });
}

export { grpc };
