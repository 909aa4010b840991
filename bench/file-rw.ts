// file-rw: write then read one large file through the client against a local `flyfs up` cluster,
// against a loopback TCP stream of the same bytes and the same bytes through node:fs.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { connect } from '../client/index.js';
import { startLocalCluster } from '../tools/local-cluster.js';
import { fsReadMs, fsWriteFsyncMs, tcpLoopbackStreamMs, type StreamSource } from './baselines.js';
import { figure, formatBytes, measured, throughputGBps, timeMs, unitGBps, type BenchContext, type Figure } from './harness.js';

const MiB = 1024 * 1024;

/** Bytes of one client write or read; the client spreads one call over its chunks. */
export const fileRwPieceBytes = 64 * MiB;
/**
 * Every stampEveryBytes of the file starts with its own offset (u64 LE), so that a piece read
 * from the wrong place fails the checksum even though every piece comes from one buffer.
 */
const stampEveryBytes = 1 * MiB;
const stampBytes = 8;

type FileSystem = Awaited<ReturnType<typeof connect>>;

interface Piece {
  position: number;
  bytes: Uint8Array;
}

/** The file's content piece by piece: the pattern, stamped with each piece's offsets in place. */
function* stampedPieces(pattern: Buffer, totalBytes: number): Generator<Piece> {
  for (let position = 0; position < totalBytes; position += pattern.length) {
    const n = Math.min(pattern.length, totalBytes - position);
    for (let k = 0; k + stampBytes <= n; k += stampEveryBytes) pattern.writeBigUInt64LE(BigInt(position + k), k);
    yield { position, bytes: pattern.subarray(0, n) };
  }
}

function expectedDigest(pattern: Buffer, totalBytes: number): string {
  const hash = createHash('sha256');
  for (const piece of stampedPieces(pattern, totalBytes)) hash.update(piece.bytes);
  return hash.digest('hex');
}

/** Open, every write and the close: the write is done when the close is. */
async function flyfsWriteMs(fs: FileSystem, filePath: string, pattern: Buffer, totalBytes: number): Promise<number> {
  return timeMs(async () => {
    const fh = await fs.open(filePath, 'w');
    try {
      for (const piece of stampedPieces(pattern, totalBytes)) {
        const { bytesWritten } = await fh.write(piece.bytes, 0, piece.bytes.length, piece.position);
        if (bytesWritten !== piece.bytes.length) throw new Error(`file-rw: short write at ${piece.position}: ${bytesWritten} of ${piece.bytes.length}`);
      }
    } finally {
      await fh.close();
    }
  });
}

/**
 * Reads the file back in pieces and checks its sha256. The clock runs over the open, the reads
 * and the close only; hashing happens between reads, when nothing is in flight.
 */
async function flyfsReadVerifiedMs(fs: FileSystem, filePath: string, totalBytes: number, digest: string): Promise<number> {
  const buffer = Buffer.allocUnsafe(Math.min(fileRwPieceBytes, totalBytes));
  const hash = createHash('sha256');
  const openStart = process.hrtime.bigint();
  const fh = await fs.open(filePath, 'r');
  let elapsedMs = msSince(openStart);
  try {
    for (let position = 0; position < totalBytes; ) {
      const want = Math.min(buffer.length, totalBytes - position);
      const readStart = process.hrtime.bigint();
      for (let got = 0; got < want; ) {
        const { bytesRead } = await fh.read(buffer, got, want - got, position + got);
        if (bytesRead === 0) throw new Error(`file-rw: file ended at ${position + got} of ${totalBytes} bytes`);
        got += bytesRead;
      }
      elapsedMs += msSince(readStart);
      hash.update(buffer.subarray(0, want));
      position += want;
    }
    const { bytesRead: past } = await fh.read(buffer, 0, 1, totalBytes);
    if (past !== 0) throw new Error(`file-rw: file is longer than the ${totalBytes} bytes written`);
  } finally {
    const closeStart = process.hrtime.bigint();
    await fh.close();
    elapsedMs += msSince(closeStart);
  }
  const got = hash.digest('hex');
  if (got !== digest) throw new Error(`file-rw: read back wrong bytes (sha256 ${got}, wrote ${digest})`);
  return elapsedMs;
}

