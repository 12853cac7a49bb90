/**
 * Operations executing at once per key, on this instance: a key that already has `perKey`
 * running gets no slot until one of them ends, so one tenant's heavy queries cannot take every
 * request this instance is serving. In memory: it protects this instance's CPU and connections.
 */
export class OperationSlots {
  private readonly running = new Map<string, number>();

  constructor(readonly perKey: number) {}

  /** Takes a slot for `subject`; false when all of its slots are taken. Every true needs one `release`. */
  acquire(subject: string): boolean {
    const count = this.running.get(subject) ?? 0;
    if (count >= this.perKey) return false;
    this.running.set(subject, count + 1);
    return true;
  }

  release(subject: string): void {
    const count = this.running.get(subject) ?? 0;
    if (count <= 1) this.running.delete(subject);
    else this.running.set(subject, count - 1);
  }
}
