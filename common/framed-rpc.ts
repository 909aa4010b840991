// Unary RPCs of the gRPC services in proto/, carried by the framed protocol (common/frame.ts, op
// Rpc) instead of HTTP/2. The contract stays the .proto's: the same methods, the same protobuf
// messages (serialized by the service definition's own functions), the same handlers and the
// same error codes. Only the transport differs: a frame per call on a plain multiplexed TCP
// connection, which costs a fraction of grpc-js's per-call work (BENCHMARKS.md, meta). Streaming
// methods stay on gRPC.
//
// Request frame: header {"m": "/flyfs.v1.Metadata/Stat"}, payload: the serialized request.
// Reply frame: status 0 with the serialized reply as payload, or status 1 with the error header
// of common/frame.ts (code, message, hint, path).
import type * as grpc from '@grpc/grpc-js';
import { flyfsError, FlyfsError } from './errors.js';
import { Op, type Frame } from './frame.js';
import type { FramedPool } from './framed-connection.js';
import type { FrameDispatch } from './framed-server.js';
import { unaryFunction } from './grpc.js';
import { limits } from './limits.js';

interface UnaryMethod {
  readonly definition: grpc.MethodDefinition<unknown, unknown>;
  readonly run: (request: unknown) => Promise<unknown>;
}

export interface FramedService {
  readonly definition: grpc.ServiceDefinition;
  /** The handlers added to the gRPC server; unary ones made by common/grpc.ts's `unary` are served. */
  readonly handlers: object;
}

function isUnary(d: grpc.MethodDefinition<unknown, unknown>): boolean {
  return !d.requestStream && !d.responseStream;
}

/** A dispatch for common/framed-server.ts that runs the services' unary methods. */
export function framedRpcDispatch(services: readonly FramedService[]): FrameDispatch {
  const methods = new Map<string, UnaryMethod>();
  for (const s of services) {
    for (const [name, definition] of Object.entries(s.definition)) {
      const run = unaryFunction((s.handlers as Record<string, unknown>)[name]);
      if (isUnary(definition) && run !== undefined) methods.set(definition.path, { definition, run });
    }
  }
  return async (frame: Frame) => {
    if (frame.op !== Op.Rpc) throw flyfsError('FLYFS_ERR_BAD_FRAME', `op ${frame.op} on an RPC connection`);
    const path = frame.header['m'];
    const method = typeof path === 'string' ? methods.get(path) : undefined;
    if (method === undefined) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `no RPC method ${JSON.stringify(path)}`);
    if (frame.payload.length > limits.grpcMessageBytesMax) {
      throw flyfsError('FLYFS_ERR_MESSAGE_TOO_LARGE', `request of ${frame.payload.length} bytes exceeds ${limits.grpcMessageBytesMax}`);
    }
    let request: unknown;
    try {
      request = method.definition.requestDeserialize(frame.payload);
    } catch (err) {
      throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `request of ${method.definition.path} does not decode`, { cause: err });
    }
    const reply = await method.run(request);
    return { header: {}, payload: method.definition.responseSerialize(reply) };
  };
}

type Callback = (err: FlyfsError | null, reply?: unknown) => void;

/**
 * A client of `definition`'s unary methods over framed connections to `address`, shaped like the
 * grpc-js client that proto-loader generates (method(request, [metadata], [options], callback),
 * by the proto's name and its camelCase one), so callers and common/grpc.ts's `callUnary` take
 * either. Metadata is not carried; options.deadline is.
 */
export function framedServiceClient<C>(definition: grpc.ServiceDefinition, pool: FramedPool, address: string): C {
  const client: Record<string, unknown> = {};
  for (const [name, d] of Object.entries(definition)) {
    if (!isUnary(d)) continue;
    const call = (request: unknown, ...rest: unknown[]): { cancel(): void } => {
      const callback = rest[rest.length - 1] as Callback;
      const options = rest.find((r): r is { deadline?: Date | number } => typeof r === 'object' && r !== null && 'deadline' in r);
      const deadline = options?.deadline;
      const deadlineMs = deadline === undefined ? limits.rpcDeadlineMsDefault : Math.max(1, Number(deadline) - Date.now());
      let payload: Buffer;
      try {
        payload = d.requestSerialize(request);
      } catch (err) {
        process.nextTick(callback, flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `request of ${d.path} does not encode`, { cause: err }));
        return { cancel() { /* nothing was sent */ } };
      }
      let connection;
      try { connection = pool.connection(address); } catch (err) {
        process.nextTick(callback, err as FlyfsError);
        return { cancel() { /* nothing was sent */ } };
      }
      connection.request(Op.Rpc, { m: d.path }, payload, { deadlineMs }).then(
        (frame) => {
          let reply: unknown;
          try { reply = d.responseDeserialize(frame.payload); } catch (err) {
            callback(flyfsError('FLYFS_ERR_BAD_FRAME', `reply of ${d.path} does not decode`, { cause: err }));
            return;
          }
          callback(null, reply);
        },
        (err: unknown) => callback(err instanceof FlyfsError ? err : flyfsError('FLYFS_ERR_INTERNAL', String(err), { cause: err })),
      );
      return { cancel() { /* the reply, if it comes, is matched to nobody once timed out */ } };
    };
    client[name] = call;
    if (d.originalName !== undefined) client[d.originalName] = call;
  }
  return client as C;
}

/**
 * One server reached by framed RPC once its framed address is known, by its gRPC clients until
 * then: `discover` asks the server where it listens (GetEndpoints over gRPC; '' for nowhere) in
 * the background while gRPC serves. A connection failure `forget`s the address, since a
 * restarted server may listen elsewhere; the next call asks again.
 */
export class FramedEndpoint {
  private address: string | undefined;
  private asking = false;
  private readonly clients = new Map<grpc.ServiceDefinition, unknown>();

  constructor(private readonly pool: FramedPool, private readonly discover: () => Promise<string>) {}

  /** `definition`'s framed client when the address is known, else `grpcClient`. */
  client<C>(definition: grpc.ServiceDefinition, grpcClient: C): C {
    if (this.address === undefined) {
      this.ask();
      return grpcClient;
    }
    let c = this.clients.get(definition) as C | undefined;
    if (c === undefined) {
      c = framedServiceClient<C>(definition, this.pool, this.address);
      this.clients.set(definition, c);
    }
    return c;
  }

  forget(): void {
    this.address = undefined;
    this.clients.clear();
  }

  private ask(): void {
    if (this.asking) return;
    this.asking = true;
    this.discover().then((address) => { if (address !== '') this.address = address; }, () => { /* gRPC serves; the next call asks again */ })
      .finally(() => { this.asking = false; });
  }
}

/** Errors after which a framed endpoint's address is forgotten: the connection, not the call, failed. */
export function isConnectionFailure(err: unknown): boolean {
  return err instanceof FlyfsError && (err.code === 'FLYFS_ERR_UNAVAILABLE' || err.code === 'FLYFS_ERR_CLOSED');
}
