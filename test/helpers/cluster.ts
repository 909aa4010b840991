// Test helpers: a real local cluster (the same code `flyfs up` runs) in a temporary folder.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalCluster, type LocalCluster, type LocalClusterOptions } from '../../tools/local-cluster.js';

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `flyfs-${prefix}-`));
}

export async function startTestCluster(prefix: string, options: Partial<LocalClusterOptions> = {}): Promise<{ cluster: LocalCluster; dir: string; cleanup: () => Promise<void> }> {
  const dir = await tempDir(prefix);
  const cluster = await startLocalCluster({ dataDir: join(dir, 'data'), ...options });
  return {
    cluster,
    dir,
    cleanup: async () => {
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Deterministic bytes from a seed (xorshift32), so a failure can be replayed. */
export function seededBytes(seed: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let x = (seed >>> 0) || 0x9e3779b9;
  let i = 0;
  for (; i + 4 <= length; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    buf.writeUInt32LE(x, i);
  }
  for (; i < length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    buf[i] = x & 0xff;
  }
  return buf;
}

export function isAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/**
 * The data files of an inode's chunks anywhere under `root` (every target's chunk engine keeps
 * each chunk's committed version as data/<inode>/<index>.<version>, docs/chunk-engine.md).
 */
export async function chunkFilesOf(root: string, inodeId: number): Promise<string[]> {
  const all = await readdir(root, { recursive: true });
  return all.filter((p) => new RegExp(`(^|/)data/${inodeId}/\\d+\\.\\d+$`).test(p)).map((p) => join(root, p));
}
