// Conformance: each scenario runs against node:fs/promises on a temporary folder AND against
// flyfs (SDK over a real local cluster); what they observe (values and error codes) must match.
import { createHash } from 'node:crypto';
import * as nodeFs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileSystem } from '../../client/index.js';
import { connect } from '../../client/index.js';
import { seededBytes, startTestCluster, tempDir } from '../helpers/cluster.js';

type Fs = typeof nodeFs;
/** A scenario's view: the file system, a path maker inside the scenario's own folder, and a prefix stripper for link targets. */
interface Ctx { fs: Fs; p: (rel: string) => string; rel: (abs: string) => string }
interface Scenario { name: string; run: (c: Ctx) => Promise<unknown> }

async function code(p: Promise<unknown>): Promise<string> {
  try { await p; return 'ok'; } catch (e) { return (e as { code?: string }).code ?? String(e); }
}
const kindOf = (s: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): string =>
  s.isSymbolicLink() ? 'symlink' : s.isDirectory() ? 'dir' : s.isFile() ? 'file' : 'other';
async function look(fs: Fs, path: string, how: 'stat' | 'lstat' = 'stat'): Promise<unknown> {
  try {
    const s = await fs[how](path);
    return { kind: kindOf(s), size: s.isDirectory() ? undefined : s.size, nlink: s.isDirectory() ? undefined : s.nlink };
  } catch (e) { return (e as { code?: string }).code; }
}
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex').slice(0, 16);

const big = seededBytes(7, 10_000);

