import type { LivePubSub } from './pub-sub';
import type { Topic, TopicPayloads } from './topics';

/**
 * What a subscription field returns: the current state (`snapshot`, sent first) and the topic
 * and subject whose events follow. The WebSocket server recognises it and delivers the events
 * itself, once per subject for every subscriber of it (live/fan-out.ts). Iterated directly it
 * is the snapshot, then every event published from the first `next()` after it.
 */
export class LiveStream<T extends Topic> implements AsyncIterableIterator<TopicPayloads[T]> {
  private index = 0;
  private events: AsyncIterator<TopicPayloads[T]> | null = null;
  private ended = false;

  constructor(
    readonly topic: T,
    readonly subject: string,
    readonly snapshot: ReadonlyArray<TopicPayloads[T]>,
    private readonly pubSub: LivePubSub,
  ) {}

  [Symbol.asyncIterator](): AsyncIterableIterator<TopicPayloads[T]> {
    return this;
  }

  async next(): Promise<IteratorResult<TopicPayloads[T]>> {
    if (this.ended) return { done: true, value: undefined };
    if (this.index < this.snapshot.length) return { done: false, value: this.snapshot[this.index++] };
    this.events ??= this.pubSub.subscribe(this.topic, this.subject)[Symbol.asyncIterator]();
    return this.events.next();
  }

  async return(): Promise<IteratorResult<TopicPayloads[T]>> {
    this.ended = true;
    await this.events?.return?.();
    return { done: true, value: undefined };
  }
}
