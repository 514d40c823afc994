import { EventEmitter } from 'node:events';
import { invalidOption, SockitError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { CATALOGUE } from '../protocol/catalogue.js';
import { encodeFrameToBuffer, errorHeader } from '../protocol/frame.js';
import type { FrameRole } from '../protocol/schema.js';
import { echoService } from '../services/echo.js';
import { defaultStateDir, loadOrCreateToken, tokenPath } from '../state.js';
import {
  type Address,
  formatListenTarget,
  type ListenTarget,
  parseListenTarget,
} from '../transport/address.js';
import { canRelayDescriptors } from '../transport/descriptor-relay.js';
import { type KeepaliveSettings, resolveKeepalive } from '../transport/keepalive.js';
import { type TlsServerCredentials, validateTlsCredentials } from '../transport/listen.js';
import { Acceptor } from './acceptor.js';
import { ChannelOffers } from './channels.js';
import { type Dispatch, ServerConnection } from './connection.js';
import { buildRoutes, type MessageRoute, type RequestOpener } from './frame-routes.js';
import { IdleClock } from './idle-clock.js';
import { type Limits, resolveLimits } from './limits.js';
import { observedServices, type ServerObserver } from './observer.js';
import { BufferBudget } from './read-budget.js';
import type { Service } from './service.js';
import { serverTls } from './tls.js';

export interface ServeOptions {
  /**
   * Addresses to listen on: `tcp://127.0.0.1:0`, `tls://[::1]:9443`, `unix:/tmp/s.sock`, or an
   * inherited listening socket, `fd:3` (`tls+fd:3` with TLS), …
   */
  listen: string | readonly string[];
  /** Services to run. Default: echo. */
  services?: readonly Service[];
  /** The shared secret. Default: read or create `<stateDir>/token` (mode 0600). */
  token?: string;
  /** Where to read or create the token instead of `<stateDir>/token`. */
  tokenFile?: string;
  /** Run every service without authentication. Dangerous with exec or files: say so loudly. */
  insecureNoAuth?: boolean;
  /** Services usable before authenticating. Default: `['echo']`. */
  openServices?: readonly string[];
  /** Certificate and key for `tls://` addresses. Default: a self-signed pair kept in `<stateDir>/tls`. */
  tls?: TlsServerCredentials;
  /** Where token and certificate live. Default: `$SOCKIT_STATE_DIR` or `~/.local/state/sockit`. */
  stateDir?: string;
  limits?: Partial<Limits>;
  log?: Logger;
  /** Told about connections, refusals and requests: the seam `--metrics` hooks into. */
  observer?: ServerObserver;
  /** Dead-client detection for clients that answer pings: a ping after this much silence, ms. Default 15 s; 0 = off. */
  keepaliveMs?: number;
  /** Unanswered pings before such a client is dropped (its commands killed). Default 3. */
  keepaliveCount?: number;
  /**
   * Bind TCP and TLS addresses with SO_REUSEPORT, so that several processes listen on one port
   * and the kernel spreads connections (`serve --workers N --balance reuseport`). Needs
   * `reusePortSupported()`; a fixed port (port 0 would give each process its own).
   */
  reusePort?: boolean;
  /**
   * Offer data channels to terminal sessions on plain (tcp, unix) connections (docs/protocol.md
   * "Data channels"). Default true; `serve --workers` turns it off, as a client's second
   * connection may reach another worker there.
   */
  channels?: boolean;
}

/** A running framed server. Close it with `close()`; it drains open requests first. */
export class Server extends EventEmitter {
  readonly limits: Limits;
  /** Where the token is stored, when it came from a file (so the operator can share it). */
  readonly tokenFile: string | undefined;
  /** Whether the token was created by this start. */
  readonly tokenCreated: boolean;
  readonly #acceptor: Acceptor;
  readonly #dispatch: Dispatch;
  #tlsFingerprint: string | undefined;
  readonly #services: readonly Service[];
  readonly #connections = new Set<ServerConnection>();
  readonly #budget: BufferBudget;
  #closed: Promise<void> | undefined;

  /** Use `serve()`; the constructor does not listen. */
  constructor(init: {
    limits: Limits;
    keepalive?: KeepaliveSettings;
    dispatch: Dispatch;
    services: readonly Service[];
    log: Logger;
    tls: TlsServerCredentials | undefined;
    tlsFingerprint: string | undefined;
    tokenFile: string | undefined;
    tokenCreated: boolean;
    observer?: ServerObserver | undefined;
    reusePort?: boolean | undefined;
  }) {
    super();
    this.limits = init.limits;
    this.tokenFile = init.tokenFile;
    this.tokenCreated = init.tokenCreated;
    this.#tlsFingerprint = init.tlsFingerprint;
    this.#dispatch = init.dispatch;
    this.#services = init.services;
    const observer = init.observer;
    const idleClock = init.limits.idleTimeoutMs > 0 ? new IdleClock(init.limits.idleTimeoutMs) : undefined;
    this.#budget = new BufferBudget(init.limits.maxBufferedBytes);
    const budget = this.#budget;
    const refusal = encodeFrameToBuffer(
      errorHeader('BUSY', 'server is at its connection limit; try again later'),
    );
    this.#acceptor = new Acceptor({
      maxConnections: init.limits.maxConnections,
      tls: init.tls,
      log: init.log,
      refusal,
      tlsHandshakeTimeoutMs: init.limits.handshakeTimeoutMs,
      reusePort: init.reusePort,
      closeGraceMs: init.limits.closeGraceMs,
      onRefused: (_peer, reason) => observer?.refused?.(reason),
      open: (socket, info) => {
        if (observer) {
          observer.connectionOpened?.();
          socket.once('close', () => observer.connectionClosed?.(socket.bytesRead, socket.bytesWritten));
        }
        const connection = new ServerConnection(
          socket,
          {
            id: info.id,
            peer: info.peer,
            acceptedAt: info.acceptedAt,
            dispatch: init.dispatch,
            limits: init.limits,
            log: init.log,
            idleClock,
            budget,
            onError: observer?.connectionError?.bind(observer),
            keepalive: init.keepalive,
          },
          (closed) => {
            this.#connections.delete(closed);
            // With the count open: a trace (--log-level debug) shows how many clients were at once.
            init.log.debug('connection closed', {
              connection: closed.context.id,
              open: this.#connections.size,
            });
            this.emit('disconnect', closed.context);
          },
        );
        this.#connections.add(connection);
        init.log.debug('connection opened', {
          connection: info.id,
          peer: info.peer,
          open: this.#connections.size,
        });
        this.emit('connection', connection.context);
        return connection;
      },
    });
  }

  /** SHA-256 fingerprint of the TLS certificate, when a `tls://` address is served. */
  get tlsFingerprint(): string | undefined {
    return this.#tlsFingerprint;
  }

  /**
   * Swaps certificate and token without dropping anything (`sockit serve` on SIGHUP): clients
   * connected before keep their TLS session and their authentication; clients that connect (or
   * authenticate) from now on get the new certificate and must prove the new token. A pair that
   * does not load throws and changes nothing. Without TLS listeners `tls` is ignored; a server
   * started without authentication keeps running without it.
   */
  reload(next: { tls?: TlsServerCredentials; token?: string }): void {
    let fingerprint: string | undefined;
    if (next.tls !== undefined && this.#tlsFingerprint !== undefined) {
      fingerprint = validateTlsCredentials(next.tls);
    }
    if (next.token !== undefined && next.token.length === 0)
      throw invalidOption('option token must not be empty');
    if (fingerprint !== undefined) {
      this.#acceptor.setTls(next.tls!);
      this.#tlsFingerprint = fingerprint;
    }
    if (next.token !== undefined && this.#dispatch.token !== undefined) this.#dispatch.token = next.token;
  }

  /** Bound addresses, port 0 resolved. */
  get addresses(): Address[] {
    return this.#acceptor.addresses;
  }

  /** The first bound address as text, handy for tests: `tcp://127.0.0.1:41234`. */
  get address(): string {
    return this.#acceptor.firstAddress;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Bytes held in all connections' frame decoders now (see `limits.maxBufferedBytes`). */
  get bufferedBytes(): number {
    return this.#budget.total;
  }

  /** Connections that stopped reading because `limits.maxBufferedBytes` is exceeded. */
  get pausedReads(): number {
    return this.#budget.waiting;
  }

  /** Refused clients whose sockets are not closed yet. */
  get refusalsInProgress(): number {
    return this.#acceptor.refusalsInProgress;
  }

  /** True once `close()` began: draining, no longer ready for new work. */
  get closing(): boolean {
    return this.#closed !== undefined;
  }

  /** Internal: binds one more address (or listens on an inherited socket). */
  listen(target: ListenTarget): Promise<Address> {
    return this.#acceptor.listen(target);
  }

  /**
   * Graceful shutdown: stop accepting, let open requests finish, force-close at the deadline
   * (`limits.shutdownDeadlineMs` unless given), then close the services.
   */
  close(deadlineMs: number = this.limits.shutdownDeadlineMs): Promise<void> {
    this.#closed ??= (async () => {
      await this.#acceptor.close(deadlineMs);
      this.#dispatch.channels?.clear();
      for (const service of this.#services) await service.close?.();
      this.emit('close');
    })();
    return this.#closed;
  }
}

