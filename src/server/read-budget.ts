import type { ReadBudget } from '../transport/framed-socket.js';

/**
 * The server-wide budget of bytes held in frame decoders (partial frames, frames waiting for a
 * slow handler). Past `limit`, each connection that holds part of a frame stops reading until the
 * total drops below it again; a connection between frames still reads, so small requests and
 * fresh handshakes go on. The total can pass `limit` by at most one read per connection.
 */
export class BufferBudget implements ReadBudget {
  readonly limit: number;
  #total = 0;
  #waiting: (() => void)[] = [];

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

  /** Connections paused until the total drops. */
  get waiting(): number {
    return this.#waiting.length;
  }

  charge(delta: number): void {
    if (delta === 0) return;
    this.#total += delta;
    if (delta < 0 && !this.exceeded && this.#waiting.length > 0) {
      const waiting = this.#waiting;
      this.#waiting = [];
      for (const resume of waiting) resume();
    }
  }

  whenBelow(resume: () => void): void {
    if (!this.exceeded) resume();
    else this.#waiting.push(resume);
  }
}
