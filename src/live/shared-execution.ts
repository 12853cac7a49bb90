import { createSourceEventStream, execute, ExecutionArgs, ExecutionResult, print } from 'graphql';
import { mapIterator } from './iterators';

/**
 * graphql-js executes a subscription's selection once per subscriber per event. Every
 * subscriber of a subject receives the very same payload object, and what a subscription
 * field returns does not depend on who asks (tenancy and scopes were checked when
 * subscribing), so the result is computed once per (payload, document, variables) and shared.
 */
const sharedResults = new WeakMap<object, Map<string, Promise<ExecutionResult> | ExecutionResult>>();

export async function subscribeShared(args: ExecutionArgs): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const source = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in source)) return source as ExecutionResult;
  const key = `${args.operationName ?? ''}\u0000${print(args.document)}\u0000${JSON.stringify(args.variableValues ?? {})}`;
  return mapIterator(source as AsyncIterable<unknown>, (payload) => {
    if (payload === null || typeof payload !== 'object') return execute({ ...args, rootValue: payload });
    let byQuery = sharedResults.get(payload);
    if (!byQuery) sharedResults.set(payload, (byQuery = new Map()));
    let result = byQuery.get(key);
    if (!result) {
      result = execute({ ...args, rootValue: payload });
      byQuery.set(key, result);
    }
    return result;
  });
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
