// Path and name rules, shared by the client (early, clear errors) and the metaserver (the
// authority). A path is absolute, '/'-separated; components are 1..nameBytesMax bytes, never
// '.', '..', and never contain '/' or NUL.
import { flyfsError } from './errors.js';
import { limits } from './limits.js';

export function validateName(name: string, path = name): void {
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes === 0) throw flyfsError('FLYFS_ERR_BAD_NAME', 'empty name', { path });
  if (bytes > limits.nameBytesMax) {
    throw flyfsError('FLYFS_ERR_NAME_TOO_LONG', `${bytes} bytes, at most ${limits.nameBytesMax}`, { path });
  }
  if (name === '.' || name === '..') throw flyfsError('FLYFS_ERR_BAD_NAME', `'${name}' is not allowed`, { path });
  if (name.includes('/')) throw flyfsError('FLYFS_ERR_BAD_NAME', 'name contains /', { path });
  if (name.includes('\0')) throw flyfsError('FLYFS_ERR_BAD_NAME', 'name contains NUL', { path });
}

/** Splits an absolute path into validated components; '/' gives []. Repeated and trailing slashes are tolerated. */
export function splitPath(path: string): string[] {
  if (typeof path !== 'string') throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'path must be a string');
  if (path.includes('\0')) throw flyfsError('FLYFS_ERR_BAD_NAME', 'path contains NUL', { path });
  const bytes = Buffer.byteLength(path, 'utf8');
  if (bytes > limits.pathBytesMax) {
    throw flyfsError('FLYFS_ERR_NAME_TOO_LONG', `path of ${bytes} bytes, at most ${limits.pathBytesMax}`, { path });
  }
  if (!path.startsWith('/')) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'path must be absolute', { path });
  const parts = path.split('/').filter((p) => p.length > 0);
  if (parts.length > limits.pathDepthMax) {
    throw flyfsError('FLYFS_ERR_NAME_TOO_LONG', `path deeper than ${limits.pathDepthMax}`, { path });
  }
  for (const part of parts) validateName(part, path);
  return parts;
}

export function joinPath(parts: readonly string[]): string {
  return '/' + parts.join('/');
}
