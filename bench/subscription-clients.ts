/**
 * Subscriber process of workload (g) of `npm run bench` (forked by bench/subscribers.ts).
 * Holds raw `ws` sockets speaking graphql-transport-ws, one `quotaChanged` subscription per
 * socket, and records when each event arrives. Commands come over IPC:
 *
 *   { type: 'connect', url, secrets, organizationId, count, concurrency }
 *        → opens `count` more sockets (connection_init → connection_ack → subscribe → first
 *          event, the snapshot), at most `concurrency` handshakes at a time;
 *          answers { type: 'connected', opened, failed, failures, open, snapshotUsed }
 *   { type: 'count' }   → { type: 'count', arrivals, open }
 *   { type: 'collect' } → { type: 'collected', used: number[], at: number[], problems } and forgets them
 *   { type: 'close' }   → closes every socket (1000), { type: 'closed' }
 *
 * Arrival times are CLOCK_MONOTONIC (process.hrtime), in microseconds: the same clock in
 * every process of the machine, so they compare with the orchestrator's send times.
 */
import fs from 'node:fs';
import { WebSocket } from 'ws';

interface ConnectCommand {
  type: 'connect';
  url: string;
  secrets: string[];
  organizationId: string;
  count: number;
  concurrency: number;
}
type Command = ConnectCommand | { type: 'count' } | { type: 'collect' } | { type: 'close' };

const QUERY = 'subscription ($organizationId: ID) { quotaChanged(organizationId: $organizationId) { organizationId meter period used percentUsed } }';
const HANDSHAKE_TIMEOUT_MS = 30_000;

const nowMicros = (): number => Number(process.hrtime.bigint() / 1000n);

const sockets = new Set<WebSocket>();
let used: number[] = [];
let at: number[] = [];
/** Things that should not happen once connected: unexpected closes, error messages, bad events. */
let problems: string[] = [];
let secretIndex = 0;
/** Set while closing on request, so our own closes are not reported as problems. */
let closing = false;

function note(problem: string): void {
  if (problems.length < 50) problems.push(problem);
}

/** Opens one socket and resolves with the snapshot's `used` once the subscription is live. */
function openOne(command: ConnectCommand): Promise<number> {
  const secret = command.secrets[secretIndex++ % command.secrets.length];
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(command.url, 'graphql-transport-ws', { perMessageDeflate: false });
    let live = false;
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error(`no snapshot within ${HANDSHAKE_TIMEOUT_MS / 1000} s`));
    }, HANDSHAKE_TIMEOUT_MS);
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${secret}` } }));
    });
    socket.on('message', (data: Buffer) => {
      const arrived = nowMicros();
      let message: { type?: string; id?: string; payload?: any };
      try {
        message = JSON.parse(data.toString());
      } catch {
        note(`not JSON: ${data.toString().slice(0, 200)}`);
        return;
      }
      if (message.type === 'next') {
        const status = message.payload?.data?.quotaChanged;
        if (!status || typeof status.used !== 'number') {
          note(`unexpected next: ${JSON.stringify(message.payload).slice(0, 300)}`);
          return;
        }
        if (!live) {
          live = true;
          clearTimeout(timer);
          sockets.add(socket);
          resolve(status.used);
          return;
        }
        used.push(status.used);
        at.push(arrived);
      } else if (message.type === 'connection_ack') {
        socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: QUERY, variables: { organizationId: command.organizationId } } }));
      } else if (message.type === 'ping') {
        socket.send(JSON.stringify({ type: 'pong' }));
      } else if (message.type === 'error' || message.type === 'complete') {
        const text = `${message.type}: ${JSON.stringify(message.payload ?? null).slice(0, 300)}`;
        if (!live) {
          clearTimeout(timer);
          socket.close(1000);
          reject(new Error(text));
        } else note(text);
      }
    });
    socket.on('error', (error) => {
      if (!live) {
        clearTimeout(timer);
        reject(error);
      } else note(`socket error: ${error.message}`);
    });
    socket.on('close', (code, reason) => {
      const wasOpen = sockets.delete(socket);
      if (!live) {
        clearTimeout(timer);
        reject(new Error(`closed ${code} ${reason.toString()}`));
      } else if (wasOpen && !closing) note(`socket closed by the server: ${code} ${reason.toString()}`);
    });
  });
}

async function connect(command: ConnectCommand): Promise<void> {
  let next = 0;
  let opened = 0;
  const failures = new Map<string, number>();
  const snapshotUsed = new Set<number>();
  const worker = async () => {
    while (next < command.count) {
      next++;
      try {
        snapshotUsed.add(await openOne(command));
        opened++;
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        failures.set(reason, (failures.get(reason) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(command.concurrency, command.count) }, worker));
  process.send!({
    type: 'connected',
    opened,
    failed: command.count - opened,
    failures: [...failures.entries()].map(([reason, count]) => `${count}× ${reason}`),
    open: sockets.size,
    snapshotUsed: [...snapshotUsed],
  });
}

async function closeAll(): Promise<void> {
  closing = true;
  const all = [...sockets];
  await Promise.all(all.map((socket) => new Promise<void>((resolve) => {
    if (socket.readyState === WebSocket.CLOSED) return resolve();
    const timer = setTimeout(() => {
      socket.terminate();
      resolve();
    }, 5_000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.close(1000, 'bench done');
  })));
  sockets.clear();
  process.send!({ type: 'closed' });
}

process.on('message', (command: Command) => {
  switch (command.type) {
    case 'connect':
      void connect(command);
      break;
    case 'count':
      process.send!({ type: 'count', arrivals: used.length, open: sockets.size });
      break;
    case 'collect':
      process.send!({ type: 'collected', used, at, problems });
      used = [];
      at = [];
      problems = [];
      break;
    case 'close':
      void closeAll();
      break;
  }
});
process.on('disconnect', () => {
  for (const socket of sockets) socket.terminate();
  process.exit(0);
});

const limits = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((line) => line.startsWith('Max open files'));
process.send!({ type: 'ready', openFiles: limits?.replace(/\s+/g, ' ').trim() ?? 'unknown' });
