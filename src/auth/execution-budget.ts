/**
 * What one key may have executing at once, on this instance, counted in cost units (each GraphQL
 * operation holds its `operationCost`, at least 1, from admission until its response is sent).
 * Cheap operations barely count — a service key can have thousands of verifyKey calls in flight —
 * while one key's heavy queries cannot take every request this instance is serving: at the
 * default, two operations at the cost limit. In memory: it protects this instance's CPU.
 */
export class ExecutionBudget {
  private readonly executing = new Map<string, number>();

  constructor(readonly perKey: number) {}

  /**
   * Takes `units` for `subject`; false (nothing taken) when they do not fit beside what it holds.
   * A key with nothing executing may always run one operation, however costly. Every true needs
   * one `giveBack`.
   */
  take(subject: string, units: number): boolean {
    const held = this.executing.get(subject) ?? 0;
    if (held > 0 && held + units > this.perKey) return false;
    this.executing.set(subject, held + units);
    return true;
  }

  giveBack(subject: string, units: number): void {
    const left = (this.executing.get(subject) ?? 0) - units;
    if (left > 0) this.executing.set(subject, left);
    else this.executing.delete(subject);
  }
}
