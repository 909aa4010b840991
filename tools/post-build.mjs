import { chmodSync } from 'node:fs';
chmodSync(new URL('../dist/tools/cli.js', import.meta.url), 0o755);
