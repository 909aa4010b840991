// The CLI's file commands over the client SDK: ls, cp, cat, mkdir, mv, rm, stat.
// A flyfs path is written `flyfs:/dir/file` (cp) or as a plain absolute path (the others).
import { open as openLocal, stat as statLocal } from 'node:fs/promises';
import { resolve } from 'node:path';
import { connect, type FileSystem } from '../../client/index.js';
import { flyfsError } from '../../common/errors.js';
import { flag, boolFlag, parseArgs, type ParsedArgs } from '../args.js';
import { resolveClusterAddress } from '../cluster-address.js';
import { Progress, formatBytes } from '../progress.js';

/** Bytes one copy step moves; two steps overlap (read of the next, write of this one). */
const copyPieceBytes = 16 * 1024 * 1024;
/** Files at least this large get a progress bar. */
const progressBytesMin = 8 * 1024 * 1024;

export const FLYFS_PREFIX = 'flyfs:';

export function flyfsPath(p: string): string {
  const rest = p.startsWith(FLYFS_PREFIX) ? p.slice(FLYFS_PREFIX.length) : p;
  return rest.startsWith('/') ? rest : '/' + rest;
}

export async function withFs<T>(args: ParsedArgs, fn: (fs: FileSystem) => Promise<T>): Promise<T> {
  const address = await resolveClusterAddress({ cluster: flag(args, 'cluster'), dataDir: flag(args, 'data') });
  const fs = await connect(address);
  try {
    return await fn(fs);
  } finally {
    await fs.close();
  }
}

function need(args: ParsedArgs, n: number, usage: string): string[] {
  if (args.positionals.length < n) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `usage: ${usage}`);
  return args.positionals;
}

export async function lsCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['l', 'json']);
  const path = flyfsPath(args.positionals[0] ?? '/');
  return withFs(args, async (fs) => {
    const st = await fs.stat(path);
    const entries = st.isDirectory()
      ? await fs.readdir(path, { withFileTypes: true })
      : [{ name: path.slice(path.lastIndexOf('/') + 1), isDirectory: () => false }];
    const long = boolFlag(args, 'l');
    const rows: string[] = [];
    for (const e of entries) {
      if (!long) { rows.push(e.name + (e.isDirectory() ? '/' : '')); continue; }
      const full = st.isDirectory() ? `${path.replace(/\/$/, '')}/${e.name}` : path;
      const s = await fs.stat(full);
      rows.push(`${s.isDirectory() ? 'd' : '-'} ${String(s.size).padStart(14)} ${s.mtime.toISOString()} ${e.name}${s.isDirectory() ? '/' : ''}`);
    }
    if (rows.length) process.stdout.write(rows.join('\n') + '\n');
    return 0;
  });
}

interface Readable { read(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> }
interface Writable { write(buf: Buffer, offset: number, length: number, position: number): Promise<unknown> }

/** Copies `size` bytes in pieces, reading the next piece while the previous one is written. */
async function pump(src: Readable, dst: Writable, size: number, progress: Progress | undefined): Promise<number> {
  let pos = 0;
  let writing: Promise<unknown> = Promise.resolve();
  const bufs = [Buffer.allocUnsafe(copyPieceBytes), Buffer.allocUnsafe(copyPieceBytes)];
  for (let i = 0; pos < size; i++) {
    const buf = bufs[i % 2]!;
    const { bytesRead } = await src.read(buf, 0, Math.min(copyPieceBytes, size - pos), pos);
    if (bytesRead === 0) break;
    await writing;
    const at = pos;
    writing = dst.write(buf, 0, bytesRead, at).then(() => progress?.update(at + bytesRead));
    pos += bytesRead;
  }
  await writing;
  progress?.done(pos);
  return pos;
}

const progressFor = (label: string, size: number): Progress | undefined =>
  size >= progressBytesMin ? new Progress(label, size) : undefined;

async function copyIn(fs: FileSystem, local: string, remote: string): Promise<number> {
  const src = await openLocal(local, 'r');
  try {
    const size = (await src.stat()).size;
    const dst = await fs.open(remote, 'w');
    try {
      const n = await pump(src, dst, size, progressFor(`cp ${local}`, size));
      await dst.close();
      return n;
    } catch (err) {
      await dst.close().catch(() => undefined);
      throw err;
    }
  } finally {
    await src.close();
  }
}

async function copyOut(fs: FileSystem, remote: string, local: string): Promise<number> {
  const src = await fs.open(remote, 'r');
  try {
    const size = (await src.stat()).size;
    const dst = await openLocal(local, 'w');
    try {
      const n = await pump(src, dst, size, progressFor(`cp ${remote}`, size));
      await dst.sync();
      return n;
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}

export async function cpCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const [from, to] = need(args, 2, 'flyfs cp SRC DST (one side written flyfs:/path)') as [string, string];
  const fromRemote = from.startsWith(FLYFS_PREFIX);
  const toRemote = to.startsWith(FLYFS_PREFIX);
  if (fromRemote === toRemote) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'exactly one side of cp must be flyfs:/path');
  return withFs(args, async (fs) => {
    if (toRemote) {
      let remote = flyfsPath(to);
      const isDir = await fs.stat(remote).then((s) => s.isDirectory(), () => false);
      if (isDir || remote.endsWith('/')) remote = `${remote.replace(/\/$/, '')}/${from.slice(from.lastIndexOf('/') + 1)}`;
      await copyIn(fs, resolve(from), remote);
    } else {
      let local = resolve(to);
      const isDir = await statLocal(local).then((s) => s.isDirectory(), () => false);
      const remote = flyfsPath(from);
      if (isDir) local = `${local}/${remote.slice(remote.lastIndexOf('/') + 1)}`;
      await copyOut(fs, remote, local);
    }
    return 0;
  });
}

export async function catCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const paths = need(args, 1, 'flyfs cat PATH...');
  return withFs(args, async (fs) => {
    for (const p of paths) {
      const h = await fs.open(flyfsPath(p), 'r');
      try {
        const buf = Buffer.allocUnsafe(copyPieceBytes);
        for (let pos = 0; ;) {
          const { bytesRead } = await h.read(buf, 0, buf.byteLength, pos);
          if (bytesRead === 0) break;
          pos += bytesRead;
          if (!process.stdout.write(buf.subarray(0, bytesRead))) await new Promise((r) => process.stdout.once('drain', r));
        }
      } finally {
        await h.close();
      }
    }
    return 0;
  });
}

