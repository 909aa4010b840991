// Generates TypeScript types for the wire contracts in proto/*.proto into proto/gen/.
// Generated files are never edited by hand and are not committed.
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const protoDir = join(root, 'proto');
const outDir = join(protoDir, 'gen');
const require = createRequire(import.meta.url);
const genBin = join(dirname(require.resolve('@grpc/proto-loader/package.json')), 'build', 'bin', 'proto-loader-gen-types.js');
const files = readdirSync(protoDir).filter((f) => f.endsWith('.proto')).sort();
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
execFileSync(process.execPath, [
  genBin, '--keepCase=false', '--longs=Number', '--enums=String', '--defaults', '--oneofs',
  '--grpcLib=@grpc/grpc-js', '--outDir', outDir, '--includeDirs', protoDir, '--importFileExtension=.js', ...files,
], { stdio: 'inherit', cwd: protoDir });
