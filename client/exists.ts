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

/** A file's text, or undefined when it does not exist; other errors propagate. */
export async function readTextIfExists(fs: FileSystem, path: string): Promise<string | undefined> {
  try {
    return await fs.readFile(path, 'utf8') as string;
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw err;
  }
}
