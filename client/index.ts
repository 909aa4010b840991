// The flyfs client SDK: `import { connect } from 'flyfs'`.
import { flyfsError } from '../common/errors.js';
import { FileSystem, type ConnectOptions } from './fs.js';

export { FileSystem, type ConnectOptions, type OpenFlagString } from './fs.js';
export { FileHandle } from './file-handle.js';
export { IoBatch, type BatchCompletion } from './batch.js';
export { FlyfsStats, FlyfsDirent } from './stats.js';
export type { NodeStyleError } from './node-errors.js';
export { FlyfsError, ErrorCodes, type ErrorCode } from '../common/errors.js';

/**
 * Connects to a flyfs cluster. `address` is one metaserver address (host:port), a
 * comma-separated list, an array, or a URL `flyfs://host:port[,host:port]`.
 */
export async function connect(address: string | readonly string[], options: ConnectOptions = {}): Promise<FileSystem> {
  const addresses = parseClusterAddress(address);
  const fs = new FileSystem(addresses, options);
  try {
    await fs.init();
  } catch (err) {
    await fs.close();
    throw err;
  }
  return fs;
}

export function parseClusterAddress(address: string | readonly string[]): string[] {
  const list = typeof address === 'string' ? address.replace(/^flyfs:\/\//, '').split(',') : [...address];
  const out = list.map((a) => a.trim()).filter((a) => a.length > 0);
  if (out.length === 0) throw flyfsError('FLYFS_ERR_NOT_CONNECTED', 'no metaserver address');
  for (const a of out) {
    if (!/^[^\s:/]+:\d{1,5}$/.test(a) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(a)) {
      throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `bad address '${a}' (want host:port)`);
    }
  }
  return out;
}
