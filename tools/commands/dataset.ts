// `flyfs dataset pack SRC DST` packs a folder of sample files (local, or flyfs:/path) into a
// packed dataset in flyfs; `flyfs dataset info PATH` describes a dataset.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { flyfsFolderSamples, localFolderSamples, openDataset, packDataset } from '../../client/dataset/index.js';
import { flyfsError } from '../../common/errors.js';
import { boolFlag, flag, parseArgs } from '../args.js';
import { Progress, formatBytes } from '../progress.js';
import { FLYFS_PREFIX, flyfsPath, withFs } from './fs-commands.js';

const usage = `usage: flyfs dataset pack SRC DST [--shard-size BYTES]   (SRC: a local folder or flyfs:/folder of sample files)
       flyfs dataset info PATH [--json]`;

export async function datasetCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'pack') return pack(rest);
  if (sub === 'info') return info(rest);
  throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', usage);
}

async function pack(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const [src, dst] = args.positionals;
  if (src === undefined || dst === undefined) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', usage);
  const shardText = flag(args, 'shard-size');
  const shardBytes = shardText === undefined ? undefined : Number(shardText);
  if (shardBytes !== undefined && (!Number.isSafeInteger(shardBytes) || shardBytes < 1)) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', '--shard-size must be a positive integer');
  return withFs(args, async (fs) => {
    let total = 0;
    let samples: AsyncIterable<Uint8Array>;
    if (src.startsWith(FLYFS_PREFIX)) {
      const dir = flyfsPath(src);
      for (const e of await fs.readdir(dir, { withFileTypes: true })) if (e.isFile()) total += (await fs.stat(`${dir.replace(/\/+$/, '')}/${e.name}`)).size;
      samples = flyfsFolderSamples(fs, dir);
    } else {
      for (const e of await readdir(src, { withFileTypes: true })) if (e.isFile()) total += (await stat(join(src, e.name))).size;
      samples = localFolderSamples(src);
    }
    const progress = new Progress(`pack ${src}`, total);
    const m = await packDataset(fs, samples, flyfsPath(dst), {
      ...(shardBytes === undefined ? {} : { shardBytes }),
      onProgress: (_, bytes) => progress.update(bytes),
    });
    progress.done(m.totalBytes);
    process.stdout.write(`packed ${m.samples} samples (${formatBytes(m.totalBytes)}) into ${m.shards.length} shard(s) at ${flyfsPath(dst)}\n`);
    return 0;
  });
}

async function info(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['json']);
  const path = args.positionals[0];
  if (path === undefined) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', usage);
  return withFs(args, async (fs) => {
    const ds = await openDataset(fs, flyfsPath(path));
    try {
      let bytes = 0;
      for (let i = 0; i < ds.length; i++) bytes += ds.sampleLength(i);
      const out = { path: ds.path, kind: ds.kind, samples: ds.length, bytes };
      process.stdout.write(boolFlag(args, 'json') ? JSON.stringify(out) + '\n' : `${out.path}: ${out.kind} dataset, ${out.samples} samples, ${formatBytes(bytes)}\n`);
      return 0;
    } finally {
      await ds.close();
    }
  });
}
