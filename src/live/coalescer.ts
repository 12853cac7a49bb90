/**
 * Latest-state-wins coalescing per subject: at most one delivery per `intervalMs` per key,
 * except when `urgent` says a change must go out at once (a quota crossing 80 % or 100 %, a
 * rate limit running out or resetting). Each state is computed once by the publisher and
 * handed over here; subscribers only ever receive what this emits.
 */
export class Coalescer<T> {
  private readonly pending = new Map<string, T>();
  private readonly lastSent = new Map<string, { value: T; at: number }>();
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly emit: (key: string, value: T) => void,
    private readonly urgent: (previous: T | undefined, next: T) => boolean,
    private readonly intervalMs = 250,
  ) {}

  offer(key: string, value: T): void {
    const last = this.lastSent.get(key);
    const now = Date.now();
    if (!last || this.urgent(last.value, value) || now - last.at >= this.intervalMs) {
      this.send(key, value, now);
      return;
    }
    this.pending.set(key, value);
    if (!this.timers.has(key)) {
      const timer = setTimeout(() => {
        this.timers.delete(key);
        const latest = this.pending.get(key);
        if (latest !== undefined) this.send(key, latest, Date.now());
      }, this.intervalMs - (now - last.at));
      timer.unref();
      this.timers.set(key, timer);
    }
  }

  /** Sends what is waiting now (shutdown). */
  flush(): void {
    for (const [key, timer] of this.timers) {
      clearTimeout(timer);
      const latest = this.pending.get(key);
      if (latest !== undefined) this.send(key, latest, Date.now());
    }
    this.timers.clear();
  }

  private send(key: string, value: T, at: number): void {
    this.pending.delete(key);
    const timer = this.timers.get(key);
    if (timer) {
      clearTimeout(timer);
      this.timers.delete(key);
    }
    this.lastSent.set(key, { value, at });
    // Forget quiet subjects so memory follows activity, not history.
    if (this.lastSent.size > 100_000) this.lastSent.delete(this.lastSent.keys().next().value as string);
    this.emit(key, value);
  }
}
