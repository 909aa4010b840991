// Writes a file front to back from many small appends: bytes gather in pieces of `pieceBytes`
// and each full piece is written at its position while the next fills, with at most `inflight`
// piece writes outstanding (backpressure: append waits when that many are running). Keeps the
// length and a running checksum of everything appended (zlib's CRC-32 unless told otherwise).
// Used by the dataset packer and by checkpoint saves of streams.
import { crc32 } from 'node:zlib';
import { assert } from '../common/errors.js';
import type { FileHandle } from './file-handle.js';

/** A running checksum: sum(b, sum(a)) is the checksum of a then b; 0 starts it. */
export type RunningChecksum = (bytes: Uint8Array, previous: number) => number;

export interface PieceWriterOptions {
  readonly pieceBytes: number;
  readonly inflight: number;
  readonly checksum?: RunningChecksum;
}

export const pieceWriterDefaults: PieceWriterOptions = { pieceBytes: 16 * 1024 * 1024, inflight: 4 };

export class PieceWriter {
  private piece: Buffer;
  private fill = 0;
  private position = 0;
  private crc = 0;
  private readonly running = new Set<Promise<unknown>>();
  private failure: unknown;
  private readonly sum: RunningChecksum;

  constructor(
    private readonly handle: FileHandle,
    private readonly o: PieceWriterOptions = pieceWriterDefaults,
  ) {
    assert(o.pieceBytes > 0 && o.inflight >= 1, 'piece writer bounds');
    this.piece = Buffer.allocUnsafe(o.pieceBytes);
    this.sum = o.checksum ?? ((b, prev) => crc32(b, prev));
  }

  /** Bytes appended so far (= the file's length once finished). */
  get length(): number { return this.position + this.fill; }
  get checksum(): number { return this.crc; }

  /** Appends `bytes`; the caller may reuse them once this resolves. */
  async append(bytes: Uint8Array): Promise<void> {
    this.crc = this.sum(bytes, this.crc);
    let off = 0;
    while (off < bytes.length) {
      const n = Math.min(bytes.length - off, this.piece.length - this.fill);
      this.piece.set(bytes.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      if (this.fill === this.piece.length) await this.writePiece();
    }
  }

  /** Writes what is left and waits for every write; throws the first write failure. */
  async finish(): Promise<void> {
    if (this.fill > 0) await this.writePiece();
    await Promise.all(this.running);
    if (this.failure !== undefined) throw this.failure;
  }

  private async writePiece(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    const piece = this.piece;
    const length = this.fill;
    const at = this.position;
    this.position += length;
    this.fill = 0;
    const p: Promise<unknown> = this.handle.write(piece, 0, length, at).then(
      () => { this.running.delete(p); },
      (err: unknown) => { this.running.delete(p); this.failure ??= err; },
    );
    this.running.add(p);
    this.piece = Buffer.allocUnsafe(this.o.pieceBytes);
    while (this.running.size >= this.o.inflight) await Promise.race(this.running);
    if (this.failure !== undefined) throw this.failure;
  }
}
