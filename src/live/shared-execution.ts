import { createSourceEventStream, execute, ExecutionArgs, ExecutionResult } from 'graphql';
import { mapIterator } from './iterators';
import { LiveStream } from './live-stream';
import type { FanOut } from './fan-out';
import type { Context } from '../context';

/**
 * The event stream of a WebSocket subscription. A LiveStream (what every subscription field
 * returns) goes through the fan-out, which executes and encodes each event once for all the
 * subscribers of its subject; any other event source is executed per subscriber.
 */
export async function subscribeLive(args: ExecutionArgs, fanOut: FanOut): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const source = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in source)) return source as ExecutionResult;
  const delivery = (args.contextValue as Context).subscription;
  if (source instanceof LiveStream && delivery) return fanOut.attach(source, args, delivery.socket, delivery.id);
  return mapIterator(source as AsyncIterable<unknown>, (payload) => execute({ ...args, rootValue: payload }));
}

/** `source`, calling `onEnd` once when it ends: done, failed, or returned early. */
export function countedUntilEnd<T>(source: AsyncIterableIterator<T>, onEnd: () => void): AsyncIterableIterator<T> {
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    onEnd();
  };
  const iterator: AsyncIterableIterator<T> = {
    [Symbol.asyncIterator]: () => iterator,
    async next() {
      try {
        const result = await source.next();
        if (result.done) end();
        return result;
      } catch (error) {
        end();
        throw error;
      }
    },
    async return() {
      end();
      return (await source.return?.()) ?? { done: true, value: undefined };
    },
  };
  return iterator;
}
