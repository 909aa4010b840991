// Fault-test helpers for CRAQ storage chains: verifiable block content, a bounded load of
// writers and readers over whole chunk-aligned blocks, and the model that checks every read
// and says what each block must hold afterwards.
//
// Each write rewrites one whole block (one chunk) of its writer's file. Its bytes are derived
// from (seed, writer, block, writeNo): a 16-byte header (magic, writer, block, writeNo) and a
// seeded body, so any 64 KiB read tells which write it claims to be and whether it is exactly
// that write (a torn or mixed block fails the comparison).
import type { FileHandle } from '../../../client/index.js';
import { seededBytes } from '../../helpers/cluster.js';

export const blockMagic = 0x51415243; // 'CRAQ'
export const headerBytes = 16;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** mulberry32: a small seeded generator for the load's choices. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mix(seed: number, writer: number, block: number, writeNo: number): number {
  let h = Math.imul(seed ^ 0x9e3779b1, 0x85ebca6b);
  h = Math.imul(h ^ (writer + 1), 0xc2b2ae35) ^ (h >>> 13);
  h = Math.imul(h ^ (block + 1), 0x27d4eb2f) ^ (h >>> 16);
  h = Math.imul(h ^ (writeNo + 1), 0x165667b1) ^ (h >>> 15);
  return (h >>> 0) || 1;
}

/** The exact bytes of write `writeNo` of `writer` to `block`. */
export function blockContent(seed: number, writer: number, block: number, writeNo: number, blockSize: number): Buffer {
  const buf = Buffer.allocUnsafe(blockSize);
  buf.writeUInt32LE(blockMagic, 0);
  buf.writeUInt32LE(writer, 4);
  buf.writeUInt32LE(block, 8);
  buf.writeUInt32LE(writeNo, 12);
  seededBytes(mix(seed, writer, block, writeNo), blockSize - headerBytes).copy(buf, headerBytes);
  return buf;
}

/** What a block's bytes claim to be, and whether they are exactly that write. */
export function decodeBlock(seed: number, bytes: Buffer, blockSize: number): { writer: number; block: number; writeNo: number; exact: boolean } | undefined {
  if (bytes.length !== blockSize || bytes.readUInt32LE(0) !== blockMagic) return undefined;
  const writer = bytes.readUInt32LE(4);
  const block = bytes.readUInt32LE(8);
  const writeNo = bytes.readUInt32LE(12);
  const exact = bytes.equals(blockContent(seed, writer, block, writeNo, blockSize));
  return { writer, block, writeNo, exact };
}

/** One writer's file, as the test knows it: every write sent, acknowledged or failed. */
export class FileModel {
  /** Per block: every writeNo ever sent to it (acknowledged, failed or in flight). */
  readonly issued: Array<Set<number>>;
  /** Per block: the last acknowledged writeNo (writes of one writer are sequential). */
  readonly lastAcked: number[];
  /** Per block: writes that failed (outcome unknown), sent after lastAcked. */
  readonly unknownAfterAck: Array<Set<number>>;
  /** Per block: the write in flight now, if any. */
  readonly inFlight: Array<number | undefined>;

  constructor(readonly writer: number, readonly path: string, readonly blocks: number) {
    this.issued = Array.from({ length: blocks }, () => new Set([0]));
    this.lastAcked = Array.from({ length: blocks }, () => 0);
    this.unknownAfterAck = Array.from({ length: blocks }, () => new Set<number>());
    this.inFlight = Array.from({ length: blocks }, () => undefined);
  }

  /** The writes a block may hold once no write is in flight: the last acknowledged one, or a failed one sent after it. */
  allowedFinal(block: number): number[] {
    return [this.lastAcked[block]!, ...[...this.unknownAfterAck[block]!].sort((a, b) => a - b)];
  }
}

export interface LoadCounts {
  writesSent: number;
  writesAcked: number;
  writesFailed: number;
  readsChecked: number;
  readsFailed: number;
}

export interface AckRecord { sentAt: number; ackedAt: number }

export interface LoadOptions {
  seed: number;
  blockSize: number;
  files: FileModel[];
  /** One write handle per file (index = writer). */
  writeHandles: FileHandle[];
  /** The readers' handles: readHandles[r][w] reads file w. */
  readHandles: FileHandle[][];
  writesMaxPerWriter: number;
  readsMaxPerReader: number;
  timeBoundMs: number;
  writePauseMs: number;
  readPauseMs: number;
  /** Writes numbered from here on (per writer), so a new load never reuses a number. */
  nextWriteNo: number[];
}

/**
 * A bounded run of writers and readers. stop() ends every loop after its current operation
 * and resolves once all of them returned. Violations (a read that is not exactly one write of
 * that block, or goes back below what was acknowledged before it began) are collected.
 */