const scenarios: Scenario[] = [
  // ---- readv/writev and streams on a handle ----
  { name: 'writev then readv: positions, a short read at EOF, the handle position moves', run: async ({ fs, p }) => {
    const fh = await fs.open(p('f'), 'w+');
    const w1 = await fh.writev([Buffer.from('abc'), big.subarray(0, 5000), Buffer.from('xyz')], 10);
    const w2 = await fh.writev([Buffer.from('tail')]);
    const bufs = [Buffer.alloc(7), Buffer.alloc(4000), Buffer.alloc(9000)];
    const r1 = await fh.readv(bufs, 0);
    const r2 = await fh.readv([Buffer.alloc(3)], 5016);
    await fh.close();
    return [w1.bytesWritten, w2.bytesWritten, r1.bytesRead, sha(Buffer.concat(bufs)), r2.bytesRead, await look(fs, p('f'))];
  } },
  { name: 'read stream with start, end and highWaterMark: the same chunks and bytes', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), big);
    const runs: unknown[] = [];
    for (const o of [{ highWaterMark: 1000 }, { start: 123, end: 4567, highWaterMark: 1500 }, { start: 9_990 }, { start: 20_000 }]) {
      const fh = await fs.open(p('f'), 'r');
      const chunks: Buffer[] = [];
      for await (const c of fh.createReadStream(o)) chunks.push(c as Buffer);
      runs.push([chunks.map((c) => c.length), sha(Buffer.concat(chunks))]);
    }
    return runs;
  } },
  { name: 'write stream with backpressure from a piped source, at a start offset', run: async ({ fs, p }) => {
    const { Readable } = await import('node:stream');
    const { pipeline } = await import('node:stream/promises');
    await fs.writeFile(p('f'), '0123456789');
    const fh = await fs.open(p('f'), 'r+');
    const parts = Array.from({ length: 40 }, (_, i) => big.subarray(i * 200, i * 200 + 137));
    await pipeline(Readable.from(parts), fh.createWriteStream({ start: 4, highWaterMark: 512 }));
    return [await look(fs, p('f')), sha(await fs.readFile(p('f')) as Buffer)];
  } },
  // Node 20 descends into symlinked directories here (and can loop); flyfs lists a symlink and
  // does not follow it, so the scenario has none.
  { name: 'readdir recursive: every path below, with and without types', run: async ({ fs, p, rel }) => {
    await fs.mkdir(p('a/b/c'), { recursive: true });
    await fs.writeFile(p('a/f1'), '1');
    await fs.writeFile(p('a/b/c/f2'), '2');
    await fs.mkdir(p('e'));
    await fs.writeFile(p('e/f3'), '3');
    const names = (await fs.readdir(p(''), { recursive: true })).sort();
    const typed = (await fs.readdir(p(''), { recursive: true, withFileTypes: true }))
      .map((d) => `${rel(d.parentPath)}/${d.name}:${kindOf(d)}`).sort();
    return [names, typed, (await fs.readdir(p('a'), { recursive: true })).sort()];
  } },
  // ---- appends, sparse writes, edge offsets ----
  { name: 'appendFile creates, then appends; an "a" handle writes at the end whatever the position', run: async ({ fs, p }) => {
    await fs.appendFile(p('f'), 'one');
    await fs.appendFile(p('f'), big.subarray(0, 5000));
    const fh = await fs.open(p('f'), 'a');
    await fh.write(Buffer.from('END'), 0, 3, 0);
    await fh.close();
    const data = await fs.readFile(p('f')) as Buffer;
    return [data.length, sha(data), data.subarray(0, 3).toString(), data.subarray(-3).toString()];
  } },
  { name: 'a sparse write far past the end: size, zeros in the hole, bytes at the end', run: async ({ fs, p }) => {
    const fh = await fs.open(p('f'), 'w+');
    await fh.write(Buffer.from('head'), 0, 4, 0);
    await fh.write(big.subarray(0, 100), 0, 100, 50_000);
    const hole = Buffer.alloc(200);
    const r = await fh.read(hole, 0, 200, 10_000);
    const tail = Buffer.alloc(300);
    const t = await fh.read(tail, 0, 300, 49_950);
    await fh.close();
    return [await look(fs, p('f')), r.bytesRead, hole.every((x) => x === 0), t.bytesRead, sha(tail.subarray(0, t.bytesRead))];
  } },
  { name: 'reads at and past EOF, zero-length reads and writes, a read into a buffer offset', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), big.subarray(0, 4097));
    const fh = await fs.open(p('f'), 'r+');
    const b = Buffer.alloc(10, 0xaa);
    const out = [
      (await fh.read(b, 0, 10, 4097)).bytesRead, (await fh.read(b, 0, 10, 1_000_000)).bytesRead,
      (await fh.read(b, 0, 0, 0)).bytesRead, (await fh.write(Buffer.alloc(0), 0, 0, 100)).bytesWritten,
      (await fh.read(b, 6, 4, 4095)).bytesRead, b.toString('hex'),
    ];
    await fh.close();
    return [...out, await look(fs, p('f'))];
  } },
  { name: 'an aborted signal: readFile, writeFile and appendFile refuse with ABORT_ERR and touch nothing', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), 'kept');
    const signal = AbortSignal.abort();
    const names = async (e: Promise<unknown>): Promise<string> => { try { await e; return 'ok'; } catch (err) { return `${(err as Error).name}:${(err as { code?: string }).code}`; } };
    return [
      await names(fs.readFile(p('f'), { signal })), await names(fs.writeFile(p('f'), 'replaced', { signal })),
      await names(fs.writeFile(p('new'), 'x', { signal })), await names(fs.appendFile(p('f'), 'more', { signal } as { flag?: string })),
      await fs.readFile(p('f'), 'utf8'), await look(fs, p('new')),
    ];
  } },
  { name: 'an aborted signal on FileHandle readFile/writeFile and on read and write streams', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), 'kept');
    const signal = AbortSignal.abort();
    const names = async (e: Promise<unknown>): Promise<string> => { try { await e; return 'ok'; } catch (err) { return `${(err as Error).name}:${(err as { code?: string }).code}`; } };
    const fh = await fs.open(p('f'), 'r+');
    const out = [await names(fh.readFile({ signal })), await names(fh.writeFile('replaced', { signal }))];
    await fh.close();
    const streamErr = (s: NodeJS.EventEmitter): Promise<string> => new Promise((resolve) => s.once('error', (err: Error & { code?: string }) => resolve(`${err.name}:${err.code}`)));
    const rh = await fs.open(p('f'), 'r');
    const wh = await fs.open(p('g'), 'w');
    out.push(await streamErr(rh.createReadStream({ signal })), await streamErr(wh.createWriteStream({ signal })));
    await rh.close().catch(() => undefined);
    await wh.close().catch(() => undefined);
    return [...out, await fs.readFile(p('f'), 'utf8')];
  } },
  // ---- rm, access, copyFile ----
  { name: 'rm a file, a symlink (not its target) and a missing path with and without force', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), 'x');
    await fs.writeFile(p('t'), 'target');
    await fs.symlink('t', p('l'));
    return [await code(fs.rm(p('f'))), await code(fs.rm(p('l'))), await look(fs, p('t')), await code(fs.rm(p('f'))), await code(fs.rm(p('f'), { force: true })), await fs.readdir(p(''))];
  } },
  { name: 'rm a directory: refused without recursive, whole tree with it, links inside not followed', run: async ({ fs, p }) => {
    await fs.mkdir(p('keep'));
    await fs.writeFile(p('keep/k'), 'kept');
    await fs.mkdir(p('d/e/f'), { recursive: true });
    await fs.writeFile(p('d/a'), big);
    await fs.writeFile(p('d/e/b'), 'b');
    await fs.symlink('../keep', p('d/e/lk'));
    const refused = await code(fs.rm(p('d')));
    const empty = await code(fs.rm(p('d/e/f')));
    return [refused, empty, await code(fs.rm(p('d'), { recursive: true })), await look(fs, p('d')), await fs.readFile(p('keep/k'), 'utf8'), await code(fs.rm(p('d'), { recursive: true, force: true }))];
  } },
  { name: 'rm through a path whose parent is a file', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), 'x');
    return [await code(fs.rm(p('f/x'))), await code(fs.rm(p('f/x'), { force: true }))];
  } },
  { name: 'access: existing file, directory, symlink, dangling symlink, missing', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), 'x');
    await fs.mkdir(p('d'));
    await fs.symlink('f', p('l'));
    await fs.symlink('nope', p('dl'));
    return [await code(fs.access(p('f'))), await code(fs.access(p('d'))), await code(fs.access(p('l'))), await code(fs.access(p('dl'))), await code(fs.access(p('zz')))];
  } },
  { name: 'copyFile: bytes and size, replace, COPYFILE_EXCL, directories and missing sources', run: async ({ fs, p }) => {
    await fs.writeFile(p('src'), big);
    await fs.writeFile(p('old'), 'old contents that are longer than nothing');
    await fs.mkdir(p('d'));
    const r = [await code(fs.copyFile(p('src'), p('new'))), sha(await fs.readFile(p('new')) as Buffer), await look(fs, p('new'))];
    r.push(await code(fs.copyFile(p('src'), p('old'))), sha(await fs.readFile(p('old')) as Buffer));
    r.push(await code(fs.copyFile(p('src'), p('old'), nodeFs.constants.COPYFILE_EXCL)));
    r.push(await code(fs.copyFile(p('d'), p('c'))), await code(fs.copyFile(p('src'), p('d'))), await code(fs.copyFile(p('zz'), p('c'))), await look(fs, p('c')));
    return r;
  } },
  { name: 'copyFile of an empty file and through a symlink', run: async ({ fs, p }) => {
    await fs.writeFile(p('e'), '');
    await fs.writeFile(p('t'), 'via link');
    await fs.symlink('t', p('l'));
    await fs.copyFile(p('e'), p('e2'));
    await fs.copyFile(p('l'), p('c'));
    return [await look(fs, p('e2')), await fs.readFile(p('c'), 'utf8'), await look(fs, p('c'), 'lstat')];
  } },
  // ---- symlinks ----
  { name: 'symlink to a file: stat follows, lstat does not, readlink gives the target', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), 'hello');
    await fs.symlink('f', p('l'));
    return [await look(fs, p('l')), await look(fs, p('l'), 'lstat'), await fs.readlink(p('l')), await fs.readFile(p('l'), 'utf8')];
  } },
  { name: 'absolute symlink target', run: async ({ fs, p, rel }) => {
    await fs.writeFile(p('f'), 'abs');
    await fs.symlink(p('f'), p('l'));
    return [rel(await fs.readlink(p('l'))), await fs.readFile(p('l'), 'utf8')];
  } },
  { name: 'symlink to a directory in the middle of a path', run: async ({ fs, p }) => {
    await fs.mkdir(p('d'));
    await fs.symlink('d', p('dl'));
    await fs.writeFile(p('dl/x'), 'via link');
    return [await fs.readdir(p('dl')), await fs.readFile(p('d/x'), 'utf8'), await look(fs, p('dl')), await look(fs, p('dl'), 'lstat')];
  } },
  { name: 'relative target with ..', run: async ({ fs, p }) => {
    await fs.mkdir(p('sub'));
    await fs.writeFile(p('f'), 'up');
    await fs.symlink('../f', p('sub/l'));
    return [await fs.readFile(p('sub/l'), 'utf8'), await look(fs, p('sub/l'))];
  } },
  { name: 'chain of links through directories', run: async ({ fs, p }) => {
    await fs.mkdir(p('a/b'), { recursive: true });
    await fs.writeFile(p('a/b/f'), 'deep');
    await fs.symlink('a', p('la'));
    await fs.symlink('la/b', p('lb'));
    await fs.symlink('lb/f', p('lf'));
    return [await fs.readFile(p('lf'), 'utf8'), await look(fs, p('lb/f'))];
  } },
  { name: 'dangling symlink: stat ENOENT, lstat and readlink work', run: async ({ fs, p }) => {
    await fs.symlink('nowhere', p('l'));
    return [await look(fs, p('l')), await look(fs, p('l'), 'lstat'), await fs.readlink(p('l')), await code(fs.readFile(p('l')))];
  } },
  { name: 'writeFile through a dangling symlink creates its target', run: async ({ fs, p }) => {
    await fs.symlink('target', p('l'));
    await fs.writeFile(p('l'), 'made');
    return [await fs.readFile(p('target'), 'utf8'), await look(fs, p('l'), 'lstat')];
  } },
  { name: "open 'wx' on a symlink is EEXIST", run: async ({ fs, p }) => {
    await fs.symlink('target', p('l'));
    return [await code(fs.open(p('l'), 'wx')), await look(fs, p('target'))];
  } },
  { name: 'a link to itself loops: ELOOP', run: async ({ fs, p }) => {
    await fs.symlink('self', p('self'));
    return [await code(fs.stat(p('self'))), await code(fs.readFile(p('self'))), await look(fs, p('self'), 'lstat')];
  } },
  { name: 'two links pointing at each other: ELOOP, also as an intermediate', run: async ({ fs, p }) => {
    await fs.symlink('b', p('a'));
    await fs.symlink('a', p('b'));
    return [await code(fs.stat(p('a'))), await code(fs.stat(p('a/x'))), await code(fs.writeFile(p('a'), 'x')), await code(fs.readdir(p('b')))];
  } },
  { name: '40 links in a row resolve, 41 are ELOOP', run: async ({ fs, p }) => {
    await fs.mkdir(p('c40'));
    for (let i = 39; i >= 0; i--) await fs.symlink(p(`c${i + 1}`), p(`c${i}`));
    await fs.symlink(p('c0'), p('over'));
    return [await look(fs, p('c0')), await code(fs.stat(p('over')))];
  } },
  { name: 'symlink over an existing name is EEXIST', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), '');
    await fs.mkdir(p('d'));
    return [await code(fs.symlink('x', p('f'))), await code(fs.symlink('x', p('d'))), await code(fs.symlink('x', p('missing/l')))];
  } },
  { name: 'symlink with an empty target is ENOENT', run: async ({ fs, p }) => [await code(fs.symlink('', p('l'))), await look(fs, p('l'), 'lstat')] },
  { name: 'readlink of a file, a directory and a missing name', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), '');
    await fs.mkdir(p('d'));
    return [await code(fs.readlink(p('f'))), await code(fs.readlink(p('d'))), await code(fs.readlink(p('m')))];
  } },
  { name: 'unlink removes the link, not its target', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), 'stay');
    await fs.symlink('f', p('l'));
    await fs.unlink(p('l'));
    return [await look(fs, p('l'), 'lstat'), await fs.readFile(p('f'), 'utf8')];
  } },
  { name: 'rmdir and mkdir on a symlink to a directory', run: async ({ fs, p }) => {
    await fs.mkdir(p('d'));
    await fs.symlink('d', p('l'));
    return [await code(fs.rmdir(p('l'))), await code(fs.mkdir(p('l'))), await code(fs.unlink(p('l'))), await look(fs, p('d'))];
  } },
  { name: 'a symlink to a file used as a directory: ENOTDIR', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), '');
    await fs.symlink('f', p('l'));
    return [await code(fs.stat(p('l/x'))), await code(fs.readdir(p('l'))), await code(fs.mkdir(p('l/x')))];
  } },
  { name: 'mkdir -p through a symlink to a directory', run: async ({ fs, p }) => {
    await fs.mkdir(p('d'));
    await fs.symlink('d', p('l'));
    await fs.mkdir(p('l/x/y'), { recursive: true });
    return [await look(fs, p('d/x/y')), await code(fs.mkdir(p('l'), { recursive: true }))];
  } },
  { name: 'rename moves the symlink itself', run: async ({ fs, p }) => {
    await fs.mkdir(p('d'));
    await fs.writeFile(p('d/f'), 'x');
    await fs.symlink('d', p('l'));
    await fs.rename(p('l'), p('l2'));
    return [await fs.readlink(p('l2')), await look(fs, p('d'), 'lstat'), await fs.readdir(p('l2'))];
  } },
  { name: 'rename over a symlink replaces the link, not its target', run: async ({ fs, p }) => {
    await fs.writeFile(p('target'), 'old');
    await fs.symlink('target', p('l'));
    await fs.writeFile(p('new'), 'new');
    await fs.rename(p('new'), p('l'));
    return [await look(fs, p('l'), 'lstat'), await fs.readFile(p('target'), 'utf8'), await fs.readFile(p('l'), 'utf8')];
  } },
  { name: 'readdir lists symlinks with their type', run: async ({ fs, p }) => {
    await fs.mkdir(p('d'));
    await fs.symlink('nowhere', p('d/l'));
    await fs.writeFile(p('d/f'), '');
    return (await fs.readdir(p('d'), { withFileTypes: true })).map((e) => [e.name, e.isSymbolicLink(), e.isFile()]).sort();
  } },
  // ---- hard links ----
  { name: 'link counts: two names, one inode; unlink drops the count', run: async ({ fs, p }) => {
    await fs.writeFile(p('a'), 'shared');
    await fs.link(p('a'), p('b'));
    const both = [await look(fs, p('a')), await look(fs, p('b')), (await fs.stat(p('a'))).ino === (await fs.stat(p('b'))).ino];
    await fs.unlink(p('a'));
    return [...both, await look(fs, p('b')), await fs.readFile(p('b'), 'utf8')];
  } },
  { name: 'three links and writes through one seen through another', run: async ({ fs, p }) => {
    await fs.writeFile(p('a'), 'v1');
    await fs.link(p('a'), p('b'));
    await fs.link(p('b'), p('c'));
    await fs.writeFile(p('c'), 'version two');
    return [await look(fs, p('a')), await fs.readFile(p('a'), 'utf8')];
  } },
  { name: 'link to a directory is EPERM', run: async ({ fs, p }) => {
    await fs.mkdir(p('d'));
    return [await code(fs.link(p('d'), p('d2'))), await look(fs, p('d2'))];
  } },
  { name: 'link onto an existing name, from a missing one, into a missing folder', run: async ({ fs, p }) => {
    await fs.writeFile(p('a'), '');
    await fs.writeFile(p('b'), '');
    return [await code(fs.link(p('a'), p('b'))), await code(fs.link(p('m'), p('c'))), await code(fs.link(p('a'), p('no/c')))];
  } },
  { name: 'link to a symlink links the symlink itself', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), 'x');
    await fs.symlink('f', p('l'));
    await fs.link(p('l'), p('l2'));
    return [await look(fs, p('l2'), 'lstat'), await fs.readlink(p('l2')), await look(fs, p('f'))];
  } },
  { name: 'rename over a hard link of a file drops one of its links', run: async ({ fs, p }) => {
    await fs.writeFile(p('a'), 'a');
    await fs.link(p('a'), p('a2'));
    await fs.writeFile(p('n'), 'n');
    await fs.rename(p('n'), p('a2'));
    return [await look(fs, p('a')), await fs.readFile(p('a2'), 'utf8')];
  } },
  // ---- rename edge cases ----
  { name: 'rename onto itself is a no-op', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), 'same');
    await fs.mkdir(p('d'));
    await fs.rename(p('f'), p('f'));
    await fs.rename(p('d'), p('d'));
    return [await fs.readFile(p('f'), 'utf8'), await look(fs, p('d'))];
  } },
  { name: 'rename onto a hard link of the same inode is a no-op', run: async ({ fs, p }) => {
    await fs.writeFile(p('a'), 'x');
    await fs.link(p('a'), p('b'));
    await fs.rename(p('a'), p('b'));
    return [await look(fs, p('a')), await look(fs, p('b'))];
  } },
  { name: 'file over an empty directory is EISDIR; directory over a file ENOTDIR', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), '');
    await fs.mkdir(p('d'));
    return [await code(fs.rename(p('f'), p('d'))), await code(fs.rename(p('d'), p('f')))];
  } },
  { name: 'directory over a non-empty directory is ENOTEMPTY, over an empty one replaces it', run: async ({ fs, p }) => {
    await fs.mkdir(p('src/inner'), { recursive: true });
    await fs.mkdir(p('full'));
    await fs.writeFile(p('full/x'), '');
    await fs.mkdir(p('empty'));
    const r = [await code(fs.rename(p('src'), p('full'))), await code(fs.rename(p('src'), p('empty')))];
    return [...r, await fs.readdir(p('')), await fs.readdir(p('empty'))];
  } },
  { name: 'directory into its own subtree is EINVAL', run: async ({ fs, p }) => {
    await fs.mkdir(p('a/b'), { recursive: true });
    return [await code(fs.rename(p('a'), p('a/b/c'))), await code(fs.rename(p('a'), p('a/c')))];
  } },
  { name: 'rename of a missing name, into a missing folder, through a file', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), '');
    return [await code(fs.rename(p('m'), p('x'))), await code(fs.rename(p('f'), p('no/x'))), await code(fs.rename(p('f'), p('f/x')))];
  } },
  { name: 'rename across directories keeps link counts of directories', run: async ({ fs, p }) => {
    await fs.mkdir(p('a/moving'), { recursive: true });
    await fs.mkdir(p('b'));
    await fs.rename(p('a/moving'), p('b/moved'));
    return [(await fs.stat(p('a'))).nlink, (await fs.stat(p('b'))).nlink, await fs.readdir(p('b'))];
  } },
  // ---- truncate ----
  { name: 'truncate down keeps the head', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), big);
    await fs.truncate(p('f'), 5000);
    const back = await fs.readFile(p('f'));
    return [back.length, sha(back) === sha(big.subarray(0, 5000))];
  } },
  { name: 'truncate up reads zeros past the old end', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), 'abc');
    await fs.truncate(p('f'), 9000);
    const back = await fs.readFile(p('f'));
    return [back.length, back.subarray(0, 3).toString(), back.subarray(3).every((b) => b === 0)];
  } },
  { name: 'truncate down then extend: the cut bytes read as zeros', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), big);
    await fs.truncate(p('f'), 5000);
    const h = await fs.open(p('f'), 'r+');
    await h.write(Buffer.from('tail'), 0, 4, 9000);
    await h.close();
    const back = await fs.readFile(p('f'));
    return [back.length, sha(back.subarray(0, 5000)) === sha(big.subarray(0, 5000)), back.subarray(5000, 9000).every((b) => b === 0), back.subarray(9000).toString()];
  } },
  { name: 'truncate to a chunk boundary and to 0 (the default)', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), big);
    await fs.truncate(p('f'), 8192);
    const a = (await fs.readFile(p('f'))).length;
    await fs.truncate(p('f'));
    await fs.truncate(p('f'), 100);
    const back = await fs.readFile(p('f'));
    return [a, back.length, back.every((b) => b === 0)];
  } },
  { name: 'truncate of a directory, a missing file, and through a symlink', run: async ({ fs, p }) => {
    await fs.mkdir(p('d'));
    await fs.writeFile(p('f'), 'abcdef');
    await fs.symlink('f', p('l'));
    return [await code(fs.truncate(p('d'), 0)), await code(fs.truncate(p('m'), 0)), await code(fs.truncate(p('l'), 2)), await fs.readFile(p('f'), 'utf8'), await look(fs, p('l'), 'lstat')];
  } },
  { name: 'FileHandle.truncate, then writing on', run: async ({ fs, p }) => {
    const h = await fs.open(p('f'), 'w+');
    await h.write(big, 0, big.length, 0);
    await h.truncate(3000);
    const st = await h.stat();
    await h.write(Buffer.from('END'), 0, 3, 6000);
    await h.close();
    const back = await fs.readFile(p('f'));
    return [st.size, back.length, back.subarray(3000, 6000).every((b) => b === 0), sha(back.subarray(0, 3000)) === sha(big.subarray(0, 3000))];
  } },
  { name: 'FileHandle.sync records the length before close', run: async ({ fs, p }) => {
    const h = await fs.open(p('f'), 'w');
    await h.write(Buffer.alloc(4321, 1), 0, 4321, 0);
    await h.sync();
    const seen = (await fs.stat(p('f'))).size;
    await h.datasync();
    await h.close();
    return [seen, (await fs.stat(p('f'))).size];
  } },
  // ---- setattr ----
  { name: 'chmod shows in stat, also through a symlink', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), '');
    await fs.chmod(p('f'), 0o640);
    const a = (await fs.stat(p('f'))).mode & 0o7777;
    await fs.symlink('f', p('l'));
    await fs.chmod(p('l'), '600');
    return [a, (await fs.stat(p('f'))).mode & 0o7777, (await fs.stat(p('f'))).mode & 0o170000];
  } },
  { name: 'chmod of a directory and of a missing name', run: async ({ fs, p }) => {
    await fs.mkdir(p('d'));
    await fs.chmod(p('d'), 0o711);
    return [(await fs.stat(p('d'))).mode & 0o7777, await code(fs.chmod(p('m'), 0o600))];
  } },
  { name: 'utimes sets atime and mtime (seconds, Date)', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), 'x');
    await fs.utimes(p('f'), 1_000_000, new Date(2_000_000_000));
    const s = await fs.stat(p('f'));
    return [s.atimeMs, s.mtimeMs, await code(fs.utimes(p('m'), 1, 1))];
  } },
  { name: 'utimes moves ctime and leaves size alone', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), 'xyz');
    const before = await fs.stat(p('f'));
    await new Promise((r) => setTimeout(r, 20));
    await fs.utimes(p('f'), 5, 5);
    const after = await fs.stat(p('f'));
    return [after.size, after.ctimeMs >= before.ctimeMs, after.mtimeMs];
  } },
  { name: 'chown to our own ids shows in stat', run: async ({ fs, p }) => {
    await fs.writeFile(p('f'), '');
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    await fs.chown(p('f'), uid, gid);
    const s = await fs.stat(p('f'));
    return [s.uid === uid, s.gid === gid, await code(fs.chown(p('m'), uid, gid))];
  } },
  { name: 'FileHandle.chmod and FileHandle.utimes', run: async ({ fs, p }) => {
    const h = await fs.open(p('f'), 'w');
    await h.chmod(0o604);
    await h.utimes(77, 88);
    await h.close();
    const s = await fs.stat(p('f'));
    return [s.mode & 0o7777, s.atimeMs, s.mtimeMs];
  } },
  // ---- removal ----
  { name: 'unlink of a directory is EISDIR, of a missing name ENOENT', run: async ({ fs, p }) => {
    await fs.mkdir(p('d'));
    return [await code(fs.unlink(p('d'))), await code(fs.unlink(p('m'))), await code(fs.rmdir(p('m')))];
  } },
];

