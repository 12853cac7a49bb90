import { setMaxListeners } from 'node:events';
import { createPubSub } from '@graphql-yoga/subscription';
import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import type Redis from 'ioredis';
import { Topic, TopicPayloads } from './topics';

/**
 * Live events by topic and subject id. In process by default; with REDIS_URL a Redis-backed
 * event target carries them between instances (payloads then travel as JSON).
 */
export interface LivePubSub {
  publish<T extends Topic>(topic: T, id: string, payload: TopicPayloads[T]): void;
  subscribe<T extends Topic>(topic: T, id: string): AsyncIterable<TopicPayloads[T]>;
}

type PublishArgs = { [T in Topic]: [id: string, payload: TopicPayloads[T]] };

export function inProcessPubSub(): LivePubSub {
  // One listener per subscriber of a subject: thousands are expected, not a leak.
  const eventTarget = new EventTarget();
  setMaxListeners(0, eventTarget);
  return wrap(eventTarget);
}

/** Events published on any instance reach subscribers on every instance (Redis pub/sub). */
export function redisPubSub(publisher: Redis, subscriber: Redis): LivePubSub {
  return wrap(createRedisEventTarget({ publishClient: publisher, subscribeClient: subscriber }));
}

function wrap(eventTarget: unknown): LivePubSub {
  const pubSub = createPubSub<PublishArgs>({ eventTarget: eventTarget as never });
  return {
    publish(topic, id, payload) {
      (pubSub.publish as (topic: string, id: string, payload: unknown) => void)(topic, id, payload);
    },
    subscribe(topic, id) {
      return (pubSub.subscribe as (topic: string, id: string) => AsyncIterable<never>)(topic, id);
    },
  };
}
