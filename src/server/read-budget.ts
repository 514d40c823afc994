import type { ReadBudget } from '../transport/framed-socket.js';

/**
 * The server-wide budget of bytes held in frame decoders (partial frames, frames waiting for a
 * slow handler). Past `limit`, connections that hold part of a frame stop reading, except one:
 * the first to meet the full budget reads on, so one frame larger than what is left can still
 * finish (the total then passes `limit` by at most one frame, at most `maxBodyBytes`). When it
 * finishes or closes, or the total drops under `limit`, the paused ones read again and the next
 * takes its place. A connection between frames always reads, so small requests and fresh
 * handshakes go on. A holder that stops sending is ended by the frame deadline.
 */
export class BufferBudget implements ReadBudget {
  readonly limit: number;
  #total = 0;
  #waiting: (() => void)[] = [];
  /** The one holder allowed to read while the budget is exceeded. */
  #privileged: object | undefined;

  /** `limit` in bytes; 0 turns the budget off (never exceeded). */
  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes held now across all connections. */
  get total(): number {
    return this.#total;
  }

  get exceeded(): boolean {
    return this.limit > 0 && this.#total > this.limit;
  }

  /** Connections paused until the budget lets them read. */
  get waiting(): number {
    return this.#waiting.length;
  }

  charge(delta: number): void {
    if (delta === 0) return;
    this.#total += delta;
    if (delta < 0 && !this.exceeded) this.#wakeAll();
  }

  mayRead(holder: object, resume: () => void): boolean {
    if (!this.exceeded) return true;
    if (this.#privileged === undefined || this.#privileged === holder) {
      this.#privileged = holder;
      return true;
    }
    this.#waiting.push(resume);
    return false;
  }

  release(holder: object): void {
    if (this.#privileged !== holder) return;
    this.#privileged = undefined;
    this.#wakeAll();
  }

  #wakeAll(): void {
    if (this.#waiting.length === 0) return;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const resume of waiting) resume();
  }
}