export class CraqLoad {
  readonly counts: LoadCounts = { writesSent: 0, writesAcked: 0, writesFailed: 0, readsChecked: 0, readsFailed: 0 };
  readonly acks: AckRecord[] = [];
  readonly violations: string[] = [];
  readonly errors = new Map<string, number>();
  private stopped = false;
  private readonly done: Promise<void>;
  readonly startedAt = Date.now();

  constructor(private readonly o: LoadOptions) {
    const loops = [
      ...o.files.map((f, w) => this.writer(f, w)),
      ...o.readHandles.map((hs, r) => this.reader(hs, r)),
    ];
    this.done = Promise.all(loops).then(() => undefined);
    // A loop that throws is a bug in the test; stop the rest so stop() returns promptly.
    this.done.catch(() => { this.stopped = true; });
  }

  private running(i: number, max: number): boolean {
    return !this.stopped && i < max && Date.now() - this.startedAt < this.o.timeBoundMs;
  }

  private noteError(kind: string, err: unknown): void {
    const code = `${kind}:${(err as { code?: string }).code ?? (err as Error).message ?? String(err)}`;
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  private async writer(f: FileModel, w: number): Promise<void> {
    const pick = rng(this.o.seed * 7919 + w * 104729 + this.o.nextWriteNo[w]!);
    const fh = this.o.writeHandles[w]!;
    for (let i = 0; this.running(i, this.o.writesMaxPerWriter); i++) {
      const block = Math.floor(pick() * f.blocks);
      const writeNo = this.o.nextWriteNo[w]!++;
      const bytes = blockContent(this.o.seed, w, block, writeNo, this.o.blockSize);
      f.issued[block]!.add(writeNo);
      f.inFlight[block] = writeNo;
      this.counts.writesSent++;
      const sentAt = Date.now();
      try {
        const r = await fh.write(bytes, 0, bytes.length, block * this.o.blockSize);
        if (r.bytesWritten !== bytes.length) throw new Error(`short write ${r.bytesWritten}`);
        f.lastAcked[block] = writeNo;
        f.unknownAfterAck[block]!.clear();
        this.counts.writesAcked++;
        this.acks.push({ sentAt, ackedAt: Date.now() });
      } catch (err) {
        f.unknownAfterAck[block]!.add(writeNo);
        this.counts.writesFailed++;
        this.noteError('write', err);
      } finally {
        f.inFlight[block] = undefined;
      }
      await sleep(this.o.writePauseMs);
    }
  }

  private async reader(handles: FileHandle[], r: number): Promise<void> {
    const pick = rng(this.o.seed * 31337 + r * 65599 + this.o.nextWriteNo[0]!);
    const buf = Buffer.allocUnsafe(this.o.blockSize);
    for (let i = 0; this.running(i, this.o.readsMaxPerReader); i++) {
      const w = Math.floor(pick() * this.o.files.length);
      const f = this.o.files[w]!;
      const block = Math.floor(pick() * f.blocks);
      const floor = f.lastAcked[block]!;
      const startedAt = Date.now() - this.startedAt;
      try {
        const { bytesRead } = await handles[w]!.read(buf, 0, buf.length, block * this.o.blockSize);
        const where = `reader ${r}: ${f.path} block ${block} (read began at +${startedAt} ms, acked floor ${floor})`;
        if (bytesRead !== buf.length) {
          this.violations.push(`${where}: read ${bytesRead} bytes, want ${buf.length}`);
        } else {
          const d = decodeBlock(this.o.seed, buf, this.o.blockSize);
          if (!d) this.violations.push(`${where}: no block header (bytes ${buf.subarray(0, 16).toString('hex')})`);
          else if (!d.exact) this.violations.push(`${where}: torn or mixed block (header says writer ${d.writer} block ${d.block} write ${d.writeNo})`);
          else if (d.writer !== w || d.block !== block) this.violations.push(`${where}: holds writer ${d.writer} block ${d.block} write ${d.writeNo}`);
          else if (!f.issued[block]!.has(d.writeNo)) this.violations.push(`${where}: write ${d.writeNo} was never sent to this block`);
          else if (d.writeNo < floor) this.violations.push(`${where}: went back to write ${d.writeNo}, below acknowledged ${floor}`);
          this.counts.readsChecked++;
        }
      } catch (err) {
        this.counts.readsFailed++;
        this.noteError('read', err);
      }
      await sleep(this.o.readPauseMs);
    }
  }

  /** Writes sent after `from` and acknowledged before `to`. */
  ackedWithin(from: number, to: number): number {
    return this.acks.filter((a) => a.sentAt >= from && a.ackedAt <= to).length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}
