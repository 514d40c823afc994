import type { Socket } from 'node:net';
import { SockitError } from '../errors.js';
import type { Logger } from '../log.js';
import { type Address, formatAddress, type ListenTarget } from '../transport/address.js';
import { destroyAfter, endWithin } from '../transport/close-grace.js';
import {
  describePeer,
  listenStream,
  type SecureNotifier,
  type StreamListener,
  type TlsServerCredentials,
} from '../transport/listen.js';

/** What the acceptor needs from each accepted connection to shut it down. */
export interface Session {
  /** Stop taking new work and close when the current work is done. */
  drain(): void;
  /** The shutdown deadline passed: abort whatever runs, tell the peer if it can, and close. */
  expire(reason: SockitError): void;
}

/**
 * Refusals in progress at once. Past it a new client over the connection limit is destroyed at
 * accept without a word, so clients that hold their refused sockets open cannot take the
 * descriptors: the server holds at most maxConnections + this many client sockets.
 */
export const MAX_REFUSALS_IN_PROGRESS = 256;

/** What the acceptor tells `open` about a new connection. */
export interface AcceptedInfo {
  id: number;
  peer: string;
  local: Address;
  /** `Date.now()` at accept: deadlines that run from accept count from here (TLS came first). */
  acceptedAt: number;
}

export interface AcceptorOptions {
  maxConnections: number;
  tls?: TlsServerCredentials | undefined;
  log: Logger;
  /** Turns an accepted socket into a session. */
  open(socket: Socket, info: AcceptedInfo): Session;
  /** What a client over the connection limit is sent before its socket is closed. */
  refusal: string | Buffer;
  /**
   * Told of each client refused: over the limit (`limit`; the raw server's `refused` event),
   * over the limit with too many refusals under way (`overflow`), or while closing (`draining`).
   */
  onRefused?: (peer: string, reason: 'limit' | 'overflow' | 'draining') => void;
  /** Time a `tls://` client has from accept to finish its TLS handshake. */
  tlsHandshakeTimeoutMs: number;
  /** Bind TCP listeners with `reusePort` (several processes, one port; see `reusePortSupported`). */
  reusePort?: boolean | undefined;
  /** A refused client has this long from accept to read why before its socket is destroyed. */
  closeGraceMs: number;
}

/** One shared listener rather than a closure per accepted socket. */
const ignoreError = (): void => {};

/**
 * Listens on any number of stream addresses and owns the set of live connections: the
 * connection cap, and graceful shutdown (drain, then force-close at a deadline).
 */
export class Acceptor {
  readonly #options: AcceptorOptions;
  readonly #listeners: StreamListener[] = [];
  readonly #sessions = new Map<Socket, Session>();
  /** TLS sockets accepted whose handshake is not done: they count against the cap too. */
  readonly #securing = new Set<Socket>();
  /** Refused sockets not closed yet (each on its timer). */
  readonly #refusing = new Set<Socket>();
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

  /** Binds `target` (or listens on the inherited socket) and accepts on it; the real address. */
  async listen(target: ListenTarget): Promise<Address> {
    let local: Address | undefined;
    const listener = await listenStream(
      target,
      (socket, onSecure) => this.#accept(socket, local!, onSecure),
      {
        tls: this.#options.tls,
        tlsHandshakeTimeoutMs: this.#options.tlsHandshakeTimeoutMs,
        ...(this.#options.reusePort ? { reusePort: true } : {}),
      },
    );
    local = listener.address;
    this.#listeners.push(listener);
    this.#options.log.info('listening', { address: formatAddress(listener.address) });
    return listener.address;
  }

  /**
   * Certificate and key for TLS clients accepted from now on, on every `tls://` listener;
   * connections already open keep theirs. Throws, changing nothing, for an unusable pair.
   */
  setTls(credentials: TlsServerCredentials): void {
    for (const listener of this.#listeners) listener.setTls(credentials);
  }

  #accept(socket: Socket, local: Address, onSecure: SecureNotifier | undefined): void {
    socket.on('error', ignoreError); // reported through the session's own close handling
    if (this.#closing) {
      socket.destroy();
      this.#options.onRefused?.(describePeer(socket), 'draining');
      return;
    }
    const acceptedAt = Date.now();
    const peer = describePeer(socket);
    if (this.#sessions.size + this.#securing.size >= this.#options.maxConnections) {
      this.#refuse(socket, peer, onSecure);
      return;
    }
    if (onSecure === undefined) {
      this.#open(socket, { id: this.#nextId++, peer, local, acceptedAt });
      return;
    }
    this.#securing.add(socket);
    socket.once('close', () => this.#securing.delete(socket));
    onSecure(() => {
      this.#securing.delete(socket);
      if (this.#closing) socket.destroy();
      else this.#open(socket, { id: this.#nextId++, peer, local, acceptedAt });
    });
  }

  #open(socket: Socket, info: AcceptedInfo): void {
    const session = this.#options.open(socket, info);
    this.#sessions.set(socket, session);
    socket.once('close', () => this.#sessions.delete(socket));
  }

  /** Connections refused whose sockets are not closed yet. */
  get refusalsInProgress(): number {
    return this.#refusing.size;
  }

  /**
   * The one refusal of both servers: write why, end our side, and destroy the socket on a fixed
   * timer even if the peer keeps its end open. Past MAX_REFUSALS_IN_PROGRESS, destroy at once.
   */
  #refuse(socket: Socket, peer: string, onSecure: SecureNotifier | undefined): void {
    const limit = this.#options.maxConnections;
    if (this.#refusing.size >= MAX_REFUSALS_IN_PROGRESS) {
      socket.destroy();
      this.#options.onRefused?.(peer, 'overflow');
      return;
    }
    this.#options.log.warn('connection refused: limit reached', { peer, limit });
    this.#options.onRefused?.(peer, 'limit');
    this.#refusing.add(socket);
    socket.once('close', () => this.#refusing.delete(socket));
    // The deadline runs from accept, also while a TLS client is still shaking hands.
    const { refusal, closeGraceMs } = this.#options;
    destroyAfter(socket, closeGraceMs);
    if (onSecure === undefined) endWithin(socket, closeGraceMs, refusal);
    else onSecure(() => endWithin(socket, closeGraceMs, refusal));
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
    // Neither has a session to drain: a closed server holds no socket on a timer.
    for (const socket of [...this.#securing, ...this.#refusing]) socket.destroy();
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
      for (const session of this.#sessions.values()) session.expire(reason);
      await allClosed;
    }
    await stopped;
  }
}
