// Configuration of a storage server: typed, validated, with documented defaults, and the
// command-line parser of `flyfs storageserver`.
import { join, resolve } from 'node:path';
import { flyfsError } from '../common/errors.js';
import { limits } from '../common/limits.js';
import type { IoEngineChoice } from './io-engine.js';

const ioEngineChoices: readonly IoEngineChoice[] = ['auto', 'io_uring', 'fs'];

/** Bounds of a storage server's own caches (the chunk engine's are chunkEngineLimits). */
export const storageServerLimits = {
  /** Free aligned read buffers kept for reuse, all size classes together. */
  ioBufferPoolBytesMax: 64 * 1024 * 1024,
  /** Reads of larger windows get a buffer of their own (the default chunk size). */
  ioBufferClassBytesMax: 4 * 1024 * 1024,
  /**
   * malloc serves blocks up to this from its heap, not one fresh mmap each (glibc's largest
   * allowed; a fresh 4 MiB buffer costs 1,024 page faults and an munmap: 3x slower copies here).
   */
  mallocMmapThresholdBytes: 32 * 1024 * 1024,
  /** Free memory malloc keeps at its heap's top before giving it back to the kernel. */
  mallocTrimThresholdBytes: 128 * 1024 * 1024,
} as const;

export interface StorageServerConfig {
  /** The server's own folder: node.json lives here, and default targets below it. */
  dataDir: string;
  /** Target folders, one per disk or slice of one. Default: DATA/target-0..N-1. */
  targets: string[];
  /** Management (metaserver) gRPC addresses, host:port; tried in turn. */
  mgmtAddresses: string[];
  /** Address every listener binds. Default 127.0.0.1. */
  host: string;
  /** gRPC port (control + chunk service). 0 = ephemeral (default). */
  grpcPort: number;
  /** Framed binary data-path port. 0 = ephemeral (default). */
  dataPort: number;
  /** HTTP port of /healthz, /metrics, /status. 0 = ephemeral (default). */
  httpPort: number;
  /** Verify each chunk's CRC32C on read. Default true. */
  verifyChecksums: boolean;
  /** New chunks are refused once a target's file system is fuller than this. Default 0.95. */
  diskFullRatio: number;
  /** File I/O: io_uring, Node's fs, or auto (io_uring where the kernel has it). Default auto. */
  ioEngine: IoEngineChoice;
  /** Read chunk data with O_DIRECT where the file system allows it. Default true. */
  directIo: boolean;
  /** How often every chunk is verified against its checksum; 0 turns the scrub off. Default 1 h. */
  scrubIntervalMs: number;
  /** CRAQ retransmission period (--craq-tick-ms). */
  craqTickMs: number;
}

export interface StorageServerConfigInput {
  dataDir: string;
  mgmtAddresses: string[];
  targets?: string[];
  /** Used when `targets` is not given. Default 1. */
  targetCount?: number;
  host?: string;
  grpcPort?: number;
  dataPort?: number;
  httpPort?: number;
  verifyChecksums?: boolean;
  diskFullRatio?: number;
  ioEngine?: string;
  directIo?: boolean;
  scrubIntervalMs?: number;
  craqTickMs?: number;
}

function bad(detail: string): Error {
  return flyfsError('FLYFS_ERR_BAD_CONFIG', detail);
}

function checkPort(name: string, port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw bad(`${name} must be an integer in 0..65535, got ${port}`);
  return port;
}

function checkHostPort(addr: string): string {
  const m = /^(.+):(\d{1,5})$/.exec(addr);
  if (!m || Number(m[2]) > 65535 || Number(m[2]) === 0) throw bad(`management address must be HOST:PORT, got '${addr}'`);
  return addr;
}

