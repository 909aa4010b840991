// Where the other metaservers are, and the transport of the chain between them. Addresses come
// from the configuration (`--peer id=host:port`, gRPC only) or from a folder where each
// metaserver publishes its addresses when it starts (`--peers-dir`, used by `flyfs up` and
// tests, whose ports are ephemeral). Deliver goes over the framed RPC when the peer published
// one (common/framed-rpc.ts), else over gRPC; snapshots stream over gRPC. Sends are
// fire-and-forget: the protocol tolerates loss.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { channelOptions, grpc, loadProtos, type ReplicationProto } from '../../common/grpc.js';
import { flyfsError } from '../../common/errors.js';
import { FramedPool } from '../../common/framed-connection.js';
import { framedServiceClient } from '../../common/framed-rpc.js';
import type { Logger } from '../../common/log.js';
import type { TableName } from '../tables.js';
import { packMessages, replicationLimits, unpackRows } from './codec.js';
import type { MetaPayload } from './log-store.js';
import type { ReplicaTransport, SnapshotData } from './replica.js';
import type { Message, ReplicaId } from './types.js';

type ReplicationClient = InstanceType<ReplicationProto['flyfs']['v1']['Replication']>;

const peerFileRefreshMs = 500;
const deliverDeadlineMs = 2_000;
/** A Deliver call carries at most this much, unless it is one message. */
const deliverBytesSoftMax = 512 * 1024;
const snapshotDeadlineMs = 60_000;

export interface PeerAddressFile {
  readonly replicaId: ReplicaId; readonly grpcAddress: string; readonly httpAddress: string; readonly pid: number;
  /** The framed RPC's address; absent for a peer that does not serve one. */
  readonly framedAddress?: string;
}

interface PeerAddresses { grpc: string; framed: string | undefined }

export function peerFilePath(dir: string, id: ReplicaId): string { return join(dir, `metaserver-${id}.json`); }

/** Publishes this metaserver's address for its peers (atomically: write aside, rename). */
export function publishPeerAddress(dir: string, a: PeerAddressFile): void {
  const path = peerFilePath(dir, a.replicaId);
  writeFileSync(`${path}.tmp`, JSON.stringify(a));
  renameSync(`${path}.tmp`, path);
}

export function readPeerAddress(dir: string, id: ReplicaId): PeerAddressFile | undefined {
  try { return JSON.parse(readFileSync(peerFilePath(dir, id), 'utf8')) as PeerAddressFile; } catch { return undefined; }
}

export class PeerDirectory {
  private readonly cache = new Map<ReplicaId, { addresses: PeerAddresses | undefined; readMs: number }>();

  constructor(private readonly o: { static: ReadonlyMap<ReplicaId, string>; dir: string | undefined }) {}

  /** The gRPC address of a peer (also what redirect hints name). */
  addressOf(id: ReplicaId): string | undefined { return this.addressesOf(id)?.grpc; }

  addressesOf(id: ReplicaId): PeerAddresses | undefined {
    const fixed = this.o.static.get(id);
    if (fixed !== undefined || this.o.dir === undefined) return fixed === undefined ? undefined : { grpc: fixed, framed: undefined };
    const now = Date.now();
    const c = this.cache.get(id);
    if (c !== undefined && now - c.readMs < peerFileRefreshMs) return c.addresses;
    const file = readPeerAddress(this.o.dir, id);
    const addresses = file === undefined ? undefined : { grpc: file.grpcAddress, framed: file.framedAddress };
    this.cache.set(id, { addresses, readMs: now });
    return addresses;
  }
}

/** Framed connections kept to each peer. */
const framedConnectionsPerPeer = 1;

export class PeerTransport implements ReplicaTransport {
  private readonly clients = new Map<ReplicaId, { address: string; client: ReplicationClient }>();
  private readonly framedClients = new Map<ReplicaId, { address: string; client: ReplicationClient }>();
  private readonly framedPool = new FramedPool(framedConnectionsPerPeer);
  private readonly Client = loadProtos().flyfs.v1.Replication;

  constructor(private readonly self: ReplicaId, private readonly peers: PeerDirectory, private readonly logger: Logger) {}

  addressOf(id: ReplicaId): string | undefined { return this.peers.addressOf(id); }

  private client(id: ReplicaId): ReplicationClient | undefined {
    const address = this.peers.addressOf(id);
    if (address === undefined) return undefined;
    const known = this.clients.get(id);
    if (known !== undefined && known.address === address) return known.client;
    known?.client.close();
    const client = new this.Client(address, grpc.credentials.createInsecure(), channelOptions);
    this.clients.set(id, { address, client });
    return client;
  }

  /** The framed client of a peer that serves the framed RPC, else its gRPC client. */
  private deliverClient(id: ReplicaId): ReplicationClient | undefined {
    const framed = this.peers.addressesOf(id)?.framed;
    if (framed === undefined) return this.client(id);
    const known = this.framedClients.get(id);
    if (known !== undefined && known.address === framed) return known.client;
    const client = framedServiceClient<ReplicationClient>(this.Client.service, this.framedPool, framed);
    this.framedClients.set(id, { address: framed, client });
    return client;
  }

  send(to: ReplicaId, messages: Message<MetaPayload>[]): void {
    const c = this.deliverClient(to);
    if (c === undefined) return;
    // Bounded calls: a big catch-up goes as several, each arriving (and acknowledged) on its
    // own well within the deadline, instead of one that may miss it and be sent again whole.
    const deliver = (group: Message<MetaPayload>[]): void => {
      const bytes = packMessages(group);
      if (group.length > 1 && (bytes.length > deliverBytesSoftMax || group.length > replicationLimits.batchMessagesMax)) {
        const half = group.length >> 1;
        deliver(group.slice(0, half));
        deliver(group.slice(half));
        return;
      }
      c.Deliver({ from: this.self, messages: bytes }, new grpc.Metadata(), { deadline: Date.now() + deliverDeadlineMs }, () => undefined);
    };
    deliver(messages);
  }

  fetchSnapshot(from: ReplicaId): Promise<SnapshotData> {
    const c = this.client(from);
    if (c === undefined) return Promise.reject(flyfsError('FLYFS_ERR_UNAVAILABLE', `no address for metaserver ${from}`));
    return new Promise((resolve, reject) => {
      const rows: Array<readonly [TableName, unknown, unknown]> = [];
      let head: { index: number; epoch: number } | undefined;
      let done = false;
      const call = c.FetchSnapshot({ from: this.self }, { deadline: Date.now() + snapshotDeadlineMs });
      call.on('data', (chunk: { index: number; epoch: number; rows: Buffer; last: boolean }) => {
        head ??= { index: chunk.index, epoch: chunk.epoch };
        for (const r of unpackRows(chunk.rows)) rows.push(r as readonly [TableName, unknown, unknown]);
        if (chunk.last) { done = true; resolve({ ...head, rows }); }
      });
      call.on('error', (err) => { if (!done) reject(err); });
      call.on('end', () => { if (!done) reject(flyfsError('FLYFS_ERR_CLOSED', 'snapshot stream ended early')); });
    });
  }

  close(): void {
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
    this.framedPool.close();
    this.framedClients.clear();
    this.logger.debug('replica transport closed');
  }
}
