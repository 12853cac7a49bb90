import { DocumentNode, execute, ExecutionArgs, ExecutionResult, print } from 'graphql';
import { WebSocket } from 'ws';
import type { LivePubSub } from './pub-sub';
import { LiveStream } from './live-stream';
import type { Topic } from './topics';

/**
 * How many sockets get a frame before the fan-out yields to the event loop. A frame costs 5–50 µs
 * (one socket write; more on a busy core), so a slice holds the loop for 0.5–5 ms: that is how
 * long a request arriving during a large fan-out (the next quota change, a verifyKey) waits.
 */
export const FAN_OUT_SLICE = 100;
/** Events kept for a subscriber whose snapshot is still being sent (older ones go first). */
const BACKLOG_LIMIT = 100;

/** One subscription of one socket. */
interface Member {
  socket: WebSocket;
  /** The client's id of the subscription: part of every frame. */
  id: string;
  args: ExecutionArgs;
  /** snapshot: graphql-ws is still sending the first events; live: frames go straight to the socket. */
  state: 'snapshot' | 'live' | 'ended';
  /** Events of the group that arrived while the snapshot was being sent, sent after it. */
  backlog: ExecutionResult[];
  /** Resolves graphql-ws's pending `next()` once the subscription ends. */
  end: (() => void) | null;
}

/** Every subscription of one subject with the same document, variables and operation. */
interface Group {
  members: Set<Member>;
  events: AsyncIterator<unknown>;
  /** Deliveries run one after the other: every subscriber sees the subject's events in order. */
  delivering: Promise<void>;
}

const printed = new WeakMap<DocumentNode, string>();

/**
 * Live events to WebSocket subscribers, computed and encoded once and written to all of them:
 * one pub/sub subscription per group of subscriptions (same subject, document, variables and
 * operation), one execution of the selection per event, one encoded `next` frame per event and
 * subscription id, then the same bytes to every socket of the group, `FAN_OUT_SLICE` sockets at a
 * time with the event loop free in between. Delivery starts on the next turn of the event loop,
 * so the request that caused an event is answered before its subscribers hear of it.
 *
 * A subscription's snapshot (LiveStream.snapshot) still goes through graphql-ws, per subscriber;
 * events that arrive meanwhile wait in its backlog and follow it, in order.
 *
 * What a selection returns does not depend on who asks (tenancy and scopes were checked when
 * subscribing), so executing it once for the group is the same as executing it for each.
 */
export class FanOut {
  private readonly groups = new Map<string, Group>();

  /** Told of every event delivered: seconds from its arrival here to its last frame written, and to how many sockets. */
  observer: ((seconds: number, sockets: number) => void) | null = null;

  constructor(private readonly pubSub: LivePubSub, private readonly onError: (error: unknown) => void) {}

  /** Subscriptions open through the fan-out. */
  get size(): number {
    let count = 0;
    for (const group of this.groups.values()) count += group.members.size;
    return count;
  }

  /** The iterator graphql-ws drives for one subscription whose source is `stream`. */
  attach(stream: LiveStream<Topic>, args: ExecutionArgs, socket: WebSocket, id: string): AsyncIterableIterator<ExecutionResult> {
    const key = groupKey(stream, args);
    let group = this.groups.get(key);
    if (!group) {
      group = { members: new Set(), events: this.pubSub.subscribe(stream.topic, stream.subject)[Symbol.asyncIterator](), delivering: Promise.resolve() };
      this.groups.set(key, group);
      void this.listen(key, group);
    }
    const member: Member = { socket, id, args, state: 'snapshot', backlog: [], end: null };
    group.members.add(member);
    const snapshot = [...stream.snapshot];
    const leave = () => {
      if (member.state === 'ended') return;
      member.state = 'ended';
      member.end?.();
      group!.members.delete(member);
      if (group!.members.size === 0 && this.groups.get(key) === group) {
        this.groups.delete(key);
        void group!.events.return?.();
      }
    };
    const iterator: AsyncIterableIterator<ExecutionResult> = {
      [Symbol.asyncIterator]: () => iterator,
      async next() {
        if (member.state === 'ended') return { done: true, value: undefined };
        const first = snapshot.shift();
        if (first !== undefined) return { done: false, value: await execute({ ...args, rootValue: first }) };
        const waiting = member.backlog.shift();
        if (waiting) return { done: false, value: waiting };
        // graphql-ws has sent everything so far: from now on frames go straight to the socket.
        member.state = 'live';
        await new Promise<void>((resolve) => { member.end = resolve; });
        return { done: true, value: undefined };
      },
      async return() {
        leave();
        return { done: true, value: undefined };
      },
    };
    return iterator;
  }

  private async listen(key: string, group: Group): Promise<void> {
    try {
      for (let next = await group.events.next(); !next.done; next = await group.events.next()) {
        const payload = next.value;
        const arrived = performance.now();
        group.delivering = group.delivering.then(() => this.deliver(group, payload, arrived)).catch(this.onError);
      }
    } finally {
      // The source ended (shutdown): so do its subscriptions.
      if (this.groups.get(key) === group) this.groups.delete(key);
      await group.delivering;
      for (const member of [...group.members]) {
        member.state = 'ended';
        member.end?.();
      }
    }
  }

  private async deliver(group: Group, payload: unknown, arrived: number): Promise<void> {
    // After the current turn: the causing request is answered first.
    await new Promise((resolve) => setImmediate(resolve));
    const first = group.members.values().next().value as Member | undefined;
    if (!first) return;
    const result = await execute({ ...first.args, rootValue: payload });
    const frames = new Map<string, Buffer>();
    const frameFor = (id: string) => {
      let frame = frames.get(id);
      if (!frame) frames.set(id, (frame = Buffer.from(JSON.stringify({ id, type: 'next', payload: result }))));
      return frame;
    };
    let written = 0;
    for (const member of [...group.members]) {
      if (member.state === 'snapshot') {
        if (member.backlog.push(result) > BACKLOG_LIMIT) member.backlog.shift();
      } else if (member.state === 'live' && member.socket.readyState === WebSocket.OPEN) {
        member.socket.send(frameFor(member.id), { binary: false });
        if (++written % FAN_OUT_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    }
    this.observer?.((performance.now() - arrived) / 1000, written);
  }
}

function groupKey(stream: LiveStream<Topic>, args: ExecutionArgs): string {
  let text = printed.get(args.document);
  if (!text) printed.set(args.document, (text = print(args.document)));
  return `${stream.topic}\u0000${stream.subject}\u0000${args.operationName ?? ''}\u0000${text}\u0000${JSON.stringify(args.variableValues ?? {})}`;
}
