#!/usr/bin/env node
// flyfs: the one CLI. Every role also starts alone from here (`flyfs metaserver`, `flyfs storageserver`).
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { FlyfsError } from '../common/errors.js';
import { upCommand } from './commands/up.js';
import { statusCommand } from './commands/status.js';
import { adminCommand } from './commands/admin.js';
import { datasetCommand } from './commands/dataset.js';
import { catCommand, cpCommand, lsCommand, mkdirCommand, mvCommand, rmCommand, statCommand } from './commands/fs-commands.js';

const usage = `usage: flyfs <command> [options]

cluster
  up [--data DIR] [--metaservers N] [--storage-servers N] [--targets N] [--replicas N] [--kvcache 0|1] [--restart]
                         start a local cluster (data in ./flyfs-data), Ctrl-C stops it
  status [--json]        every node with role, address, state and pid
  admin chains|targets [--json]
                         storage chains (head first) and targets with their states
  admin offline|online TARGET
                         take a storage target out of service, or let it come back
  metaserver --data DIR [--host H] [--port P] [--http-port P]
  storageserver --data DIR --mgmt HOST:PORT [--targets N] [--port P] [--data-port P] [--http-port P]
  kvcache --data DIR --cluster HOST:PORT [--port P] [--http-port P] [--capacity-bytes N] [--lease-ms N] …

files (flyfs paths are absolute; cp writes them flyfs:/path)
  ls [-l] [PATH]         cp SRC DST         cat PATH...        stat [--json] PATH...
  mkdir [-p] PATH...     mv FROM TO         rm [-r] [-f] PATH...

datasets
  dataset pack SRC DST [--shard-size BYTES]
                         pack a folder of sample files (local, or flyfs:/DIR) into a packed dataset
  dataset info PATH [--json]

preprocessing
  job run FILE --job-dir DIR [--workers N] [--retries R]
                         run a job (FILE: plan .json, or a module exporting a DataFrame)
  job resume --job-dir DIR [--workers N]
  sort gen --size 10GiB --out DIR | sort run --in DIR --out DIR --job-dir DIR [--partitions N] [--workers N]
  sort validate --out DIR [--in DIR]   GraySort: gensort records, shuffle + sort as a job, valsort-like check

kv cache
  kv stats [--json]      kv ls [NAMESPACE] [--limit N]
  kv evict [NAMESPACE] [--target-bytes N]     kv rm NAMESPACE --token T KEY...
                         (the service is found through --kv HOST:PORT, FLYFS_KV, or 'flyfs up')

  bench NAME [--json] [--runs N] [--size BYTES]

The cluster is found through --cluster HOST:PORT[,HOST:PORT], FLYFS_CLUSTER, or the state
file of a running 'flyfs up' (--data DIR, default ./flyfs-data).`;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, Command> = {
  up: upCommand,
  status: statusCommand,
  admin: adminCommand,
  dataset: datasetCommand,
  ls: lsCommand,
  cp: cpCommand,
  cat: catCommand,
  mkdir: mkdirCommand,
  mv: mvCommand,
  rm: rmCommand,
  stat: statCommand,
  metaserver: async (argv) => {
    const { runMetaserverCli } = await import('../metaserver/main.js');
    await runMetaserverCli(argv);
    return -1;
  },
  storageserver: async (argv) => {
    const { runStorageServerCli } = await import('../storageserver/main.js');
    await runStorageServerCli(argv);
    return -1;
  },
  kvcache: async (argv) => {
    const { runKvServiceCli } = await import('../kvcache/main.js');
    await runKvServiceCli(argv);
    return -1;
  },
  job: async (argv) => {
    const { jobCommand } = await import('./commands/job.js');
    return jobCommand(argv);
  },
  sort: async (argv) => {
    const { sortCommand } = await import('./commands/sort.js');
    return sortCommand(argv);
  },
  kv: async (argv) => {
    const { kvCommand } = await import('./commands/kv.js');
    return kvCommand(argv);
  },
  bench: async (argv) => {
    const { runBenchCli } = await import('../bench/index.js');
    return runBenchCli(argv);
  },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage + '\n');
    return name === undefined ? 2 : 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`flyfs: unknown command '${name}'\n\n${usage}\n`);
    return 2;
  }
  return cmd(rest);
}

function describe(err: unknown): string {
  if (err instanceof FlyfsError) return `${err.message} (${err.code})`;
  const e = err as { code?: string; message?: string };
  return e.message ?? String(err);
}

function isMainModule(): boolean {
  const arg = process.argv[1];
  if (arg === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(arg)).href;
  } catch {
    return false;
  }
}

if (isMainModule()) {
  main(process.argv.slice(2)).then((code) => {
    // Servers (-1) keep running until a signal stops them.
    if (code >= 0) process.exitCode = code;
  }, (err: unknown) => {
    process.stderr.write(`flyfs: ${describe(err)}\n`);
    process.exitCode = 1;
  });
}
