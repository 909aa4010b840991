import { describe, expect, it } from 'vitest';
import { chunkVersion, chainVersion, inodeId, targetId } from '../../common/ids.js';
import { clientId } from '../../storageserver/craq/index.js';
import { crc32c } from '../../storageserver/crc32c.js';
import { decodePeerMessage, encodePeerMessage } from '../../storageserver/peer-codec.js';
import type { StoredMessage } from '../../storageserver/replicated-target.js';
import type { StoredContent } from '../../storageserver/stored-content.js';

const bytesOf = (c: StoredContent) => c.bytes!;

function update(bytes: Buffer): StoredMessage {
  return {
    from: targetId(1), to: targetId(2), chainVersion: chainVersion(3),
    body: {
      kind: 'update', chunk: { inodeId: inodeId(9), index: 4 }, version: chunkVersion(2),
      writeId: { clientId: clientId('c'), requestId: 7 },
      content: { length: bytes.length, crc32c: crc32c(bytes), removed: false, bytes },
    },
  } as unknown as StoredMessage;
}

describe('peer codec', () => {
  it('sends an update\'s bytes as the payload itself, and decodes them with their block checksums', async () => {
    const bytes = Buffer.alloc(3 * 4096 + 5, 0x5a);
    const frame = await encodePeerMessage(update(bytes), bytesOf);
    expect(frame.payload).toBe(bytes);
    const got = decodePeerMessage({ header: JSON.parse(JSON.stringify(frame.header)) as Record<string, unknown>, payload: Buffer.from(bytes) });
    const c = (got.body as unknown as { content: StoredContent }).content;
    expect(Buffer.compare(c.bytes!, bytes)).toBe(0);
    expect(c.blockSums?.length).toBe(16);
    expect(c.blockSums!.readUInt32LE(12)).toBe(crc32c(bytes.subarray(3 * 4096)));
  });

  it('refuses bytes damaged on the way', async () => {
    const bytes = Buffer.alloc(10_000, 1);
    const frame = await encodePeerMessage(update(bytes), bytesOf);
    const damaged = Buffer.from(bytes);
    damaged[5000] = 2;
    expect(() => decodePeerMessage({ header: JSON.parse(JSON.stringify(frame.header)) as Record<string, unknown>, payload: damaged })).toThrow(expect.objectContaining({ code: 'FLYFS_ERR_CHECKSUM' }));
  });

  it('still reads the packed form (big messages, older peers)', async () => {
    const { packJsonPayload } = await import('../../common/frame.js');
    const bytes = Buffer.from('abc');
    const m = update(bytes);
    const json = { ...m, body: { ...m.body, content: { length: 3, crc32c: crc32c(bytes), removed: false } } };
    const got = decodePeerMessage({ header: {}, payload: packJsonPayload(json, [bytes]) });
    expect((got.body as unknown as { content: StoredContent }).content.bytes?.toString()).toBe('abc');
  });
});
