// The one registry of flyfs error codes. Codes are numbered by subsystem:
// 1xxx common, 2xxx metadata, 3xxx storage, 4xxx client, 5xxx tools.
// Each code carries the Node errno that the fs-like API reports and the gRPC status it travels as.
import { status as GrpcStatus } from '@grpc/grpc-js';

export interface ErrorSpec {
  readonly number: number;
  readonly errno: string;
  readonly grpc: GrpcStatus;
  readonly message: string;
  /** The client may retry the same request (with the same request id). */
  readonly retryable: boolean;
}

function spec(number: number, errno: string, grpc: GrpcStatus, message: string, retryable = false): ErrorSpec {
  return { number, errno, grpc, message, retryable };
}

export const ErrorCodes = {
  FLYFS_ERR_INTERNAL: spec(1000, 'EIO', GrpcStatus.INTERNAL, 'internal error'),
  FLYFS_ERR_INVALID_ARGUMENT: spec(1001, 'EINVAL', GrpcStatus.INVALID_ARGUMENT, 'invalid argument'),
  FLYFS_ERR_MESSAGE_TOO_LARGE: spec(1002, 'EMSGSIZE', GrpcStatus.RESOURCE_EXHAUSTED, 'message exceeds the size limit'),
  FLYFS_ERR_TIMEOUT: spec(1003, 'ETIMEDOUT', GrpcStatus.DEADLINE_EXCEEDED, 'operation timed out', true),
  FLYFS_ERR_UNAVAILABLE: spec(1004, 'EAGAIN', GrpcStatus.UNAVAILABLE, 'service unavailable', true),
  FLYFS_ERR_BAD_FRAME: spec(1005, 'EPROTO', GrpcStatus.INVALID_ARGUMENT, 'malformed frame'),
  FLYFS_ERR_BAD_CONFIG: spec(1006, 'EINVAL', GrpcStatus.INVALID_ARGUMENT, 'invalid configuration'),
  FLYFS_ERR_CLOSED: spec(1007, 'ECONNRESET', GrpcStatus.UNAVAILABLE, 'connection closed', true),
  FLYFS_ERR_LIMIT: spec(1008, 'E2BIG', GrpcStatus.RESOURCE_EXHAUSTED, 'a limit was exceeded'),

  FLYFS_ERR_NOT_FOUND: spec(2000, 'ENOENT', GrpcStatus.NOT_FOUND, 'no such file or directory'),
  FLYFS_ERR_EXISTS: spec(2001, 'EEXIST', GrpcStatus.ALREADY_EXISTS, 'file already exists'),
  FLYFS_ERR_NOT_DIR: spec(2002, 'ENOTDIR', GrpcStatus.FAILED_PRECONDITION, 'not a directory'),
  FLYFS_ERR_IS_DIR: spec(2003, 'EISDIR', GrpcStatus.FAILED_PRECONDITION, 'is a directory'),
  FLYFS_ERR_NOT_EMPTY: spec(2004, 'ENOTEMPTY', GrpcStatus.FAILED_PRECONDITION, 'directory not empty'),
  FLYFS_ERR_NAME_TOO_LONG: spec(2005, 'ENAMETOOLONG', GrpcStatus.INVALID_ARGUMENT, 'name too long'),
  FLYFS_ERR_BAD_NAME: spec(2006, 'EINVAL', GrpcStatus.INVALID_ARGUMENT, 'invalid name'),
  FLYFS_ERR_BUSY: spec(2007, 'EBUSY', GrpcStatus.FAILED_PRECONDITION, 'resource busy'),
  FLYFS_ERR_BAD_SESSION: spec(2008, 'EBADF', GrpcStatus.FAILED_PRECONDITION, 'no such write session'),
  FLYFS_ERR_NO_CHAINS: spec(2009, 'ENOSPC', GrpcStatus.FAILED_PRECONDITION, 'no storage chains are available', true),
  FLYFS_ERR_UNKNOWN_NODE: spec(2010, 'ENOENT', GrpcStatus.NOT_FOUND, 'node is not registered'),
  FLYFS_ERR_FILE_TOO_LARGE: spec(2011, 'EFBIG', GrpcStatus.INVALID_ARGUMENT, 'file too large'),
  FLYFS_ERR_LOOP: spec(2012, 'ELOOP', GrpcStatus.FAILED_PRECONDITION, 'too many levels of symbolic links'),
  FLYFS_ERR_NOT_PERMITTED: spec(2013, 'EPERM', GrpcStatus.PERMISSION_DENIED, 'operation not permitted'),
  FLYFS_ERR_NOT_HEAD: spec(2014, 'EAGAIN', GrpcStatus.UNAVAILABLE, 'this metaserver is not the chain head', true),
  FLYFS_ERR_NOT_READABLE: spec(2015, 'EAGAIN', GrpcStatus.UNAVAILABLE, 'this metaserver cannot serve reads now', true),

  FLYFS_ERR_STALE_CHAIN_VERSION: spec(3000, 'ESTALE', GrpcStatus.ABORTED, 'chain version is stale', true),
  FLYFS_ERR_NOT_SERVING: spec(3001, 'EAGAIN', GrpcStatus.UNAVAILABLE, 'target is not serving', true),
  FLYFS_ERR_NO_SPACE: spec(3002, 'ENOSPC', GrpcStatus.RESOURCE_EXHAUSTED, 'no space left on target'),
  FLYFS_ERR_CHECKSUM: spec(3003, 'EIO', GrpcStatus.DATA_LOSS, 'chunk checksum mismatch'),
  FLYFS_ERR_UNKNOWN_CHAIN: spec(3004, 'ESTALE', GrpcStatus.NOT_FOUND, 'chain is not on this server', true),
  FLYFS_ERR_CHUNK_RANGE: spec(3005, 'EINVAL', GrpcStatus.OUT_OF_RANGE, 'offset or length outside the chunk'),

  FLYFS_ERR_BAD_HANDLE: spec(4000, 'EBADF', GrpcStatus.FAILED_PRECONDITION, 'file handle is closed'),
  FLYFS_ERR_NOT_CONNECTED: spec(4001, 'ENOTCONN', GrpcStatus.UNAVAILABLE, 'no cluster address given'),
  FLYFS_ERR_BAD_FORMAT: spec(4002, 'EINVAL', GrpcStatus.INVALID_ARGUMENT, 'not a valid flyfs dataset or checkpoint'),
  FLYFS_ERR_CORRUPT: spec(4003, 'EIO', GrpcStatus.DATA_LOSS, 'stored bytes do not match their checksum'),

  FLYFS_ERR_CLUSTER_RUNNING: spec(5000, 'EBUSY', GrpcStatus.FAILED_PRECONDITION, 'a cluster is already running on this folder'),
  FLYFS_ERR_CHILD_FAILED: spec(5001, 'ECHILD', GrpcStatus.INTERNAL, 'a child process failed'),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ErrorCodes;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ErrorCodes, value);
}

