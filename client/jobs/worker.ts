// A job worker process (`flyfs job worker --cluster ADDR`): takes tasks from its driver over the
// IPC channel and answers each with its manifest or its error; it runs the tasks it is given
// side by side (the driver bounds how many, RunJobOptions.tasksPerWorker). It needs nothing
// but flyfs access: a task names its inputs and its output folder in flyfs. It exits when the
// driver goes away.
import { connect } from '../index.js';
import type { Task, TaskManifest } from './plan.js';
import { runTask, sweepScratch, TaskInputError } from './task.js';

export type ToWorker = { type: 'task'; task: Task; attempt: number };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'done'; id: string; manifest: TaskManifest }
  | { type: 'failed'; id: string; message: string; input: boolean; file?: string };

export async function runWorker(cluster: string): Promise<void> {
  if (process.send === undefined) throw new Error('a job worker runs as a child of its driver (IPC)');
  const send = (m: FromWorker): void => { process.send?.(m); };
  // The driver is gone: stop at once, mid-task or not (also while still starting). The attempt
  // never published; its scratch folder is swept by the next worker on this host, its attempt
  // folder in flyfs when its stage completes.
  process.on('disconnect', () => process.exit(0));
  await sweepScratch();
  const fs = await connect(cluster, { deadlineMs: 60_000 });
  if (!process.connected) process.exit(0);
  process.on('message', (m: ToWorker) => {
    if (m?.type !== 'task') return;
    void (async () => {
      try {
        send({ type: 'done', id: m.task.id, manifest: await runTask(fs, m.task, m.attempt) });
      } catch (err) {
        const input = err instanceof TaskInputError;
        send({ type: 'failed', id: m.task.id, message: (err as Error).message, input, ...(input && err.file !== undefined ? { file: err.file } : {}) });
      }
    })();
  });
  send({ type: 'ready' });
}
