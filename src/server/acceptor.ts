import type { Socket } from 'node:net';
import { SockitError } from '../errors.js';
import type { Logger } from '../log.js';
import { type Address, formatAddress } from '../transport/address.js';
import {
  describePeer,
  listenStream,
  type StreamListener,
  type TlsServerCredentials,
} from '../transport/listen.js';

/** What the acceptor needs from each accepted connection to shut it down. */
export interface Session {
  /** Stop taking new work and close when the current work is done. */
  drain(): void;
  /** Close now, aborting whatever runs. */
  destroy(reason: SockitError): void;
}

export interface AcceptorOptions {
  maxConnections: number;
  tls?: TlsServerCredentials | undefined;
  log: Logger;
  /** Turns an accepted socket into a session. */
  open(socket: Socket, info: { id: number; peer: string; local: Address }): Session;
  /** Tells a client over the connection limit why it is refused, then closes it. */
  refuse(socket: Socket, reason: string): void;
}

/**
 * Listens on any number of stream addresses and owns the set of live connections: the
 * connection cap, and graceful shutdown (drain, then force-close at a deadline).
 */
export class Acceptor {
  readonly #options: AcceptorOptions;
  readonly #listeners: StreamListener[] = [];
  readonly #sessions = new Map<Socket, Session>();
  #nextId = 1;
  #closing: Promise<void> | undefined;

  constructor(options: AcceptorOptions) {
    this.#options = options;
  }

  /** The bound addresses, with port 0 resolved to the real port. */
  get addresses(): Address[] {
    return this.#listeners.map((listener) => listener.address);
  }

  get connectionCount(): number {
    return this.#sessions.size;
  }

  /** The first bound address as text (`tcp://127.0.0.1:41234`); UNAVAILABLE before listening. */
  get firstAddress(): string {
    const first = this.#listeners[0];
    if (!first) throw new SockitError('UNAVAILABLE', 'server is not listening');
    return formatAddress(first.address);
  }

  async listen(address: Address): Promise<Address> {
    const listener = await listenStream(address, (socket) => this.#accept(socket, address), {
      tls: this.#options.tls,
    });
    this.#listeners.push(listener);
    this.#options.log.info('listening', { address: formatAddress(listener.address) });
    return listener.address;
  }

  #accept(socket: Socket, local: Address): void {
    socket.on('error', () => {}); // reported through the session's own close handling
    if (this.#closing) {
      socket.destroy();
      return;
    }
    const peer = describePeer(socket);
    if (this.#sessions.size >= this.#options.maxConnections) {
      this.#options.log.warn('connection refused: limit reached', {
        peer,
        limit: this.#options.maxConnections,
      });
      this.#options.refuse(socket, `server is at its connection limit (${this.#options.maxConnections})`);
      return;
    }
    const id = this.#nextId++;
    const session = this.#options.open(socket, { id, peer, local });
    this.#sessions.set(socket, session);
    socket.once('close', () => this.#sessions.delete(socket));
  }

  /**
   * Stops accepting, asks every session to drain, and force-closes what is left after
   * `deadlineMs`. Resolves when every connection is closed.
   */
  close(deadlineMs: number): Promise<void> {
    this.#closing ??= this.#close(deadlineMs);
    return this.#closing;
  }

  async #close(deadlineMs: number): Promise<void> {
    const stopped = Promise.all(this.#listeners.map((listener) => listener.close()));
    const sockets = [...this.#sessions.keys()];
    const allClosed = Promise.all(
      sockets.map((socket) => (socket.destroyed ? undefined : new Promise((r) => socket.once('close', r)))),
    );
    for (const session of this.#sessions.values()) session.drain();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), deadlineMs);
    });
    const outcome = await Promise.race([allClosed, deadline]);
    clearTimeout(timer);
    if (outcome === 'deadline') {
      const reason = new SockitError('UNAVAILABLE', 'server shut down before the request finished');
      this.#options.log.warn('shutdown deadline passed; closing remaining connections', {
        connections: this.#sessions.size,
      });
      for (const session of this.#sessions.values()) session.destroy(reason);
      await allClosed;
    }
    await stopped;
  }
}