/** Fills defaults and validates; throws FLYFS_ERR_BAD_CONFIG with a clear message. */
export function resolveStorageServerConfig(input: StorageServerConfigInput): StorageServerConfig {
  if (!input.dataDir) throw bad('--data DIR is required');
  const dataDir = resolve(input.dataDir);
  if (input.mgmtAddresses.length === 0) throw bad('--mgmt HOST:PORT is required');
  const mgmtAddresses = input.mgmtAddresses.map(checkHostPort);
  let targets: string[];
  if (input.targets !== undefined && input.targets.length > 0) {
    if (input.targetCount !== undefined && input.targetCount !== input.targets.length) {
      throw bad(`--targets ${input.targetCount} disagrees with ${input.targets.length} --target folders`);
    }
    targets = input.targets.map((t) => resolve(t));
  } else {
    const n = input.targetCount ?? 1;
    if (!Number.isInteger(n) || n < 1) throw bad(`--targets must be a positive integer, got ${n}`);
    targets = Array.from({ length: n }, (_, i) => join(dataDir, `target-${i}`));
  }
  if (targets.length > limits.targetsPerNodeMax) throw bad(`at most ${limits.targetsPerNodeMax} targets per node, got ${targets.length}`);
  if (new Set(targets).size !== targets.length) throw bad('target folders must be distinct');
  const ioEngine = (input.ioEngine ?? 'auto') as IoEngineChoice;
  if (!ioEngineChoices.includes(ioEngine)) throw bad(`ioEngine must be one of ${ioEngineChoices.join(', ')}, got '${input.ioEngine}'`);
  const craqTickMs = input.craqTickMs ?? limits.craqTickMsDefault;
  if (!Number.isSafeInteger(craqTickMs) || craqTickMs < 1) throw bad(`craqTickMs must be a positive integer, got ${input.craqTickMs}`);
  const scrubIntervalMs = input.scrubIntervalMs ?? 3_600_000;
  if (!Number.isSafeInteger(scrubIntervalMs) || scrubIntervalMs < 0) throw bad(`scrubIntervalMs must be a non-negative integer, got ${input.scrubIntervalMs}`);
  const diskFullRatio = input.diskFullRatio ?? 0.95;
  if (!(diskFullRatio > 0 && diskFullRatio <= 1)) throw bad(`diskFullRatio must be in (0, 1], got ${diskFullRatio}`);
  const host = input.host ?? '127.0.0.1';
  if (!host) throw bad('--host must not be empty');
  return {
    dataDir, targets, mgmtAddresses, host,
    grpcPort: checkPort('--port', input.grpcPort ?? 0),
    dataPort: checkPort('--data-port', input.dataPort ?? 0),
    httpPort: checkPort('--http-port', input.httpPort ?? 0),
    verifyChecksums: input.verifyChecksums ?? true,
    diskFullRatio,
    ioEngine,
    directIo: input.directIo ?? true,
    scrubIntervalMs,
    craqTickMs,
  };
}

function parseIntArg(flag: string, value: string): number {
  if (!/^\d+$/.test(value)) throw bad(`${flag} expects a non-negative integer, got '${value}'`);
  return Number(value);
}

/**
 * Parses `--data DIR --mgmt HOST:PORT[,HOST:PORT] [--targets N] [--target PATH]... [--host H]
 * [--port P] [--data-port P] [--http-port P] [--no-verify-checksums] [--disk-full-ratio R]
 * [--io-engine auto|io_uring|fs] [--no-direct-io] [--scrub-interval-ms MS]`.
 */
export function parseStorageServerArgs(argv: readonly string[]): StorageServerConfig {
  const input: StorageServerConfigInput = { dataDir: '', mgmtAddresses: [] };
  const targets: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--no-verify-checksums') { input.verifyChecksums = false; continue; }
    if (flag === '--no-direct-io') { input.directIo = false; continue; }
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('--')) throw bad(`${flag} expects a value`);
    i++;
    switch (flag) {
      case '--data': input.dataDir = value; break;
      case '--mgmt': input.mgmtAddresses.push(...value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)); break;
      case '--targets': input.targetCount = parseIntArg(flag, value); break;
      case '--target': targets.push(value); break;
      case '--host': input.host = value; break;
      case '--port': input.grpcPort = parseIntArg(flag, value); break;
      case '--data-port': input.dataPort = parseIntArg(flag, value); break;
      case '--http-port': input.httpPort = parseIntArg(flag, value); break;
      case '--disk-full-ratio': input.diskFullRatio = Number(value); break;
      case '--io-engine': input.ioEngine = value; break;
      case '--scrub-interval-ms': input.scrubIntervalMs = Number(value); break;
      case '--craq-tick-ms': input.craqTickMs = Number(value); break;
      default: throw bad(`unknown option '${flag}'`);
    }
  }
  if (targets.length > 0) input.targets = targets;
  return resolveStorageServerConfig(input);
}