/** Starts a framed sockit server on every address in `options.listen`. */
export async function serve(options: ServeOptions): Promise<Server> {
  const log = options.log ?? silentLogger;
  const limits = resolveLimits(options.limits);
  const services = options.services ?? [echoService()];
  const stateDir = options.stateDir ?? defaultStateDir();
  const addresses = (typeof options.listen === 'string' ? [options.listen] : options.listen).map((text) =>
    parseListenTarget(text),
  );
  if (addresses.length === 0) throw new SockitError('USAGE', 'serve needs at least one address');
  const udp = addresses.find((address) => address.kind === 'udp');
  if (udp) {
    throw new SockitError(
      'USAGE',
      `${formatListenTarget(udp)}: the framed protocol runs over streams; use listenUdp`,
    );
  }

  let token: string | undefined;
  let tokenFile: string | undefined;
  let tokenCreated = false;
  if (options.insecureNoAuth) {
    if (options.token !== undefined || options.tokenFile !== undefined) {
      throw invalidOption('options insecureNoAuth and token/tokenFile exclude each other');
    }
  } else if (options.token !== undefined) {
    if (options.token.length === 0) throw invalidOption('option token must not be empty');
    token = options.token;
  } else {
    tokenFile = options.tokenFile ?? tokenPath(stateDir);
    ({ token, created: tokenCreated } = loadOrCreateToken(tokenFile));
  }

  const tls = serverTls(addresses, options.tls, stateDir);
  const keepalive = resolveKeepalive(options.keepaliveMs, options.keepaliveCount);

  const server = new Server({
    limits,
    keepalive,
    dispatch: buildDispatch(
      options.observer ? observedServices(services, options.observer) : services,
      token,
      options.openServices ?? ['echo'],
      options.channels ?? true,
    ),
    services,
    log,
    tls: tls?.credentials,
    tlsFingerprint: tls?.fingerprint,
    tokenFile,
    tokenCreated,
    observer: options.observer,
    reusePort: options.reusePort,
  });
  try {
    for (const address of addresses) await server.listen(address);
  } catch (error) {
    await server.close(0);
    throw error;
  }
  return server;
}

