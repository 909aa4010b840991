// Baselines measured in the same run as a flyfs figure. They use sensible fast settings: a
// baseline is never slowed down to make flyfs look better.
import { once } from 'node:events';
import { open } from 'node:fs/promises';
import net from 'node:net';
import { assert } from '../common/errors.js';
import { timeMs } from './harness.js';

const MiB = 1024 * 1024;

/** TCP: 1 MiB writes, backpressure respected. */
export const tcpWriteBytes = 1 * MiB;
/** Local files: 4 MiB sequential writes and reads. */
export const fsIoBytes = 4 * MiB;

export interface StreamSource {
  /** Bytes to move in all. */
  totalBytes: number;
  /** The bytes, repeated (and cut short at the end) until totalBytes. */
  pattern: Uint8Array;
}

/** Yields views of pattern, each at most pieceBytes, covering totalBytes. */
export function* pieces(source: StreamSource, pieceBytes: number): Generator<Uint8Array> {
  assert(source.pattern.length > 0 && pieceBytes > 0, 'non-empty pattern and pieces');
  let left = source.totalBytes;
  let at = 0;
  while (left > 0) {
    const n = Math.min(pieceBytes, left, source.pattern.length - at);
    yield source.pattern.subarray(at, at + n);
    left -= n;
    at = (at + n) % source.pattern.length;
  }
}

/**
 * Streams the bytes over loopback TCP to a server in this process that counts them; returns the
 * milliseconds from the first write until the server has received the last byte.
 */
export async function tcpLoopbackStreamMs(source: StreamSource): Promise<number> {
  const server = net.createServer();
  let received = 0;
  let allReceived!: () => void;
  let failed!: (error: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    allReceived = resolve;
    failed = reject;
  });
  // Awaited below; this only keeps an early failure from counting as an unhandled rejection.
  done.catch(() => undefined);
  server.on('connection', (socket) => {
    socket.on('data', (data: Buffer) => {
      received += data.length;
      if (received >= source.totalBytes) allReceived();
    });
    socket.on('error', failed);
    socket.on('close', () => {
      if (received < source.totalBytes) failed(new Error(`tcp baseline: connection closed after ${received} of ${source.totalBytes} bytes`));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert(address !== null && typeof address === 'object', 'tcp server has an address');
  const client = net.connect({ host: '127.0.0.1', port: address.port });
  try {
    await once(client, 'connect');
    client.on('error', failed);
    const ms = await timeMs(async () => {
      for (const piece of pieces(source, tcpWriteBytes)) {
        if (!client.write(piece)) await Promise.race([once(client, 'drain'), done]);
      }
      client.end();
      await done;
    });
    assert(received === source.totalBytes, 'tcp baseline received every byte once');
    return ms;
  } finally {
    client.destroy();
    server.close();
  }
}

/** Writes the bytes to filePath in 4 MiB sequential writes, then fsyncs and closes; returns milliseconds. */
export async function fsWriteFsyncMs(filePath: string, source: StreamSource): Promise<number> {
  return timeMs(async () => {
    const fh = await open(filePath, 'w');
    try {
      let position = 0;
      for (const piece of pieces(source, fsIoBytes)) {
        const { bytesWritten } = await fh.write(piece, 0, piece.length, position);
        assert(bytesWritten === piece.length, 'fs baseline wrote the whole piece');
        position += piece.length;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}

/** Reads totalBytes of filePath in 4 MiB sequential reads; returns milliseconds. */
export async function fsReadMs(filePath: string, totalBytes: number): Promise<number> {
  const buffer = Buffer.allocUnsafe(fsIoBytes);
  return timeMs(async () => {
    const fh = await open(filePath, 'r');
    try {
      let position = 0;
      while (position < totalBytes) {
        const want = Math.min(fsIoBytes, totalBytes - position);
        const { bytesRead } = await fh.read(buffer, 0, want, position);
        if (bytesRead === 0) throw new Error(`fs baseline: file ended at ${position} of ${totalBytes} bytes`);
        position += bytesRead;
      }
    } finally {
      await fh.close();
    }
  });
}
