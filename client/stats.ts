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

export class FlyfsStats {
  readonly dev = 0;
  readonly ino: number;
  readonly mode: number;
  readonly nlink: number;
  readonly uid = 0;
  readonly gid = 0;
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
  private readonly kind: InodeKind;

  constructor(a: InodeAttrs) {
    this.kind = a.kind;
    this.ino = a.inodeId;
    this.mode = typeBits(a.kind) | (a.mode & 0o7777);
    this.nlink = a.nlink;
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

  isFile(): boolean { return this.kind === 'file'; }
  isDirectory(): boolean { return this.kind === 'directory'; }
  isSymbolicLink(): boolean { return this.kind === 'symlink'; }
  isBlockDevice(): boolean { return false; }
  isCharacterDevice(): boolean { return false; }
  isFIFO(): boolean { return false; }
  isSocket(): boolean { return false; }
}

export class FlyfsDirent {
  constructor(readonly name: string, readonly parentPath: string, private readonly kind: InodeKind) {}
  /** Node 20 still offers `path` beside `parentPath`. */
  get path(): string { return this.parentPath; }
  isFile(): boolean { return this.kind === 'file'; }
  isDirectory(): boolean { return this.kind === 'directory'; }
  isSymbolicLink(): boolean { return this.kind === 'symlink'; }
  isBlockDevice(): boolean { return false; }
  isCharacterDevice(): boolean { return false; }
  isFIFO(): boolean { return false; }
  isSocket(): boolean { return false; }
}
