import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';

/**
 * A data channel a request offered: a second connection that carries one request's raw bytes
 * (a terminal's keystrokes and output) outside the framed connection, so that both ends can
 * move them without a frame, a decoder or JavaScript on the way (docs/protocol.md "Data
 * channels").
 */
export interface ChannelOffer {
  /** The key the client's new connection presents in `attach`: 32 random bytes, base64url. */
  readonly key: string;
  /**
   * Resolves with the joined socket (paused: read it through its descriptor or resume it), or
   * with undefined once the offer is withdrawn or its deadline passed without an attach.
   */
  readonly attached: Promise<Socket | undefined>;
  /** Takes the offer back (the client declined, the request ended); its key no longer works. */
  withdraw(): void;
}

/** What a server keeps of an offer until it is taken or withdrawn. */
interface PendingOffer {
  resolve(socket: Socket | undefined): void;
  timer: NodeJS.Timeout;
}

/**
 * The server's open channel offers, by key. A key works once, only before its deadline and only
 * while its request is open: an attach with any other key is refused, and since the key is 256
 * random bits a guess never matches.
 */
export class ChannelOffers {
  readonly #pending = new Map<string, PendingOffer>();

  /** Offers a channel that waits `deadlineMs` for its attach. */
  offer(deadlineMs: number): ChannelOffer {
    const key = randomBytes(32).toString('base64url');
    let resolveAttached!: (socket: Socket | undefined) => void;
    const attached = new Promise<Socket | undefined>((resolve) => {
      resolveAttached = resolve;
    });
    const withdraw = (): void => {
      const pending = this.#pending.get(key);
      if (pending === undefined) return;
      this.#pending.delete(key);
      clearTimeout(pending.timer);
      pending.resolve(undefined);
    };
    const timer = setTimeout(withdraw, deadlineMs);
    timer.unref();
    this.#pending.set(key, { resolve: resolveAttached, timer });
    return { key, attached, withdraw };
  }

  /**
   * Takes the offer of `key` (the key works no more) and returns what hands it its socket once
   * the connection has answered `attached`; undefined when no offer waits for the key (never
   * made, already taken, withdrawn or expired). Handing over undefined: the attach failed.
   */
  take(key: string): ((socket: Socket | undefined) => void) | undefined {
    const pending = this.#pending.get(key);
    if (pending === undefined) return undefined;
    this.#pending.delete(key);
    clearTimeout(pending.timer);
    return pending.resolve;
  }

  /** Withdraws every offer (the server closes). */
  clear(): void {
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.resolve(undefined);
    }
    this.#pending.clear();
  }
}