/**
 * Builds the type → handler tables once from the services and the catalogue: every handled
 * type must be declared (built in or in `Service.frames`) with the matching role, and two
 * services claiming one type is a startup error. Follow-ups are those the served requests declare.
 */
export function buildDispatch(
  services: readonly Service[],
  token: string | undefined,
  open: readonly string[],
  channels: boolean,
): Dispatch {
  const catalogue = CATALOGUE.extend(services.flatMap((service) => (service.frames ? [service.frames] : [])));
  const requests = new Map<string, RequestOpener>();
  const messages = new Map<string, MessageRoute>();
  const followUps = new Set<string>();
  const claimed = new Map<string, string>();
  const claim = (type: string, service: string, role: FrameRole): void => {
    const spec = catalogue.get(type)?.spec;
    if (spec?.service === 'session') {
      throw invalidOption(`service "${service}" handles "${type}", a frame of the connection itself`);
    }
    const declared = spec?.role;
    if (declared !== role) {
      throw invalidOption(
        declared === undefined
          ? `service "${service}" handles frame type "${type}", which no declaration names: add it to the service's frames`
          : `service "${service}" handles "${type}" as a ${role}, but it is declared a ${declared}`,
      );
    }
    const owner = claimed.get(type);
    if (owner !== undefined && owner !== service) {
      throw invalidOption(`services "${owner}" and "${service}" both handle frame type "${type}"`);
    }
    claimed.set(type, service);
  };
  for (const service of services) {
    for (const [type, handler] of Object.entries(service.requests ?? {})) {
      claim(type, service.name, 'request');
      const entry = catalogue.get(type)!;
      requests.set(type, { handler, service: service.name, entry, refused: service.refused?.bind(service) });
      for (const followUp of entry.spec.followUps ?? []) followUps.add(followUp);
    }
    for (const [type, handler] of Object.entries(service.messages ?? {})) {
      claim(type, service.name, 'message');
      messages.set(type, { handler, service: service.name });
    }
  }
  return {
    serviceNames: services.map((service) => service.name),
    catalogue,
    requests,
    messages,
    followUps,
    routes: buildRoutes(catalogue, requests, messages, followUps),
    openServices: new Set(open),
    token,
    // Without the addon a channel's bytes could not be copied: the terminal stays in band.
    channels: channels && canRelayDescriptors() ? new ChannelOffers() : undefined,
  };
}
