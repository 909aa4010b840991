// Stats and Dirent objects shaped like node:fs's, built from flyfs inode attributes.
import { constants } from 'node:fs';
import type { InodeAttrs, InodeKind } from './metadata-client.js';

function typeBits(kind: InodeKind): number {
  switch (kind) {
    case 'directory': return constants.S_IFDIR;
    case 'symlink': return constants.S_IFLNK;
    default: return constants.S_IFREG;
  }
}

/** The type predicates node:fs's Stats and Dirent share. */
class TypedEntry {
  constructor(protected readonly kind: InodeKind) {}
  isFile(): boolean { return this.kind === 'file'; }
  isDirectory(): boolean { return this.kind === 'directory'; }
  isSymbolicLink(): boolean { return this.kind === 'symlink'; }
  isBlockDevice(): boolean { return false; }
  isCharacterDevice(): boolean { return false; }
  isFIFO(): boolean { return false; }
  isSocket(): boolean { return false; }
}

export class FlyfsStats extends TypedEntry {
  readonly dev = 0;
  readonly ino: number;
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly rdev = 0;
  readonly size: number;
  readonly blksize: number;
  readonly blocks: number;
  readonly atimeMs: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly birthtimeMs: number;
  readonly atime: Date;
  readonly mtime: Date;
  readonly ctime: Date;
  readonly birthtime: Date;
  constructor(a: InodeAttrs) {
    super(a.kind);
    this.ino = a.inodeId;
    this.mode = typeBits(a.kind) | (a.mode & 0o7777);
    this.nlink = a.nlink;
    this.uid = a.uid;
    this.gid = a.gid;
    this.size = a.length;
    this.blksize = a.layout?.chunkSizeBytes ?? 4096;
    this.blocks = Math.ceil(a.length / 512);
    this.atimeMs = a.atimeMs;
    this.mtimeMs = a.mtimeMs;
    this.ctimeMs = a.ctimeMs;
    this.birthtimeMs = a.birthtimeMs;
    this.atime = new Date(a.atimeMs);
    this.mtime = new Date(a.mtimeMs);
    this.ctime = new Date(a.ctimeMs);
    this.birthtime = new Date(a.birthtimeMs);
  }
}

export class FlyfsDirent extends TypedEntry {
  constructor(readonly name: string, readonly parentPath: string, kind: InodeKind) { super(kind); }
  /** Node 20 still offers `path` beside `parentPath`. */
  get path(): string { return this.parentPath; }
}
