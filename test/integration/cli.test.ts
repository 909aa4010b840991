// The CLI as a user runs it: `flyfs up` in the foreground, file commands from another process
// (found through the up folder's state file or FLYFS_CLUSTER), and Ctrl-C stopping every child.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cliPath, packageRoot } from '../../tools/package-root.js';
import { isAlive, seededBytes, tempDir } from '../helpers/cluster.js';

const run = promisify(execFile);

function flyfs(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [cliPath(), ...args], { cwd, env: { ...process.env, ...env }, maxBuffer: 256 * 1024 * 1024 });
}

function startUp(cwd: string, args: string[] = []): { proc: ChildProcess; ready: Promise<string>; output: () => string } {
  // Its own process group, as a shell gives a foreground job, so Ctrl-C can go to the group.
  const proc = spawn(process.execPath, [cliPath(), 'up', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  const ready = new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('Ctrl-C stops')) resolve(out); });
    proc.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    proc.on('exit', (code) => reject(new Error(`up exited ${code}: ${out}`)));
  });
  return { proc, ready, output: () => out };
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('flyfs CLI against flyfs up', () => {
  let dir: string;
  let up: ReturnType<typeof startUp>;
  let pids: number[] = [];

  beforeAll(async () => {
    dir = await tempDir('cli');
    const started = Date.now();
    up = startUp(dir);
    await up.ready;
    expect(Date.now() - started).toBeLessThan(30_000);
    const state = JSON.parse(await readFile(join(dir, 'flyfs-data', 'cluster.json'), 'utf8')) as { nodes: Array<{ pid: number; role: string }> };
    pids = state.nodes.map((n) => n.pid);
    // 3 metaservers, 3 storage servers and the kvcache service.
    expect(state.nodes.map((n) => n.role).sort()).toEqual(['kvcache', 'metaserver', 'metaserver', 'metaserver', 'storageserver', 'storageserver', 'storageserver']);
  });

  afterAll(async () => {
    if (up?.proc.exitCode === null) up.proc.kill('SIGTERM');
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('prints its endpoints', () => {
    expect(up.output()).toMatch(/cluster address: 127\.0\.0\.1:\d+/);
    expect(up.output()).toMatch(/storage-2/);
  });

  it('copies a 100 MiB random file in and back out byte-identically, and lists it', async () => {
    const src = join(dir, 'random.bin');
    const data = seededBytes(20261202, 100 * 1024 * 1024);
    await writeFile(src, data);
    await flyfs(['cp', src, 'flyfs:/random.bin'], dir);
    await flyfs(['cp', 'flyfs:/random.bin', join(dir, 'back.bin')], dir);
    expect(sha256(await readFile(join(dir, 'back.bin')))).toBe(sha256(data));
    const ls = await flyfs(['ls', '/'], dir);
    expect(ls.stdout.split('\n')).toContain('random.bin');
  });

  it('runs mkdir, mv, stat, cat and rm', async () => {
    await flyfs(['mkdir', '-p', '/x/y'], dir);
    await writeFile(join(dir, 'hello.txt'), 'hello flyfs\n');
    await flyfs(['cp', join(dir, 'hello.txt'), 'flyfs:/x/y/'], dir);
    await flyfs(['mv', '/x/y/hello.txt', '/x/hi.txt'], dir);
    expect((await flyfs(['cat', '/x/hi.txt'], dir)).stdout).toBe('hello flyfs\n');
    const st = JSON.parse((await flyfs(['stat', '--json', '/x/hi.txt'], dir)).stdout) as { size: number; type: string };
    expect(st).toMatchObject({ size: 12, type: 'file' });
    await flyfs(['rm', '-r', '/x'], dir);
    await expect(flyfs(['stat', '/x'], dir)).rejects.toMatchObject({ stderr: expect.stringMatching(/no such file/) });
  });

  it('status --json lists every node with role, address, state and pid', async () => {
    const { stdout } = await flyfs(['status', '--json'], dir);
    const s = JSON.parse(stdout) as { nodes: Array<{ role: string; address: string; state: string; pid?: number }>; targets: unknown[] };
    expect(s.nodes.map((n) => n.role).sort()).toEqual(['metaserver', 'metaserver', 'metaserver', 'storageserver', 'storageserver', 'storageserver']);
    // The three metaservers form one chain: one head, one tail, one in the middle.
    expect(s.nodes.filter((n) => n.role === 'metaserver').map((n) => n.state).sort()).toEqual(['head', 'middle', 'tail']);
    for (const n of s.nodes) {
      expect(n.address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(pids).toContain(n.pid);
    }
    expect(s.nodes.filter((n) => n.role === 'storageserver').every((n) => n.state === 'alive')).toBe(true);
    expect(s.targets.length).toBe(6);
  });

  it('kv stats and ls find the kvcache service and its admin token through the state file', async () => {
    const { stdout } = await flyfs(['kv', 'stats', '--json'], dir);
    const st = JSON.parse(stdout) as { namespaces: unknown[]; capacityBytes: number };
    expect(st.namespaces).toEqual([]);
    expect(st.capacityBytes).toBeGreaterThan(0);
    expect((await flyfs(['kv', 'ls'], dir)).stdout).toBe('');
    await expect(flyfs(['kv', 'stats', '--admin-token', 'wrong'], dir)).rejects.toMatchObject({ stderr: expect.stringMatching(/bad admin token/) });
  });

  it('admin lists chains and targets, takes a target offline and lets it come back', async () => {
    type Chains = { chains: Array<{ chainId: number; version: number; members: Array<{ targetId: number; state: string }> }> };
    type Targets = { targets: Array<{ targetId: number; chainId: number; state: string; adminOffline: boolean }> };
    const chains = async (): Promise<Chains['chains']> => (JSON.parse((await flyfs(['admin', 'chains', '--json'], dir)).stdout) as Chains).chains;
    const targets = async (): Promise<Targets['targets']> => (JSON.parse((await flyfs(['admin', 'targets', '--json'], dir)).stdout) as Targets).targets;
    // `flyfs up`'s default: 3 storage servers with 2 targets each, chains of 3 on distinct servers.
    const before = await chains();
    expect(before).toHaveLength(2);
    expect(before.every((c) => c.members.length === 3 && c.members.every((m) => m.state === 'serving'))).toBe(true);
    const victim = (await targets())[0]!;
    const chainOf = async (): Promise<Chains['chains'][number]> => (await chains()).find((c) => c.chainId === victim.chainId)!;
    const v0 = (await chainOf()).version;

    await flyfs(['admin', 'offline', String(victim.targetId)], dir);
    // It leaves its chain's serving members for the tail, offline; the version goes up.
    const down = await chainOf();
    expect(down.members.at(-1)).toEqual({ targetId: victim.targetId, state: 'offline' });
    expect(down.members.slice(0, 2).every((m) => m.state === 'serving')).toBe(true);
    expect(down.version).toBeGreaterThan(v0);
    expect((await targets()).find((t) => t.targetId === victim.targetId)?.adminOffline).toBe(true);
    expect((await flyfs(['admin', 'chains'], dir)).stdout).toContain(`${victim.targetId}:offline`);

    await flyfs(['admin', 'online', String(victim.targetId)], dir);
    // It comes back through waiting and syncing (a resync from its predecessor) to serving.
    const until = Date.now() + 15_000;
    let up = await chainOf();
    while (!up.members.every((m) => m.state === 'serving') && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
      up = await chainOf();
    }
    expect(up.members.map((m) => m.state)).toEqual(['serving', 'serving', 'serving']);
    expect(up.members.map((m) => m.targetId)).toContain(victim.targetId);
    expect(up.version).toBeGreaterThan(down.version);

    await expect(flyfs(['admin', 'offline', '999999'], dir)).rejects.toMatchObject({ stderr: expect.stringMatching(/FLYFS_ERR_NOT_FOUND/) });
    await expect(flyfs(['admin', 'offline', 'abc'], dir)).rejects.toMatchObject({ stderr: expect.stringMatching(/usage/) });
  });

  it('finds the cluster through FLYFS_CLUSTER from any folder, and as the package bin (npx flyfs)', async () => {
    const state = JSON.parse(await readFile(join(dir, 'flyfs-data', 'cluster.json'), 'utf8')) as { clusterAddress: string };
    const other = await tempDir('cli-other');
    try {
      const ls = await flyfs(['ls', '/'], other, { FLYFS_CLUSTER: state.clusterAddress });
      expect(ls.stdout).toContain('random.bin');
    } finally {
      await rm(other, { recursive: true, force: true });
    }
    const npx = await run('npx', ['--no-install', 'flyfs', 'ls', '/'], { cwd: packageRoot(), env: { ...process.env, FLYFS_CLUSTER: state.clusterAddress } });
    expect(npx.stdout).toContain('random.bin');
  });

  it('refuses a second up on the same folder', async () => {
    await expect(flyfs(['up'], dir)).rejects.toMatchObject({ stderr: expect.stringMatching(/already running/) });
  });

  it('stops every child process on Ctrl-C', async () => {
    const exited = new Promise<number | null>((resolve) => up.proc.on('exit', (code) => resolve(code)));
    // A terminal's Ctrl-C: SIGINT to the foreground process group.
    process.kill(-up.proc.pid!, 'SIGINT');
    expect(await exited).toBe(0);
    for (const pid of pids) expect(isAlive(pid), `pid ${pid}`).toBe(false);
    expect(up.output()).toMatch(/flyfs up: stopped/);
    expect(up.output()).not.toMatch(/exited with/);
  });
});