function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

interface Cleanup {
  label: string;
  fn: () => Promise<void>;
}

/** Runs cleanups last-in first-out; a failing one is logged and the rest still run. */
async function runCleanups(cleanups: Cleanup[], log: (message: string) => void): Promise<void> {
  for (let c = cleanups.pop(); c !== undefined; c = cleanups.pop()) {
    try {
      await c.fn();
    } catch (error) {
      log(`file-rw: cleanup "${c.label}" failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}

/** The file-rw benchmark (registered in bench/index.ts); ctx.sizeBytes is the file size. */
export async function runFileRw(ctx: BenchContext): Promise<Figure[]> {
  const totalBytes = ctx.sizeBytes;
  const cleanups: Cleanup[] = [];
  // Ctrl-C or SIGTERM mid-run still stops the cluster and removes the temp folder.
  const onSignal = (signal: NodeJS.Signals): void => {
    ctx.log(`file-rw: ${signal}, cleaning up`);
    void runCleanups(cleanups, ctx.log).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'flyfs-bench-file-rw-'));
    cleanups.push({ label: `remove ${tmp}`, fn: () => rm(tmp, { recursive: true, force: true }) });

    ctx.log(`file-rw: ${formatBytes(totalBytes)}, ${ctx.runs} runs, temp folder ${tmp}`);
    const cluster = await startLocalCluster({ dataDir: path.join(tmp, 'cluster'), logDir: path.join(tmp, 'logs'), host: '127.0.0.1' });
    cleanups.push({ label: 'stop cluster', fn: () => cluster.stop() });
    ctx.log(`file-rw: cluster up at ${cluster.clusterAddress} (${cluster.nodes.map((n) => n.role).join(', ')})`);
    const fs = await connect(cluster.clusterAddress);
    cleanups.push({ label: 'close client', fn: () => fs.close() });

    const pattern = randomBytes(Math.min(fileRwPieceBytes, totalBytes));
    const digest = expectedDigest(pattern, totalBytes);
    const source: StreamSource = { totalBytes, pattern };
    const localFile = path.join(tmp, 'node-fs-baseline.bin');
    const gbps = (ms: number): number => throughputGBps(totalBytes, ms);

    const flyfsWrite: number[] = [];
    const flyfsRead: number[] = [];
    const tcp: number[] = [];
    const fsWrite: number[] = [];
    const fsRead: number[] = [];
    // Runs interleave so that each figure and its baselines see the same noise on a shared machine.
    for (let r = 0; r < ctx.runs; r++) {
      const flyfsPath = `/bench-file-rw-${r}.bin`;
      flyfsWrite.push(gbps(await flyfsWriteMs(fs, flyfsPath, pattern, totalBytes)));
      flyfsRead.push(gbps(await flyfsReadVerifiedMs(fs, flyfsPath, totalBytes, digest)));
      await fs.unlink(flyfsPath);
      tcp.push(gbps(await tcpLoopbackStreamMs(source)));
      fsWrite.push(gbps(await fsWriteFsyncMs(localFile, source)));
      fsRead.push(gbps(await fsReadMs(localFile, totalBytes)));
      await rm(localFile, { force: true });
      ctx.log(
        `file-rw: run ${r + 1}/${ctx.runs} GB/s: flyfs write ${flyfsWrite[r]?.toFixed(3)}, flyfs read ${flyfsRead[r]?.toFixed(3)}, ` +
          `tcp ${tcp[r]?.toFixed(3)}, fs write+fsync ${fsWrite[r]?.toFixed(3)}, fs read ${fsRead[r]?.toFixed(3)}`,
      );
    }

    const tcpBaseline = measured(tcp);
    return [
      figure('flyfs write', unitGBps, measured(flyfsWrite), 'tcp loopback stream', tcpBaseline),
      figure('flyfs write', unitGBps, measured(flyfsWrite), 'node:fs write+fsync', measured(fsWrite)),
      figure('flyfs read', unitGBps, measured(flyfsRead), 'tcp loopback stream', tcpBaseline),
      figure('flyfs read', unitGBps, measured(flyfsRead), 'node:fs read', measured(fsRead)),
    ];
  } finally {
    await runCleanups(cleanups, ctx.log);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
