import { describe, expect, it } from 'vitest';
import { limits } from '../../common/limits.js';
import { encodeFrame, FIXED_HEADER_BYTES, FRAME_MAGIC, FrameDecoder, Op, REPLY_BIT, Status } from '../../common/frame.js';

const join = ([h, p]: [Buffer, Uint8Array]) => Buffer.concat([h, p]);

describe('frame codec', () => {
  it('round-trips frames fed byte by byte and in one piece', () => {
    const payload = Buffer.from('payload bytes');
    const a = join(encodeFrame({ op: Op.WriteChunk, requestId: 7, header: { chainId: 1, inodeId: 2 }, payload }));
    const b = join(encodeFrame({ op: Op.StatChunk, requestId: 8, header: { chainId: 3 } }));
    const all = Buffer.concat([a, b]);
    for (const step of [1, 5, all.length]) {
      const d = new FrameDecoder(false);
      const frames = [];
      for (let i = 0; i < all.length; i += step) {
        d.push(all.subarray(i, i + step));
        for (let f = d.next(); f; f = d.next()) frames.push(f);
      }
      expect(frames).toHaveLength(2);
      expect(frames[0]).toMatchObject({ op: Op.WriteChunk, requestId: 7, status: 0, header: { chainId: 1, inodeId: 2 } });
      expect(frames[0]!.payload).toEqual(payload);
      expect(frames[1]).toMatchObject({ op: Op.StatChunk, requestId: 8, header: { chainId: 3 } });
      expect(frames[1]!.payload.length).toBe(0);
    }
  });

  it('decodes replies with status and tells requests from replies', () => {
    const reply = join(encodeFrame({ op: Op.ReadChunk | REPLY_BIT, status: Status.Error, requestId: 1, header: { code: 'FLYFS_ERR_CHECKSUM', message: 'x' } }));
    const d = new FrameDecoder(true);
    d.push(reply);
    expect(d.next()).toMatchObject({ op: Op.ReadChunk, status: Status.Error, header: { code: 'FLYFS_ERR_CHECKSUM' } });
    const asRequest = new FrameDecoder(false);
    asRequest.push(reply);
    expect(() => asRequest.next()).toThrow(expect.objectContaining({ code: 'FLYFS_ERR_BAD_FRAME' }));
  });

  function fixed(fields: { magic?: number; version?: number; op?: number; headerLength?: number; payloadLength?: number }): Buffer {
    const h = Buffer.alloc(FIXED_HEADER_BYTES);
    h.writeUInt32LE(fields.magic ?? FRAME_MAGIC, 0);
    h.writeUInt8(fields.version ?? 1, 4);
    h.writeUInt8(fields.op ?? Op.ReadChunk, 5);
    h.writeUInt32LE(fields.headerLength ?? 2, 12);
    h.writeUInt32LE(fields.payloadLength ?? 0, 16);
    return h;
  }

  it.each([
    ['bad magic', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['bad version', fixed({ version: 9 })],
    ['unknown op', fixed({ op: 42 })],
    ['oversized header', fixed({ headerLength: limits.frameHeaderBytesMax + 1 })],
    ['oversized frame', fixed({ payloadLength: limits.frameBytesMax })],
    ['header that is not JSON', Buffer.concat([fixed({ headerLength: 3 }), Buffer.from('{{{')])],
    ['header that is not an object', Buffer.concat([fixed({ headerLength: 2 }), Buffer.from('42')])],
  ])('rejects %s with FLYFS_ERR_BAD_FRAME', (_name, bytes) => {
    const d = new FrameDecoder(false);
    d.push(bytes);
    expect(() => d.next()).toThrow(expect.objectContaining({ code: 'FLYFS_ERR_BAD_FRAME' }));
  });

  it('refuses to encode frames over the limits', () => {
    expect(() => encodeFrame({ op: Op.ReadChunk, requestId: 1, header: { s: 'x'.repeat(limits.frameHeaderBytesMax) } }))
      .toThrow(expect.objectContaining({ code: 'FLYFS_ERR_MESSAGE_TOO_LARGE' }));
  });
});

describe('frame decoder assembly', () => {
  it('copies a frame that spans chunks in as its bytes arrive, and keeps what follows it', () => {
    const payload = Buffer.alloc(300_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    const big = join(encodeFrame({ op: Op.WriteChunk, requestId: 1, header: { n: 1 }, payload }));
    const small = join(encodeFrame({ op: Op.StatChunk, requestId: 2, header: { n: 2 } }));
    const all = Buffer.concat([big, small, small]);
    const d = new FrameDecoder(false);
    const frames = [];
    for (let i = 0; i < all.length; i += 65_536) {
      const piece = Buffer.from(all.subarray(i, i + 65_536));
      d.push(piece);
      for (let f = d.next(); f; f = d.next()) frames.push(f);
      piece.fill(0); // once asked for frames, the decoder holds no view of the chunks of one it assembles
      if (frames.length === 0) expect(d.bufferedBytes).toBe(Math.min(all.length, i + 65_536));
    }
    expect(frames.map((f) => f.requestId)).toEqual([1, 2, 2]);
    expect(Buffer.compare(frames[0]!.payload, payload)).toBe(0);
    expect(d.bufferedBytes).toBe(0);
  });
});
