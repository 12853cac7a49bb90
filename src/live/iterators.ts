/**
 * Async iterators that end at once. An async generator queues `return()` behind the `next()`
 * it is waiting on, so a subscription on a quiet subject would stay open (listener, socket
 * bookkeeping) until its next event; these forward `return()` to the source immediately.
 */

/** `source`, with each value passed through `map` (which may be async). */
export function mapIterator<T, U>(source: AsyncIterable<T>, map: (value: T) => U | Promise<U>): AsyncIterableIterator<U> {
  const inner = source[Symbol.asyncIterator]();
  const iterator: AsyncIterableIterator<U> = {
    [Symbol.asyncIterator]: () => iterator,
    async next() {
      const result = await inner.next();
      return result.done ? { done: true, value: undefined } : { done: false, value: await map(result.value) };
    },
    async return() {
      await inner.return?.();
      return { done: true, value: undefined };
    },
  };
  return iterator;
}