export interface FlyfsErrorOptions {
  cause?: unknown;
  path?: string;
  dest?: string;
  syscall?: string;
  /** Where to retry instead (an address), when the server knows. */
  hint?: string;
}

/** An operating error: carries a registry code, the matching errno and the gRPC status. */
export class FlyfsError extends Error {
  readonly code: ErrorCode;
  readonly errno: string;
  readonly grpcStatus: GrpcStatus;
  readonly retryable: boolean;
  path?: string;
  dest?: string;
  syscall?: string;
  hint?: string;

  constructor(code: ErrorCode, detail?: string, options: FlyfsErrorOptions = {}) {
    const s = ErrorCodes[code];
    super(detail ? `${s.message}: ${detail}` : s.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FlyfsError';
    this.code = code;
    this.errno = s.errno;
    this.grpcStatus = s.grpc;
    this.retryable = s.retryable;
    if (options.path !== undefined) this.path = options.path;
    if (options.dest !== undefined) this.dest = options.dest;
    if (options.syscall !== undefined) this.syscall = options.syscall;
    if (options.hint !== undefined) this.hint = options.hint;
  }
}

export function flyfsError(code: ErrorCode, detail?: string, options?: FlyfsErrorOptions): FlyfsError {
  return new FlyfsError(code, detail, options);
}

/** Programmer errors: these stay on in production and are never caught to continue. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
