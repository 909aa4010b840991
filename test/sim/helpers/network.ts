// A lossy network over the scheduler: each send is delayed by a random amount (so messages
// reorder), and may be dropped or duplicated. Generic over the message type and addresses.
import type { Prng } from './prng.js';
import type { EventQueue } from './event-queue.js';

export interface NetworkFaults {
  dropProbability: number;
  duplicateProbability: number;
  delayMin: number;
  delayMax: number;
}

export const reliableNetwork: NetworkFaults = { dropProbability: 0, duplicateProbability: 0, delayMin: 1, delayMax: 5 };

export class Network<A, M> {
  faults: NetworkFaults;
  sent = 0;
  dropped = 0;

  constructor(
    private readonly scheduler: EventQueue,
    private readonly prng: Prng,
    faults: NetworkFaults,
    private readonly deliver: (to: A, message: M) => void,
  ) {
    this.faults = faults;
  }

  send(to: A, message: M): void {
    this.sent++;
    if (this.prng.chance(this.faults.dropProbability)) {
      this.dropped++;
      return;
    }
    const copies = this.prng.chance(this.faults.duplicateProbability) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.scheduler.after(this.prng.int(this.faults.delayMin, this.faults.delayMax), () => this.deliver(to, message));
    }
  }
}
