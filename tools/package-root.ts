// Finds files of the installed package, from source (vitest) or from dist/.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj) && (JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'flyfs') return dir;
    dir = dirname(dir);
  }
  throw new Error('flyfs package root not found');
}

/** The built CLI every child process runs. */
export function cliPath(): string {
  const p = join(packageRoot(), 'dist', 'tools', 'cli.js');
  if (!existsSync(p)) throw new Error(`${p} is missing: run npm run build`);
  return p;
}
