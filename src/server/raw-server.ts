import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { invalidOption, SockitError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { checkInteger } from '../options.js';
import { defaultStateDir } from '../state.js';
import { type Address, formatAddress, parseAddress, unmapIPv4 } from '../transport/address.js';
import { endWithin } from '../transport/close-grace.js';
import type { TlsServerCredentials } from '../transport/listen.js';
import { Acceptor, type Session } from './acceptor.js';
import { IdleClock } from './idle-clock.js';
import { DEFAULT_LIMITS } from './limits.js';
import { serverTls } from './tls.js';

/** One accepted client of a raw (plain bytes, no framing) server. */
export interface RawConnection {
  /** Server-unique number, for logs. */
  readonly id: number;
  /** The client socket (a TLSSocket on `tls://` addresses). Half-open: the client's EOF does not end our side. */
  readonly socket: Socket;
  /** `127.0.0.1:51234`, `[::1]:51234`, or `unix`. */
  readonly peer: string;
  /** The peer's IP (IPv4-mapped IPv6 shown as IPv4), undefined on Unix sockets. */
  readonly remoteAddress: string | undefined;
  /** The address this client connected to. */
  readonly local: Address;
  /** Aborted when the server starts shutting down: finish up, the deadline force-closes the rest. */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** Per-connection state for the handler. */
  readonly state: Map<unknown, unknown>;
}

/**
 * A raw handler with Python socketserver's lifecycle: `setup`, then `handle`, then `finish`,
 * which always runs, even when `handle` throws. After `finish` the server ends the connection.
 * Each step may be async; `handle` should resolve when the conversation is over.
 */
export interface RawHandler {
  setup?(connection: RawConnection): void | Promise<void>;
  handle(connection: RawConnection): void | Promise<void>;
  finish?(connection: RawConnection): void | Promise<void>;
}

/** Who is knocking, for `admit`. */
export interface RawPeer {
  remoteAddress: string | undefined;
  peer: string;
}

export interface ServeRawOptions extends RawHandler {
  /** Addresses to listen on: `tcp://127.0.0.1:9000`, `tls://[::]:9443`, `unix:/tmp/s.sock`, … */
  listen: string | Address | readonly (string | Address)[];
  /** Clients at once; one more is told why and closed. Default 10 000. */
  maxConnections?: number;
  /** Close a client after this long without traffic. Default 0: never. */
  idleTimeoutMs?: number;
  /** Graceful shutdown: how long handlers may take after `signal` aborts. Default 10 s. */
  shutdownDeadlineMs?: number;
  /** Certificate and key for `tls://`. Default: the self-signed pair in `<stateDir>/tls`. */
  tls?: TlsServerCredentials;
  stateDir?: string;
  log?: Logger;
  /** Decides whether a peer may talk to us (allow/deny lists); refused peers are closed at once. */
  admit?(peer: RawPeer): boolean;
  /** After the server ends a connection or refuses one, the peer's time to close. Default 5 s. */
  closeGraceMs?: number;
  /** Time a `tls://` client has from accept to finish its TLS handshake. Default 10 s. */
  tlsHandshakeTimeoutMs?: number;
  /** What a client over the connection limit reads before it is closed. */
  refusal?(limit: number): string;
}

/**
 * A running raw server; `close()` shuts it down gracefully. Events: `connection` and
 * `disconnect` (a RawConnection), `denied` (the peer `admit` turned away) and `refused` (the
 * peer over `maxConnections`, told why and closed), then `close`.
 */
export class RawServer extends EventEmitter {
  /** SHA-256 fingerprint of the TLS certificate when a `tls://` address is served. */
  readonly tlsFingerprint: string | undefined;
  readonly #acceptor: Acceptor;
  readonly #shutdownDeadlineMs: number;
  #closed: Promise<void> | undefined;

  /** Use `serveRaw()`. */
  constructor(acceptor: Acceptor, init: { tlsFingerprint: string | undefined; shutdownDeadlineMs: number }) {
    super();
    this.#acceptor = acceptor;
    this.tlsFingerprint = init.tlsFingerprint;
    this.#shutdownDeadlineMs = init.shutdownDeadlineMs;
  }

  /** Bound addresses, port 0 resolved. */
  get addresses(): Address[] {
    return this.#acceptor.addresses;
  }

  /** The first bound address as text: `tcp://127.0.0.1:41234`. */
  get address(): string {
    return this.#acceptor.firstAddress;
  }

  get connectionCount(): number {
    return this.#acceptor.connectionCount;
  }

  /** Stops accepting, aborts every connection's `signal`, and force-closes what is left at the deadline. */
  close(deadlineMs: number = this.#shutdownDeadlineMs): Promise<void> {
    this.#closed ??= this.#acceptor.close(deadlineMs).then(() => {
      this.emit('close');
    });
    return this.#closed;
  }
}

