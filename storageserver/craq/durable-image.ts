// A replica's durable state as the I/O shell (or a simulator's disk) holds it: the writes a
// step emits applied in order. Restarting a replica from `snapshot()` is what survives a crash.
import type { ClientEntry, ChunkRecord, DurableState, DurableWrite } from './types.js';
import { chunkName, writeName } from './chunk-name.js';

export class DurableImage<C = Uint8Array> {
  private readonly chunks = new Map<string, ChunkRecord<C>>();
  private readonly clients = new Map<string, ClientEntry>();

  constructor(initial?: DurableState<C>) {
    for (const r of initial?.chunks ?? []) this.chunks.set(chunkName(r.chunk), r);
    for (const c of initial?.clients ?? []) this.clients.set(writeName(c.clientId, c.requestId), c);
  }

  apply(write: DurableWrite<C>): void {
    switch (write.kind) {
      case 'putChunk': this.chunks.set(chunkName(write.record.chunk), write.record); break;
      case 'deleteChunk': this.chunks.delete(chunkName(write.chunk)); break;
      case 'putClient': this.clients.set(writeName(write.entry.clientId, write.entry.requestId), write.entry); break;
      case 'deleteClient': this.clients.delete(writeName(write.clientId, write.requestId)); break;
    }
  }

  get(name: string): ChunkRecord<C> | undefined {
    return this.chunks.get(name);
  }

  snapshot(): DurableState<C> {
    return { chunks: [...this.chunks.values()], clients: [...this.clients.values()] };
  }
}
