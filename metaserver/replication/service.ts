// gRPC handlers of the Replication service: core messages in, snapshots out. Only configured
// metaservers may speak here; a malformed batch is refused whole and the replica goes on.
import { flyfsError } from '../../common/errors.js';
import { grpc, unary } from '../../common/grpc.js';
import type { ReplicationHandlers } from '../../proto/gen/flyfs/v1/Replication.js';
import type { SnapshotChunk } from '../../proto/gen/flyfs/v1/SnapshotChunk.js';
import type { SnapshotRequest__Output } from '../../proto/gen/flyfs/v1/SnapshotRequest.js';
import { packRows, replicationLimits, unpackMessages } from './codec.js';
import type { MetaReplica } from './replica.js';
import type { ReplicaId } from './types.js';

export function replicationHandlers(replica: MetaReplica, self: ReplicaId, members: readonly ReplicaId[]): ReplicationHandlers {
  return {
    Deliver: unary(async (req) => {
      if (req === null || typeof req !== 'object' || !members.includes(req.from) || req.from === self) {
        throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `replica batch from a non-member`);
      }
      const messages = unpackMessages(req.messages, req.from, members);
      if (messages.some((m) => m.to !== self)) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'replica batch for another member');
      replica.receive(messages);
      return {};
    }),
    FetchSnapshot: (call: grpc.ServerWritableStream<SnapshotRequest__Output, SnapshotChunk>) => {
      if (!members.includes(call.request.from) || call.request.from === self) {
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'snapshot request from a non-member' });
        return;
      }
      const snap = replica.snapshot();
      const per = replicationLimits.snapshotRowsPerChunk;
      const chunks = Math.max(1, Math.ceil(snap.rows.length / per));
      let i = 0;
      // Backpressure: write the next chunk only when the stream drained the last.
      const pump = (): void => {
        while (i < chunks) {
          const rows = snap.rows.slice(i * per, (i + 1) * per);
          const last = i === chunks - 1;
          i++;
          const more = call.write({ index: snap.index, epoch: snap.epoch, rows: packRows(rows), last });
          if (last) { call.end(); return; }
          if (!more) { call.once('drain', pump); return; }
        }
      };
      pump();
    },
  };
}
