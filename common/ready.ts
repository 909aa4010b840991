// How a role process tells its parent it is up: exactly one JSON line on stdout,
// {"event":"ready", ...ReadyInfo}. Everything else a role prints goes to stderr (logs).
export interface ReadyInfo {
  role: 'metaserver' | 'storageserver' | 'kvcache';
  pid: number;
  nodeId?: number;
  grpcAddress: string;
  httpAddress: string;
  dataAddress?: string;
}

export const READY_EVENT = 'ready';

export function announceReady(info: ReadyInfo): void {
  process.stdout.write(JSON.stringify({ event: READY_EVENT, ...info }) + '\n');
}

export function parseReadyLine(line: string): ReadyInfo | undefined {
  try {
    const v = JSON.parse(line) as { event?: unknown } & ReadyInfo;
    return v.event === READY_EVENT ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Stops `stop` once on SIGINT/SIGTERM, then exits 0 (or 1 if stopping failed). */
export function stopOnSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) return;
    stopping = true;
    stop().then(() => process.exit(0), (err: unknown) => { console.error(err); process.exit(1); });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