const defaultRefusal = (limit: number): string =>
  `sockit: connection refused: the server already has ${limit} client${limit === 1 ? '' : 's'} (its limit); try again later\n`;

/**
 * Serves plain bytes (no framing) with a socketserver-style handler on TCP, TLS or Unix
 * addresses, sharing the framed server's acceptor: the connection cap with a clear refusal,
 * and graceful shutdown.
 *
 * @example
 * const server = await serveRaw({
 *   listen: 'tcp://127.0.0.1:9000',
 *   async handle({ socket }) {
 *     for await (const chunk of socket) socket.write(String(chunk).toUpperCase());
 *   },
 * });
 */
export async function serveRaw(options: ServeRawOptions): Promise<RawServer> {
  if (typeof options.handle !== 'function')
    throw invalidOption('serveRaw needs a handle(connection) function');
  const log = options.log ?? silentLogger;
  const listen = Array.isArray(options.listen) ? options.listen : [options.listen];
  const addresses = (listen as (string | Address)[]).map((item) =>
    typeof item === 'string' ? parseAddress(item) : item,
  );
  if (addresses.length === 0) throw new SockitError('USAGE', 'serveRaw needs at least one address');
  for (const address of addresses) {
    if (address.kind === 'udp') {
      throw new SockitError('USAGE', `${formatAddress(address)}: serveRaw takes streams; use listenUdp`);
    }
  }
  const maxConnections = checkInteger(
    options.maxConnections ?? DEFAULT_LIMITS.maxConnections,
    'maxConnections',
    1,
  );
  const idleTimeoutMs = options.idleTimeoutMs ?? 0;
  // The framed server's clock: one coarse timer for every connection, none re-armed per byte.
  const idleClock = idleTimeoutMs > 0 ? new IdleClock(idleTimeoutMs) : undefined;
  const closeGraceMs = options.closeGraceMs ?? DEFAULT_LIMITS.closeGraceMs;

  const tls = serverTls(addresses, options.tls, options.stateDir ?? defaultStateDir());

  let server: RawServer | undefined;
  const refusal = options.refusal ?? defaultRefusal;
  const acceptor = new Acceptor({
    maxConnections,
    tls: tls?.credentials,
    log,
    refusal: refusal(maxConnections),
    tlsHandshakeTimeoutMs: options.tlsHandshakeTimeoutMs ?? DEFAULT_LIMITS.handshakeTimeoutMs,
    closeGraceMs,
    onRefused: (peer, reason) => {
      if (reason === 'limit') server?.emit('refused', peer);
    },
    open: (socket, info) => {
      const remoteAddress = socket.remoteAddress === undefined ? undefined : unmapIPv4(socket.remoteAddress);
      if (options.admit && !options.admit({ remoteAddress, peer: info.peer })) {
        log.info('connection denied', { peer: info.peer });
        server?.emit('denied', info.peer);
        socket.destroy();
        return { drain() {}, expire() {} };
      }
      return runConnection(
        socket,
        { ...info, remoteAddress },
        options,
        { idleTimeoutMs, idleClock, closeGraceMs },
        log,
        server,
      );
    },
  });
  server = new RawServer(acceptor, {
    tlsFingerprint: tls?.fingerprint,
    shutdownDeadlineMs: options.shutdownDeadlineMs ?? DEFAULT_LIMITS.shutdownDeadlineMs,
  });
  try {
    for (const address of addresses) await acceptor.listen(address);
  } catch (error) {
    await server.close(0);
    throw error;
  }
  return server;
}