describe('namespace conformance: node:fs vs flyfs', () => {
  let flyfs: FileSystem;
  let cleanup: () => Promise<void>;
  let localRoot: string;

  beforeAll(async () => {
    const c = await startTestCluster('conformance', { storageServers: 1, targetsPerServer: 2 });
    cleanup = c.cleanup;
    flyfs = await connect(c.cluster.clusterAddress);
    localRoot = await tempDir('conformance-local');
  }, 60_000);
  afterAll(async () => {
    await flyfs?.close();
    await cleanup?.();
    if (localRoot) await nodeFs.rm(localRoot, { recursive: true, force: true });
  });

  it('has at least 60 scenarios', () => { expect(scenarios.length).toBeGreaterThanOrEqual(60); });

  scenarios.forEach((s, i) => {
    it(s.name, async () => {
      const localBase = `${localRoot}/s${i}`;
      const flyBase = `/s${i}`;
      await nodeFs.mkdir(localBase);
      // Small chunks, striped: truncates cut inside and across chunks on several chains.
      await flyfs.mkdir(flyBase, { chunkSizeBytes: 4096, stripe: 2 });
      const ctx = (fs: Fs, base: string): Ctx => ({
        fs, p: (rel) => (rel === '' ? base : `${base}/${rel}`), rel: (abs) => (abs.startsWith(base) ? abs.slice(base.length) : abs),
      });
      const expected = await s.run(ctx(nodeFs, localBase));
      const got = await s.run(ctx(flyfs as unknown as Fs, flyBase));
      expect(got).toEqual(expected);
    }, 30_000);
  });
});
