import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { CHANNEL_KEY_BYTES, type ChannelKind } from '../protocol/session.js';
import { endWithin } from '../transport/close-grace.js';
import { descriptorOf, resumeReading } from '../transport/descriptor-relay.js';
import { channelKeys, type SealedChannel } from '../transport/sealed-channel.js';

/**
 * A joined data channel as its request sees it: a descriptor the request's copies read and
 * write (Node reads it no more), and the ways to let it go. The socket itself stays here, in
 * server/, so no service handles a connection of the protocol.
 */
export class DataChannel {
  readonly #socket: Socket;

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  /** The channel's descriptor, for copies in C (transport/descriptor-relay.ts). */
  get fd(): number {
    return descriptorOf(this.#socket);
  }

  /** No more bytes go to the client: it reads end of file (its own bytes may still come). */
  end(): void {
    this.#socket.end();
  }

  /**
   * After its end, once the copies stopped: Node reads the channel again to see the client's
   * close, and destroys it after the close grace whatever the client does.
   */
  finish(): void {
    resumeReading(this.#socket);
    endWithin(this.#socket);
  }

  /** Cuts it at once (a failure, or a request that ends before its output did). */
  destroy(): void {
    this.#socket.destroy();
  }

  /**
   * The channel as a sealed one (a tunnel stream's, over TLS): its descriptor and the keys its
   * TLS session exported. Undefined on a plain connection, which has no keys to export.
   */
  sealed(): SealedChannel | undefined {
    const socket = this.#socket;
    if (!(socket instanceof TLSSocket)) return undefined;
    return { fd: this.fd, keys: channelKeys(socket, 'server'), destroy: () => socket.destroy() };
  }
}

/**
 * A data channel a request offered: a second connection that carries one request's raw bytes
 * (a terminal's keystrokes and output) outside the framed connection, so that both ends can
 * move them without a frame, a decoder or JavaScript on the way (docs/protocol.md "Data
 * channels").
 */
export interface ChannelOffer {
  /** The key the client's new connection presents in `attach`: CHANNEL_KEY_BYTES random bytes, base64url. */
  readonly key: string;
  /** Resolves with the joined channel, or with undefined once the offer is withdrawn or its deadline passed without an attach. */
  readonly attached: Promise<DataChannel | undefined>;
  /** Takes the offer back (the client declined, the request ended); its key no longer works. */
  withdraw(): void;
}

/** What a server keeps of an offer until it is taken or withdrawn. */
interface PendingOffer {
  kind: ChannelKind;
  resolve(channel: DataChannel | undefined): void;
  timer: NodeJS.Timeout;
}

/**
 * The server's open channel offers, by key. A key works once, only before its deadline and only
 * while its request is open: an attach with any other key is refused, and since the key is 256
 * random bits a guess never matches.
 */
export class ChannelOffers {
  readonly #pending = new Map<string, PendingOffer>();

  /** Offers a channel of `kind` that waits `deadlineMs` for its attach. */
  offer(deadlineMs: number, kind: ChannelKind): ChannelOffer {
    const key = randomBytes(CHANNEL_KEY_BYTES).toString('base64url');
    let resolveAttached!: (channel: DataChannel | undefined) => void;
    const attached = new Promise<DataChannel | undefined>((resolve) => {
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
    this.#pending.set(key, { kind, resolve: resolveAttached, timer });
    return { key, attached, withdraw };
  }

  /**
   * Takes the offer of `key` (the key works no more) and returns what hands it its channel once
   * the connection has answered `attached`; undefined when no offer waits for the key (never
   * made, already taken, withdrawn or expired) or its kind is not what the connection can carry
   * (the offer is withdrawn then). Handing over undefined: the attach failed.
   */
  take(key: string, kind: ChannelKind): ((channel: DataChannel | undefined) => void) | undefined {
    const pending = this.#pending.get(key);
    if (pending === undefined) return undefined;
    this.#pending.delete(key);
    clearTimeout(pending.timer);
    if (pending.kind === kind) return pending.resolve;
    pending.resolve(undefined);
    return undefined;
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
