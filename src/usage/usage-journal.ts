import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * The usage journal: an append-only local file that holds every usage record of the buffer
 * (src/usage/usage-buffer.ts) until the database has it. The contract:
 *
 * - `append` keeps a line in memory; `persist` hands everything appended to the operating system
 *   (one write(2)). The server calls `persist` before any HTTP response goes out, so a record is
 *   in the journal before the answer that reported it leaves the process: a crash of the process
 *   (kill -9, out of memory) loses nothing that was answered.
 * - The journal is fsync'd at most `fsyncIntervalMs` (50 ms) after a write, off the event loop:
 *   an operating-system crash or power loss loses at most that much.
 * - The buffer `rotate`s the journal when it flushes: the closed segment holds exactly the
 *   records of that batch. The batch is written with the segment's name in the same database
 *   transaction (usage_journal_segments), and the segment is deleted (`release`) once committed.
 * - At start, `leftovers` are the segments of processes that are gone; the buffer replays each
 *   one whose name is not yet in the database (a crash between commit and delete replays nothing).
 *
 * Segment files are `<data dir>/usage-journal/<pid>-<instance>-<n>.jsonl`. Several instances may
 * share a data directory: a segment belongs to a live process (another pid that still runs, or
 * another journal open in this process) is left alone.
 */
export interface UsageJournal {
  append(line: string): void;
  /** Writes what was appended since the last persist (synchronously, to the OS). */
  persist(): void;
  /** Closes the current segment (persisted) and starts a new one; returns the closed one's name. */
  rotate(): string;
  /** Deletes segments whose records the database has. */
  release(segments: readonly string[]): void;
  /** Segments left by processes that are gone: their names and lines (a torn last line is dropped). */
  leftovers(): Array<{ segment: string; lines: string[] }>;
  /** Persists, closes and deletes the current segment when it holds nothing unreleased. */
  close(): void;
}

export const JOURNAL_DEFAULTS = {
  /** An fsync of the current segment at most this long after a write (milliseconds). */
  fsyncIntervalMs: 50,
} as const;

/** Journals open in this process, by instance id: their segments are never leftovers. */
const openInstances = new Set<string>();

const SEGMENT = /^(\d+)-([0-9a-f]+)-(\d+)\.jsonl$/;

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class FileUsageJournal implements UsageJournal {
  private readonly dir: string;
  private readonly instance = randomBytes(6).toString('hex');
  private sequence = 0;
  private name = '';
  private fd = -1;
  private pending = '';
  /** Bytes written to the current segment since its last fsync. */
  private unsynced = false;
  /** The current segment has records not yet rotated out (close keeps it then). */
  private holdsRecords = false;
  private fsyncing = false;
  private readonly timer: NodeJS.Timeout;

  constructor(dataDir: string, private readonly options = JOURNAL_DEFAULTS) {
    this.dir = path.join(dataDir, 'usage-journal');
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    openInstances.add(this.instance);
    this.open();
    this.timer = setInterval(() => this.fsync(), this.options.fsyncIntervalMs);
    this.timer.unref();
  }

  append(line: string): void {
    this.pending += `${line}\n`;
    this.holdsRecords = true;
  }

  persist(): void {
    if (this.pending === '') return;
    const text = this.pending;
    this.pending = '';
    fs.writeSync(this.fd, text);
    this.unsynced = true;
  }

  rotate(): string {
    this.persist();
    const closed = this.name;
    const fd = this.fd;
    this.open();
    // What an fsync of it would protect is in the database within milliseconds, or replayed.
    fs.close(fd, () => undefined);
    return closed;
  }

  release(segments: readonly string[]): void {
    for (const segment of segments) fs.rmSync(path.join(this.dir, segment), { force: true });
  }

  leftovers(): Array<{ segment: string; lines: string[] }> {
    const found: Array<{ segment: string; lines: string[] }> = [];
    for (const segment of fs.readdirSync(this.dir).sort()) {
      const match = SEGMENT.exec(segment);
      if (!match) continue;
      const [, pid, instance] = match;
      const alive = Number(pid) === process.pid ? openInstances.has(instance) : processIsAlive(Number(pid));
      if (alive) continue;
      const text = fs.readFileSync(path.join(this.dir, segment), 'utf8');
      // Each line was one write; only a crash of the machine can tear the last one.
      const lines = text.split('\n').filter((line, index, all) => line !== '' && (index < all.length - 1 || text.endsWith('\n')));
      found.push({ segment, lines });
    }
    return found;
  }

  close(): void {
    clearInterval(this.timer);
    this.persist();
    fs.closeSync(this.fd);
    if (!this.holdsRecords) fs.rmSync(path.join(this.dir, this.name), { force: true });
    openInstances.delete(this.instance);
  }

  private open(): void {
    this.sequence += 1;
    this.name = `${process.pid}-${this.instance}-${this.sequence}.jsonl`;
    this.fd = fs.openSync(path.join(this.dir, this.name), 'a', 0o600);
    this.unsynced = false;
    this.holdsRecords = false;
  }

  /** Off the event loop (libuv's thread pool); one at a time. */
  private fsync(): void {
    if (!this.unsynced || this.fsyncing) return;
    this.unsynced = false;
    this.fsyncing = true;
    const fd = this.fd;
    fs.fsync(fd, () => {
      this.fsyncing = false;
    });
  }
}
