// Page keys: a page is `pageTokens` (64) tokens; the key of page i is
//   SHA-256( key(i−1) ++ u32le(token) for each of page i's tokens )
// with no prefix for page 0 — the 32-byte digest, exactly SGLang HiCache's `get_hash_str`
// chained over pages (which works on the hex digests; the bytes are the same). A partial last
// page has no key: only whole pages are cached. Keys are scoped by the namespace they are used in.
import { createHash } from 'node:crypto';
import { flyfsError } from '../common/errors.js';

export const keyBytes = 32;
export const pageTokensDefault = 64;

/** The keys of every whole page of `tokens`. */
export function pageKeys(tokens: ArrayLike<number>, pageTokens = pageTokensDefault): Buffer[] {
  const pages = Math.floor(tokens.length / pageTokens);
  const out: Buffer[] = [];
  const word = Buffer.allocUnsafe(4 * pageTokens);
  let prior: Buffer | undefined;
  for (let p = 0; p < pages; p++) {
    const h = createHash('sha256');
    if (prior !== undefined) h.update(prior);
    for (let t = 0; t < pageTokens; t++) {
      const id = tokens[p * pageTokens + t]!;
      if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `token ${p * pageTokens + t} is ${id}, not a u32`);
      word.writeUInt32LE(id, 4 * t);
    }
    h.update(word);
    prior = h.digest();
    out.push(prior);
  }
  return out;
}

export function checkKey(key: Uint8Array, what = 'key'): void {
  if (!(key instanceof Uint8Array) || key.length !== keyBytes) {
    throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `${what} must be ${keyBytes} bytes, not ${key instanceof Uint8Array ? key.length : typeof key}`);
  }
}
