// Whether a path exists (lstat: a dangling symlink exists); other errors than ENOENT propagate.
import type { FileSystem } from './fs.js';

export async function pathExists(fs: FileSystem, path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return false;
    throw err;
  }
}