export async function mkdirCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['p', 'parents']);
  const paths = need(args, 1, 'flyfs mkdir [-p] PATH...');
  const chunk = flag(args, 'chunk-size');
  const stripe = flag(args, 'stripe');
  return withFs(args, async (fs) => {
    for (const p of paths) {
      await fs.mkdir(flyfsPath(p), {
        recursive: boolFlag(args, 'p', 'parents'),
        ...(chunk === undefined ? {} : { chunkSizeBytes: Number(chunk) }),
        ...(stripe === undefined ? {} : { stripe: Number(stripe) }),
      });
    }
    return 0;
  });
}

export async function mvCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const [from, to] = need(args, 2, 'flyfs mv FROM TO') as [string, string];
  return withFs(args, async (fs) => { await fs.rename(flyfsPath(from), flyfsPath(to)); return 0; });
}

async function removeTree(fs: FileSystem, path: string): Promise<void> {
  const st = await fs.stat(path);
  if (!st.isDirectory()) { await fs.unlink(path); return; }
  for (const e of await fs.readdir(path)) await removeTree(fs, `${path.replace(/\/$/, '')}/${e}`);
  if (path !== '/') await fs.rmdir(path);
}

export async function rmCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['r', 'R', 'recursive', 'f', 'force']);
  const paths = need(args, 1, 'flyfs rm [-r] [-f] PATH...');
  const recursive = boolFlag(args, 'r', 'R', 'recursive');
  const force = boolFlag(args, 'f', 'force');
  return withFs(args, async (fs) => {
    for (const p of paths) {
      const path = flyfsPath(p);
      try {
        if (recursive) await removeTree(fs, path);
        else await fs.unlink(path);
      } catch (err) {
        if (force && (err as { code?: string }).code === 'ENOENT') continue;
        throw err;
      }
    }
    return 0;
  });
}

export async function statCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['json']);
  const paths = need(args, 1, 'flyfs stat PATH...');
  return withFs(args, async (fs) => {
    for (const p of paths) {
      const s = await fs.stat(flyfsPath(p));
      const view = {
        path: flyfsPath(p), type: s.isDirectory() ? 'directory' : s.isSymbolicLink() ? 'symlink' : 'file',
        size: s.size, ino: s.ino, mode: '0' + (s.mode & 0o7777).toString(8), nlink: s.nlink, blksize: s.blksize,
        mtime: s.mtime.toISOString(), ctime: s.ctime.toISOString(),
      };
      if (boolFlag(args, 'json')) process.stdout.write(JSON.stringify(view) + '\n');
      else process.stdout.write(Object.entries(view).map(([k, v]) => `${k.padEnd(8)} ${k === 'size' ? `${v} (${formatBytes(Number(v))})` : v}`).join('\n') + '\n');
    }
    return 0;
  });
}
