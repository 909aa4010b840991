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

/** Exits of a fault test's children: those the test caused (it adds the name before killing)
 * and any other, which the test reports as a failure. */
export interface ChildExits { readonly expected: Set<string>; readonly unexpected: string[] }

/**
 * A cluster for a fault test: children's exits are sorted into expected and unexpected ones,
 * and FLYFS_FAULT_LOGS=<dir> keeps the children's logs past the cleanup.
 */
export async function startFaultCluster(prefix: string, options: Partial<LocalClusterOptions>, exits: ChildExits): ReturnType<typeof startTestCluster> {
  return startTestCluster(prefix, {
    ...options,
    ...(process.env['FLYFS_FAULT_LOGS'] ? { logDir: process.env['FLYFS_FAULT_LOGS'] } : {}),
    onChildExit: (node, code, signal) => {
      if (exits.expected.delete(node.name)) return;
      exits.unexpected.push(`${node.name} exited (${code ?? signal})`);
    },
  });
}
