import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseStorageServerArgs } from '../../storageserver/config.js';

describe('parseStorageServerArgs', () => {
  it('fills defaults and default target folders', () => {
    const c = parseStorageServerArgs(['--data', '/tmp/x', '--mgmt', '127.0.0.1:9000,127.0.0.1:9001', '--targets', '2']);
    expect(c).toMatchObject({
      dataDir: resolve('/tmp/x'), mgmtAddresses: ['127.0.0.1:9000', '127.0.0.1:9001'], host: '127.0.0.1',
      grpcPort: 0, dataPort: 0, httpPort: 0, verifyChecksums: true, diskFullRatio: 0.95, ioEngine: 'auto', directIo: true, scrubIntervalMs: 3_600_000,
    });
    expect(c.targets).toEqual([join(resolve('/tmp/x'), 'target-0'), join(resolve('/tmp/x'), 'target-1')]);
  });

  it('takes explicit targets and ports', () => {
    const c = parseStorageServerArgs(['--data', 'd', '--mgmt', 'h:1', '--target', '/a', '--target', '/b', '--port', '5', '--data-port', '6', '--http-port', '7', '--host', '0.0.0.0']);
    expect(c.targets).toEqual(['/a', '/b']);
    expect([c.grpcPort, c.dataPort, c.httpPort, c.host]).toEqual([5, 6, 7, '0.0.0.0']);
  });

  it('takes the I/O engine and direct I/O switches', () => {
    const c = parseStorageServerArgs(['--data', 'd', '--mgmt', 'h:1', '--io-engine', 'fs', '--no-direct-io']);
    expect([c.ioEngine, c.directIo]).toEqual(['fs', false]);
    expect(parseStorageServerArgs(['--data', 'd', '--mgmt', 'h:1', '--io-engine', 'io_uring']).ioEngine).toBe('io_uring');
  });

  it.each([
    [['--data', 'd', '--mgmt', 'h:1', '--io-engine', 'aio']],
    [['--data', 'd', '--mgmt', 'h:1', '--scrub-interval-ms', '-1']],
    [['--mgmt', 'h:1']],
    [['--data', 'd']],
    [['--data', 'd', '--mgmt', 'nohost']],
    [['--data', 'd', '--mgmt', 'h:1', '--targets', '0']],
    [['--data', 'd', '--mgmt', 'h:1', '--port', '70000']],
    [['--data', 'd', '--mgmt', 'h:1', '--bogus', '1']],
    [['--data', 'd', '--mgmt', 'h:1', '--target', '/a', '--target', '/a']],
    [['--data']],
  ])('refuses %j with FLYFS_ERR_BAD_CONFIG', (argv) => {
    expect(() => parseStorageServerArgs(argv)).toThrow(expect.objectContaining({ code: 'FLYFS_ERR_BAD_CONFIG' }));
  });
});
