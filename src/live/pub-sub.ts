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

/**
 * Events published on any instance reach subscribers on every instance (Redis pub/sub).
 * The event target does not handle failed PUBLISH / SUBSCRIBE commands; while Redis is down
 * they are logged here instead of becoming unhandled rejections (which would end the process).
 */
export function redisPubSub(publisher: Redis, subscriber: Redis, onError: (error: unknown, command: string) => void): LivePubSub {
  return wrap(createRedisEventTarget({ publishClient: guarded(publisher, onError), subscribeClient: guarded(subscriber, onError) }));
}

function guarded(client: Redis, onError: (error: unknown, command: string) => void): Redis {
  const commands = new Set(['publish', 'subscribe', 'unsubscribe']);
  return new Proxy(client, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      if (typeof property === 'string' && commands.has(property)) {
        return (...args: unknown[]) => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args).catch((error) => onError(error, property));
      }
      return value.bind(target);
    },
  });
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
