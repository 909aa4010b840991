// After tsc: make the CLI executable, and link it as node_modules/.bin/flyfs so that
// `npx flyfs` in this checkout runs this package's own CLI (npm links bins of dependencies only).
import { chmodSync, mkdirSync, rmSync, symlinkSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'tools', 'cli.js');
chmodSync(cli, 0o755);
const binDir = join(root, 'node_modules', '.bin');
if (existsSync(join(root, 'node_modules'))) {
  mkdirSync(binDir, { recursive: true });
  const link = join(binDir, 'flyfs');
  rmSync(link, { force: true });
  symlinkSync(join('..', '..', 'dist', 'tools', 'cli.js'), link);
}
