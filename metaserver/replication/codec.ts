// Packs the chain core's messages for the wire (msgpack keeps LMDB keys and values as they are)
// and checks the shape of what arrives: the core asserts its invariants, so nothing malformed
// may reach it. A bad batch is refused whole with INVALID_ARGUMENT.
import { Packr } from 'msgpackr';
import { flyfsError } from '../../common/errors.js';
import { tableNames } from '../tables.js';
import type { MetaPayload } from './log-store.js';
import type { ChainConfig, Entry, Message } from './types.js';

const packr = new Packr({ structuredClone: false, useRecords: false, moreTypes: false });

export const replicationLimits = {
  /** Messages in one Deliver batch. */
  batchMessagesMax: 4096,
  /** Members of a chain configuration. */
  chainMembersMax: 16,
  /** Rows in one snapshot chunk. */
  snapshotRowsPerChunk: 2048,
} as const;

export function packMessages(messages: readonly Message<MetaPayload>[]): Buffer {
  return packr.pack(messages);
}

export function unpackMessages(bytes: Buffer, from: number, members: readonly number[]): Message<MetaPayload>[] {
  let value: unknown;
  try { value = packr.unpack(bytes); } catch (err) {
    throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `replica batch does not decode: ${(err as Error).message}`);
  }
  if (!Array.isArray(value) || value.length > replicationLimits.batchMessagesMax) bad('a batch is an array of at most ' + replicationLimits.batchMessagesMax + ' messages');
  for (const m of value) checkMessage(m, from, members);
  return value as Message<MetaPayload>[];
}

export function packRows(rows: readonly unknown[]): Buffer { return packr.pack(rows); }

export function unpackRows(bytes: Buffer): Array<[string, unknown, unknown]> {
  const rows = packr.unpack(bytes) as unknown;
  if (!Array.isArray(rows)) bad('snapshot rows');
  for (const r of rows) {
    if (!Array.isArray(r) || r.length !== 3 || !(tableNames as readonly string[]).includes(r[0] as string)) bad('snapshot row');
  }
  return rows as Array<[string, unknown, unknown]>;
}

function bad(detail: string): never { throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `replica message: ${detail}`); }

const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function checkConfig(c: unknown, members: readonly number[]): asserts c is ChainConfig {
  const x = c as Partial<ChainConfig> | null;
  if (x === null || typeof x !== 'object' || !isIndex(x.epoch) || !isIndex(x.startIndex) || !Array.isArray(x.chain)) bad('config');
  if (x.chain.length > replicationLimits.chainMembersMax || new Set(x.chain).size !== x.chain.length || !x.chain.every((id) => members.includes(id as number))) bad('chain');
}

function checkEntry(e: unknown): asserts e is Entry<MetaPayload> {
  const x = e as Partial<Entry<MetaPayload>> | null;
  if (x === null || typeof x !== 'object' || !isIndex(x.index) || x.index === 0 || !isIndex(x.epoch)) bad('entry');
  if (x.payload === null) return;
  const p = x.payload as Partial<MetaPayload> | undefined;
  if (p === undefined || typeof p !== 'object' || !Array.isArray(p.writes)) bad('entry payload');
  for (const w of p.writes) {
    if (!Array.isArray(w) || w.length !== 3 || !(tableNames as readonly string[]).includes(w[0] as string)) bad('write');
  }
}

const numberFields: Record<Message<unknown>['kind'], readonly string[]> = {
  ping: ['sentAtMs', 'promised', 'lastIndex', 'lastEpoch', 'commitIndex'],
  pong: ['sentAtMs', 'promised', 'lastIndex', 'lastEpoch', 'commitIndex'],
  prepare: ['epoch', 'lastIndex', 'lastEpoch'],
  promise: ['epoch', 'lastIndex', 'lastEpoch', 'commitIndex'],
  accept: [],
  accepted: ['epoch'],
  append: ['prevIndex', 'prevEpoch', 'commitIndex'],
  appendAck: ['matchIndex', 'hint', 'commitIndex'],
  snapshotOffer: ['index'],
};

function checkMessage(m: unknown, from: number, members: readonly number[]): void {
  const x = m as Record<string, unknown> | null;
  if (x === null || typeof x !== 'object' || typeof x.kind !== 'string' || !Object.hasOwn(numberFields, x.kind)) bad('kind');
  if (x.from !== from || !members.includes(x.to as number)) bad('from/to');
  checkConfig(x.config, members);
  for (const f of numberFields[x.kind as Message<unknown>['kind']]) {
    const v = x[f];
    if (typeof v !== 'number' || !Number.isFinite(v) || (f !== 'sentAtMs' && !isIndex(v))) bad(f);
  }
  if (x.kind === 'pong' && typeof x.granted !== 'boolean') bad('granted');
  if ((x.kind === 'promise' || x.kind === 'accepted') && typeof x.ok !== 'boolean') bad('ok');
  if (x.kind === 'appendAck' && typeof x.ok !== 'boolean') bad('ok');
  if (x.kind === 'accept') checkConfig(x.proposal, members);
  if (x.kind === 'append') {
    if (!Array.isArray(x.entries)) bad('entries');
    let next = (x.prevIndex as number) + 1;
    for (const e of x.entries) { checkEntry(e); if (e.index !== next++) bad('entries are not consecutive'); }
  }
}
