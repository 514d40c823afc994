import type { Socket } from 'node:net';

export interface FanOutOptions {
  /**
   * A member whose send queue has not drained for this long is dropped (destroyed), so one
   * stuck reader stalls the others for a bounded time only. Default 10 s; 0 = never drop.
   */
  stallTimeoutMs?: number;
  /** Told about every dropped member (for `-v` messages and logs). */
  onDrop?(socket: Socket): void;
}

interface Waiter {
  promise: Promise<void>;
}

/**
 * Writes the same bytes to many sockets without copying them: each member's socket queues a
 * reference to the one Buffer. Backpressure flows back to the sender: `send` returns a promise
 * when a member's queue is full, and the sender pauses its source until that member drains
 * (or is dropped after `stallTimeoutMs` without progress).
 */
export class FanOut {
  readonly members = new Set<Socket>();
  readonly #stallTimeoutMs: number;
  readonly #onDrop: ((socket: Socket) => void) | undefined;
  readonly #waiters = new Map<Socket, Waiter>();

  constructor(options: FanOutOptions = {}) {
    this.#stallTimeoutMs = options.stallTimeoutMs ?? 10_000;
    this.#onDrop = options.onDrop;
  }

  get size(): number {
    return this.members.size;
  }

  add(socket: Socket): void {
    this.members.add(socket);
  }

  delete(socket: Socket): void {
    this.members.delete(socket);
  }

  /**
   * Writes `chunk` to every member but `except` (the sender). Returns undefined when every
   * queue has room, else a promise that settles once the congested members drained or were
   * dropped: pause the source until then.
   */
  send(chunk: Uint8Array, except?: Socket): Promise<void> | undefined {
    let congested: Promise<void>[] | undefined;
    for (const member of this.members) {
      if (member === except || !member.writable) continue;
      if (member.write(chunk)) continue;
      congested ??= [];
      congested.push(this.#drained(member));
    }
    if (congested === undefined) return undefined;
    return congested.length === 1 ? congested[0] : Promise.all(congested).then(() => undefined);
  }

  /**
   * Writes `chunk` to every member with no way to pause its source (bytes from other servers on
   * the bus): a member with more than `maxQueueBytes` queued is dropped instead, so memory stays
   * bounded while the rest go on.
   */
  broadcast(chunk: Uint8Array, maxQueueBytes: number): void {
    for (const member of this.members) {
      if (!member.writable) continue;
      if (member.writableLength > maxQueueBytes) {
        this.members.delete(member);
        this.#onDrop?.(member);
        member.destroy();
        continue;
      }
      member.write(chunk);
    }
  }

  /** One waiter per congested member, shared by every sender that waits on it. */
  #drained(member: Socket): Promise<void> {
    const existing = this.#waiters.get(member);
    if (existing) return existing.promise;
    const promise = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        member.off('drain', done);
        member.off('close', done);
        this.#waiters.delete(member);
        resolve();
      };
      member.on('drain', done);
      member.on('close', done);
      if (this.#stallTimeoutMs > 0) {
        timer = setTimeout(() => {
          this.members.delete(member);
          this.#onDrop?.(member);
          member.destroy();
        }, this.#stallTimeoutMs);
        timer.unref();
      }
    });
    this.#waiters.set(member, { promise });
    return promise;
  }
}