/** `::ffff:127.0.0.1` (an IPv4 client on a dual-stack socket) is shown and matched as `127.0.0.1`. */

function runConnection(
  socket: Socket,
  info: { id: number; peer: string; local: Address; remoteAddress: string | undefined },
  handler: RawHandler,
  {
    idleTimeoutMs,
    idleClock,
    closeGraceMs,
  }: { idleTimeoutMs: number; idleClock: IdleClock | undefined; closeGraceMs: number },
  log: Logger,
  server: RawServer | undefined,
): Session {
  // The handler decides when our side ends: a client's EOF is only "no more input" (half-close).
  socket.allowHalfOpen = true;
  const connection = new AcceptedConnection(socket, info, log);
  const idleWatch = idleClock && {
    get activity(): number {
      return socket.bytesRead + socket.bytesWritten;
    },
    onIdle(): void {
      log.info('closing idle connection', { peer: info.peer, idleMs: idleTimeoutMs });
      socket.destroy(new SockitError('TIMEOUT', `idle for ${idleTimeoutMs} ms`));
    },
  };
  const stopIdleClock = (): void => {
    if (idleWatch) idleClock?.unwatch(idleWatch);
  };
  if (idleWatch) idleClock?.watch(idleWatch);
  server?.emit('connection', connection);
  socket.once('close', () => {
    stopIdleClock();
    server?.emit('disconnect', connection);
  });
  void lifecycle(connection, handler, log, closeGraceMs, stopIdleClock);
  return {
    drain: () => connection.abort(new SockitError('UNAVAILABLE', 'server is shutting down')),
    expire: (reason) => {
      connection.abort(reason);
      socket.destroy();
    },
  };
}

/**
 * A RawConnection whose `signal` and `state` are made when a handler first asks (a forwarder's
 * handler asks for neither, thousands of times a second); an abort before that is kept for it.
 */
class AcceptedConnection implements RawConnection {
  readonly id: number;
  readonly socket: Socket;
  readonly peer: string;
  readonly remoteAddress: string | undefined;
  readonly local: Address;
  readonly log: Logger;
  #abort: AbortController | undefined;
  #abortReason: unknown;
  #aborted = false;
  #state: Map<unknown, unknown> | undefined;

  constructor(
    socket: Socket,
    info: { id: number; peer: string; local: Address; remoteAddress: string | undefined },
    log: Logger,
  ) {
    this.id = info.id;
    this.socket = socket;
    this.peer = info.peer;
    this.remoteAddress = info.remoteAddress;
    this.local = info.local;
    this.log = log;
  }

  get signal(): AbortSignal {
    if (this.#abort === undefined) {
      this.#abort = new AbortController();
      if (this.#aborted) this.#abort.abort(this.#abortReason);
    }
    return this.#abort.signal;
  }

  get state(): Map<unknown, unknown> {
    this.#state ??= new Map();
    return this.#state;
  }

  /** Aborts `signal` (the first reason wins), now or when it is made. */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#abortReason = reason;
    this.#abort?.abort(reason);
  }
}

/** setup → handle → finish, then end the connection; a failing step is logged, never thrown. */
async function lifecycle(
  connection: RawConnection,
  handler: RawHandler,
  log: Logger,
  closeGraceMs: number,
  stopIdleClock: () => void,
): Promise<void> {
  const { socket } = connection;
  let failed = false;
  const report = (step: string, error: unknown): void => {
    failed = true;
    log.error(`raw handler ${step} failed`, {
      peer: connection.peer,
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
  };
  try {
    if (handler.setup) await handler.setup(connection);
    try {
      await handler.handle(connection);
    } catch (error) {
      report('handle', error);
    }
  } catch (error) {
    report('setup', error);
  }
  try {
    if (handler.finish) await handler.finish(connection);
  } catch (error) {
    report('finish', error);
  }
  if (socket.destroyed) return;
  if (failed) {
    socket.destroy();
    return;
  }
  // Like socketserver's shutdown_request: our side ends; the peer gets a fixed moment to close its
  // own (what it still sends is dropped, and moves no deadline).
  stopIdleClock(); // idleness no longer counts: the fixed grace below is the only deadline now
  endWithin(socket, closeGraceMs);
}
