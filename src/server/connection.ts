import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { ERROR_CATALOGUE, SockitError } from '../errors.js';
import type { Logger } from '../log.js';
import { createNonce, PROTOCOL_VERSION, SUPPORTED_VERSIONS, verifyProof } from '../protocol/auth.js';
import type { CatalogueEntry, FrameCatalogue } from '../protocol/catalogue.js';
import { TEXT_CLIENT_REPLY } from '../protocol/decoder.js';
import { type BodyEdit, errorHeader, type Frame, type FrameHeader } from '../protocol/frame.js';
import type { ChannelKind } from '../protocol/session.js';
import { FramedSocket, type FrameError, type ReadBudget } from '../transport/framed-socket.js';
import type { KeepaliveSettings } from '../transport/keepalive.js';
import { sealedChannelsAvailable } from '../transport/sealed-channel.js';
import { SOCKIT_AGENT } from '../version.js';
import { type ChannelOffers, DataChannel } from './channels.js';
import { type FrameRoute, type MessageRoute, type RequestOpener, RouteCache } from './frame-routes.js';
import type { IdleClock, IdleWatched } from './idle-clock.js';
import { watchClient } from './keepalive.js';
import type { Limits } from './limits.js';
import { phaseBodyLimit, type TrustPhase } from './phase-limits.js';
import { type RequestOwner, ServerRequest } from './request.js';
import type { ConnectionContext } from './service.js';

export type { RequestOpener } from './frame-routes.js';

/** The dispatch table a server builds once from its services and shares with every connection. */
export interface Dispatch {
  readonly serviceNames: readonly string[];
  /** The built-in frame declarations plus the services' own: validators, limits, follow-ups. */
  readonly catalogue: FrameCatalogue;
  readonly requests: ReadonlyMap<string, RequestOpener>;
  readonly messages: ReadonlyMap<string, MessageRoute>;
  /** Follow-up types of the served requests: dropped silently once their request has ended. */
  readonly followUps: ReadonlySet<string>;
  /** All of the above per declared frame type, so a frame costs one lookup (frame-routes.ts). */
  readonly routes: ReadonlyMap<string, FrameRoute>;
  /** Services usable without authentication (`echo` by default). */
  readonly openServices: ReadonlySet<string>;
  /**
   * The token, or undefined when the operator turned authentication off. Read at each `auth`,
   * so a reload (`Server.reload`) applies to clients that authenticate from then on.
   */
  token: string | undefined;
  /** Open data-channel offers (server/channels.ts); undefined when the server offers none. */
  readonly channels: ChannelOffers | undefined;
}

/** How the error for a frame outside its phases says where it was. */
const PHASE_WORDS: Record<TrustPhase, string> = {
  handshake: 'before "hello"',
  anonymous: 'on a connection that has not authenticated',
  authenticated: 'after the handshake',
};

/** At the shutdown deadline, how long the error frames of open requests get to leave. */
const SHUTDOWN_FLUSH_MS = 500;

/**
 * `Channel`: the connection is a request's data channel (`attach`): its bytes belong to that
 * request, which ends it; nothing may be written into it as frames any more.
 */
const Phase = { Hello: 0, Welcomed: 1, Ready: 2, Closing: 3, Channel: 4 } as const;
type Phase = (typeof Phase)[keyof typeof Phase];

/**
 * One framed client connection: handshake (PROTOCOL section 2), then request dispatch to the
 * services, request-id bookkeeping, the open-request cap, idle timeout and draining on shutdown.
 */
export class ServerConnection implements RequestOwner {
  readonly context: ConnectionContext;
  readonly #framed: FramedSocket;
  readonly #dispatch: Dispatch;
  readonly #limits: Limits;
  readonly #log: Logger;
  readonly #requests = new Map<number, ServerRequest>();
  readonly #routes: RouteCache;
  /** What the peer has proven so far (#updateTrust), which sets what it may send and how large. */
  #trust: TrustPhase = 'handshake';
  readonly #closeListeners: (() => void)[] = [];
  readonly #onClosed: (connection: ServerConnection) => void;
  #phase: Phase = Phase.Hello;
  #authenticated = false;
  #nonce = '';
  #holds = 0;
  /** Set when an unauthenticated client starts using open services. */
  #anonymous = false;
  #draining = false;
  /** Watches for idleness once the handshake is done; none when the idle timeout is off. */
  readonly #idleClock: IdleClock | undefined;
  readonly #idleWatch: IdleWatched;
  /** The handshake's fixed deadline from accept; cleared once the handshake is done. */
  #handshakeTimer: NodeJS.Timeout | undefined;
  /** Set at the shutdown deadline: the requests' ends are sent by `expire`, not one by one. */
  #expiring = false;
  readonly #onError: ((code: string) => void) | undefined;
  readonly #keepalive: KeepaliveSettings | undefined;
  /** The client said in hello that it answers the server's pings. */
  #answersPings = false;

  constructor(
    socket: Socket,
    options: {
      id: number;
      peer: string;
      /** `Date.now()` at accept: the handshake deadline counts from there. Default: now. */
      acceptedAt?: number;
      dispatch: Dispatch;
      limits: Limits;
      log: Logger;
      /** The server's shared idle clock (`limits.idleTimeoutMs`); without one, never idle. */
      idleClock?: IdleClock | undefined;
      /** The server-wide budget of buffered bytes (`limits.maxBufferedBytes`). */
      budget?: ReadBudget | undefined;
      /** Told about connections closed with an error (metrics). */
      onError?: ((code: string) => void) | undefined;
      /** Ping clients that say they answer (server/keepalive.ts); none: never. */
      keepalive?: KeepaliveSettings | undefined;
    },
    onClosed: (connection: ServerConnection) => void,
  ) {
    this.#dispatch = options.dispatch;
    this.#limits = options.limits;
    this.#log = options.log;
    this.#onClosed = onClosed;
    this.#idleClock = options.idleClock;
    this.#onError = options.onError;
    this.#keepalive = options.keepalive;
    this.#routes = new RouteCache(options.dispatch.routes);
    this.#framed = new FramedSocket(
      socket,
      {
        onFrame: (frame) => this.#onFrame(frame),
        onFrameError: (error) => this.#onFrameError(error),
        onClose: (error) => this.#onClose(error),
      },
      {
        maxHeaderBytes: options.limits.maxHeaderBytes,
        maxBodyBytes: options.limits.maxBodyBytes,
        bodyLimit: (header) => phaseBodyLimit(this.#trust, this.#routes.get(header.type), this.#limits),
        frameTimeoutMs: options.limits.frameTimeoutMs,
        closeGraceMs: options.limits.closeGraceMs,
        budget: options.budget,
        detectTextClient: true,
        stopReadingWhileWriteBlocked: true,
      },
    );
    const connection = this;
    const state = new Map<unknown, unknown>();
    this.context = {
      id: options.id,
      peer: options.peer,
      log: options.log,
      state,
      get authenticated() {
        return connection.#authenticated;
      },
      get writableLength() {
        return connection.#framed.writableLength;
      },
      send: (header, body) => this.#framed.send(header, body),
      drained: () => this.#framed.drained(),
      closeWithError: (code, message) => this.#closeWithError(code, message),
      offerChannel: (deadlineMs, kind) =>
        kind === this.#channelKind() ? this.#dispatch.channels?.offer(deadlineMs, kind) : undefined,
      get channelKind() {
        return connection.#channelKind();
      },
      onClose: (listener) => {
        this.#closeListeners.push(listener);
      },
      hold: () => {
        this.#holds++;
        let released = false;
        return () => {
          if (!released) {
            released = true;
            this.#holds--;
          }
        };
      },
    };
    const framed = this.#framed;
    this.#idleWatch = {
      get activity() {
        return framed.activity;
      },
      onIdle: () => this.#onIdle(),
    };
    // The handshake has a fixed deadline from accept (a dribbled hello cannot stretch it);
    // after it the idle clock takes over (#watchIdle).
    this.#handshakeTimer = setTimeout(
      () => {
        this.#closeWithError('TIMEOUT', 'handshake not completed in time');
      },
      Math.max(0, options.limits.handshakeTimeoutMs - (Date.now() - (options.acceptedAt ?? Date.now()))),
    );
  }

  /** Sets `#trust` from the handshake's progress; called wherever that changes. */
  #updateTrust(): void {
    if (this.#authenticated) this.#trust = 'authenticated';
    else if (this.#phase === Phase.Welcomed || this.#anonymous) this.#trust = 'anonymous';
    else this.#trust = 'handshake';
  }

  // ---- RequestOwner -------------------------------------------------------------------

  sendFrame(header: FrameHeader, body: Uint8Array | undefined, id: number, edit?: BodyEdit): boolean {
    return this.#framed.send(header, body, id, edit);
  }

  drained(): Promise<void> {
    return this.#framed.drained();
  }

  requestFinished(request: ServerRequest): void {
    // Most requests end inside their handler and were never stored: nothing to look up then.
    if (this.#requests.size !== 0 && this.#requests.get(request.id) === request) {
      this.#requests.delete(request.id);
    }
    if (this.#draining && !this.#expiring && this.#requests.size === 0) this.#framed.end();
  }

  reportFailure(request: ServerRequest, error: unknown): void {
    try {
      this.#reportFailure(request, error);
    } catch (reportError) {
      // Reached from promise handlers: a throw here would be an unhandled rejection that ends the
      // process. Lose this connection, never the server.
      this.#log.error('could not report a request failure', { error: String(reportError) });
      for (const open of this.#requests.values()) open.abort(new SockitError('INTERNAL', 'connection lost'));
      this.#framed.destroy();
    }
  }

  #reportFailure(request: ServerRequest, error: unknown): void {
    // The client went away mid-request (the abort reason came back from the service): routine,
    // nobody to answer, nothing for an operator to debug.
    if (request.aborted && error instanceof SockitError && error.code === 'CLOSED') {
      this.#log.debug('request ended by a disconnect', {
        connection: this.context.id,
        id: request.id,
        type: request.header.type,
        error: error.message,
      });
      return;
    }
    // Local codes (CLOSED, USAGE, …) describe this side only: they are logged as internal failures.
    if (error instanceof SockitError && error.code !== 'INTERNAL' && ERROR_CATALOGUE[error.code].wire) {
      request.fail(error.code, error.message);
      return;
    }
    this.#log.error('request failed', {
      connection: this.context.id,
      id: request.id,
      type: request.header.type,
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
    // The peer gets a code and a sentence; the stack trace stays in the server log.
    request.fail('INTERNAL', 'internal server error (details are in the server log)');
  }

  // ---- lifecycle ----------------------------------------------------------------------

  /**
   * Graceful shutdown: refuse new requests, close at once if nothing is open, else when the
   * last open request finishes. The server force-closes whatever remains at its deadline.
   */
  drain(): void {
    if (this.#phase === Phase.Channel) return; // its request ends it
    this.#draining = true;
    if (this.#requests.size === 0) this.#closeWithError('UNAVAILABLE', 'server is shutting down');
  }

  /**
   * The shutdown deadline passed: every request still open gets `reason` (UNAVAILABLE) as its
   * error frame and its work is aborted; the connection closes once that is flushed, or after
   * SHUTDOWN_FLUSH_MS at the latest.
   */
  expire(reason: SockitError): void {
    if (this.#phase === Phase.Channel) return; // its request ends it
    this.#expiring = true;
    this.#phase = Phase.Closing;
    const code = ERROR_CATALOGUE[reason.code].wire ? reason.code : 'UNAVAILABLE';
    for (const request of [...this.#requests.values()]) {
      request.fail(code, reason.message);
      request.abort(reason);
    }
    this.#framed.end(undefined, SHUTDOWN_FLUSH_MS);
  }

  /** Aborts every open request (their commands are killed) and closes the socket now: a dead peer. */
  destroy(reason: SockitError): void {
    this.#phase = Phase.Closing;
    clearTimeout(this.#handshakeTimer);
    for (const request of [...this.#requests.values()]) request.abort(reason);
    this.#framed.destroy();
  }

  #closeWithError(code: string, message: string): void {
    this.#onError?.(code);
    this.#phase = Phase.Closing;
    clearTimeout(this.#handshakeTimer);
    this.#framed.closeWithError(code, message);
  }

  #onIdle(): void {
    // Long-running requests (a quiet command, a chat member) are not idleness.
    if (this.#requests.size > 0 || this.#holds > 0) return;
    this.#closeWithError('TIMEOUT', `idle for ${this.#limits.idleTimeoutMs} ms`);
    // Closing waits for the peer; it must not be told twice.
    this.#idleClock?.unwatch(this.#idleWatch);
  }

  #onFrameError(error: FrameError): void {
    this.#phase = Phase.Closing;
    clearTimeout(this.#handshakeTimer);
    if (error.textClient) {
      this.#framed.end(TEXT_CLIENT_REPLY);
      return;
    }
    this.#log.debug('framing error', { connection: this.context.id, code: error.code, error: error.message });
    this.#framed.closeWithError(error.code, error.message);
  }

  #onClose(error: Error | undefined): void {
    this.#phase = Phase.Closing;
    clearTimeout(this.#handshakeTimer);
    this.#idleClock?.unwatch(this.#idleWatch);
    const reason = new SockitError('CLOSED', 'client disconnected', { cause: error });
    for (const request of this.#requests.values()) request.abort(reason);
    this.#requests.clear();
    for (const listener of this.#closeListeners) {
      try {
        listener();
      } catch (listenerError) {
        this.#log.error('close listener failed', { error: String(listenerError) });
      }
    }
    this.#onClosed(this);
  }

  // ---- frames -------------------------------------------------------------------------

  #onFrame(frame: Frame): void | Promise<void> {
    switch (this.#phase) {
      case Phase.Ready:
        return this.#onRequestFrame(frame);
      case Phase.Hello:
        return frame.header.type === 'attach' ? this.#onAttach(frame.header) : this.#onHello(frame.header);
      case Phase.Welcomed:
        return this.#onAuthOrOpenRequest(frame);
      default:
        return undefined;
    }
  }

  #onHello(header: FrameHeader): void {
    if (header.type !== 'hello') {
      this.#closeWithError('UNSUPPORTED', 'the first frame must be "hello"');
      return;
    }
    const problem = this.#dispatch.catalogue.get('hello')?.validate(header);
    if (problem !== undefined || header.version !== PROTOCOL_VERSION) {
      this.#phase = Phase.Closing;
      this.#framed.closeWithError(
        'UNSUPPORTED',
        header.version === PROTOCOL_VERSION
          ? `a malformed hello: ${problem}`
          : `protocol version ${String(header.version)} is not supported`,
        {
          versions: SUPPORTED_VERSIONS,
        },
      );
      return;
    }
    this.#answersPings = header.keepalive === true;
    const needsAuth = this.#dispatch.token !== undefined;
    this.#nonce = needsAuth ? createNonce() : '';
    this.#framed.send({
      type: 'welcome',
      version: PROTOCOL_VERSION,
      server: SOCKIT_AGENT,
      services: this.#dispatch.serviceNames,
      auth: needsAuth ? 'token' : 'none',
      ...(needsAuth ? { nonce: this.#nonce, open: [...this.#dispatch.openServices] } : {}),
    });
    if (needsAuth) {
      this.#phase = Phase.Welcomed;
      this.#updateTrust();
    } else {
      this.#authenticated = true;
      this.#becomeReady();
    }
  }

  /**
   * A first frame `attach`: this connection joins the request that offered its key as a data
   * channel. After `attached` has reached the kernel the socket goes to that request, and the
   * connection only waits for it to close (the request destroys it when it ends).
   */
  #onAttach(header: FrameHeader): void | Promise<void> {
    const channels = this.#dispatch.channels;
    const kind = this.#channelKind();
    if (channels === undefined || kind === undefined) {
      this.#closeWithError('UNSUPPORTED', 'this server offers no data channels on this connection');
      return;
    }
    const malformed = this.#dispatch.catalogue.get('attach')?.validate(header);
    const join = malformed === undefined ? channels.take(String(header.key), kind) : undefined;
    if (join === undefined) {
      this.#log.warn('data channel refused', { connection: this.context.id, peer: this.context.peer });
      this.#closeWithError(
        'AUTH_FAILED',
        malformed ?? 'no data channel waits for this key (expired, used or never offered)',
      );
      return;
    }
    this.#phase = Phase.Channel;
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    // Pending forever: the connection decodes nothing more; the request owns the bytes now.
    return new Promise(() => {
      this.#framed.release({ type: 'attached' }).then(
        (socket) => join(new DataChannel(socket)),
        () => join(undefined),
      );
    });
  }

  /**
   * The channels this connection can carry: on a plain one raw bytes, copied as they are; on a
   * TLS one (whose bytes are records only Node can decrypt) sealed ones, whose keys its TLS
   * session exports, where this process can seal; none where the server offers none.
   */
  #channelKind(): ChannelKind | undefined {
    if (this.#dispatch.channels === undefined) return undefined;
    if (!(this.#framed.socket instanceof TLSSocket)) return 'raw';
    return sealedChannelsAvailable() ? 'sealed' : undefined;
  }

  #onAuthOrOpenRequest(frame: Frame): void | Promise<void> {
    if (frame.header.type !== 'auth') {
      // A client without a token that uses open services (echo, a listen-only chat member) has
      // finished its handshake as far as it goes: from now on only idleness closes it.
      if (!this.#anonymous) {
        this.#anonymous = true;
        this.#updateTrust();
        this.#watchIdle();
      }
      return this.#onRequestFrame(frame);
    }
    const malformed = this.#dispatch.catalogue.get('auth')?.validate(frame.header);
    if (malformed !== undefined || !verifyProof(this.#dispatch.token!, this.#nonce, frame.header.proof)) {
      this.#log.warn('authentication failed', { connection: this.context.id, peer: this.context.peer });
      this.#closeWithError('AUTH_FAILED', 'authentication failed: the token proof does not match');
      return;
    }
    this.#authenticated = true;
    this.#becomeReady();
  }

  #becomeReady(): void {
    this.#phase = Phase.Ready;
    this.#updateTrust();
    // Bulk comes from authenticated peers only: their records then land in recycled buffers.
    if (this.#authenticated) this.#framed.recycleReads();
    this.#framed.send({ type: 'ready' });
    this.#watchIdle();
  }

  #watchIdle(): void {
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    this.#idleClock?.watch(this.#idleWatch);
    if (this.#keepalive && this.#answersPings) {
      watchClient(this.#framed.socket, this.#keepalive, this, this.#log);
    }
  }

  /** For server/keepalive.ts. */
  get id(): number {
    return this.context.id;
  }

  get peer(): string {
    return this.context.peer;
  }

  send(header: FrameHeader): boolean {
    return this.#framed.send(header);
  }

  /** Requests are served after `ready`, and before it only for open services (echo by default). */
  #onRequestFrame(frame: Frame): void | Promise<void> {
    const { header } = frame;
    const id = header.id;
    const type = header.type;
    const route = this.#routes.get(type);
    const opener = route?.opener;
    if (opener !== undefined) {
      if (id === undefined) return this.#closeWithError('BAD_REQUEST', `a "${type}" request needs an id`);
      return this.#openRequest(frame, id, opener, route!);
    }
    if (route !== undefined && !route.accepted[this.#trust]) {
      return this.#closeWithError('UNSUPPORTED', `"${type}" is not allowed ${PHASE_WORDS[this.#trust]}`);
    }
    if (id !== undefined) {
      if (type === 'ping') {
        this.#framed.send({ type: 'pong', id });
        return;
      }
      if (type === 'pong') return; // the answer to our keepalive ping: its bytes were the point
      const request = this.#requests.get(id);
      if (type === 'cancel') {
        request?.abort(new SockitError('TIMEOUT', 'cancelled by the client'));
        return;
      }
      if (request !== undefined) return this.#deliver(request, frame, route?.entry);
      // Follow-ups of a request that already ended (data in flight after a cancel) are dropped.
      if (route?.followUp) return;
      this.#framed.send(errorHeader('UNSUPPORTED', `unknown request type "${type}"`, id));
      return;
    }
    const message = route?.message;
    if (message !== undefined) {
      if (!this.#mayUse(message.service)) {
        return this.#closeWithError('AUTH_REQUIRED', `"${type}" needs an authenticated connection`);
      }
      // A message has no id to answer: a malformed one is a connection error.
      const { entry } = route!;
      const problem = entry.validate(header);
      if (problem !== undefined)
        return this.#closeWithError(entry.spec.invalidCode ?? 'BAD_REQUEST', problem);
      return message.handler(frame, this.context) ?? undefined;
    }
    this.#closeWithError('UNSUPPORTED', `unknown frame type "${type}"`);
  }

  /**
   * A follow-up frame of an open request: one the request's declaration does not list, or that
   * breaks its own declaration, ends the request with BAD_REQUEST and aborts its work (kills the
   * command) rather than reaching the service.
   */
  #deliver(request: ServerRequest, frame: Frame, entry: CatalogueEntry | undefined): void | Promise<void> {
    const { type } = frame.header;
    const allowed = this.#dispatch.routes.get(request.header.type)?.entry.spec.followUps ?? [];
    const problem = !allowed.includes(type)
      ? `request ${request.id} (${request.header.type}) does not take "${type}" frames`
      : entry?.validate(frame.header);
    if (problem === undefined) return request.deliver(frame);
    request.fail('BAD_REQUEST', problem);
    request.abort(new SockitError('BAD_REQUEST', 'bad request'));
  }

  #openRequest(frame: Frame, id: number, opener: RequestOpener, route: FrameRoute): void {
    const { entry } = opener;
    if (!this.#mayUse(opener.service) || !route.accepted[this.#trust]) {
      const message = `the ${opener.service} service needs authentication: set SOCKIT_TOKEN or pass --token-file`;
      this.#refuse(frame.header, id, opener, new SockitError('AUTH_REQUIRED', message));
      return;
    }
    if (this.#draining) {
      this.#refuse(frame.header, id, opener, new SockitError('UNAVAILABLE', 'server is shutting down'));
      return;
    }
    if (this.#requests.size !== 0 && this.#requests.has(id)) {
      // The client's id bookkeeping is broken: neither request can be trusted to reach the right
      // caller, so the connection ends (its open requests are aborted on close).
      this.#closeWithError('CONFLICT', `request id ${id} is already open on this connection`);
      return;
    }
    if (this.#requests.size >= this.#limits.maxOpenRequests) {
      const limit = this.#limits.maxOpenRequests;
      this.#refuse(
        frame.header,
        id,
        opener,
        new SockitError('BUSY', `too many open requests on this connection (limit ${limit})`),
      );
      return;
    }
    const problem = entry.validate(frame.header);
    if (problem !== undefined) {
      this.#refuse(
        frame.header,
        id,
        opener,
        new SockitError(entry.spec.invalidCode ?? 'BAD_REQUEST', problem),
      );
      return;
    }
    const request = new ServerRequest(frame, this);
    request.run(opener.handler);
    // Only a request still open after its handler returns needs finding again (follow-ups,
    // cancel, disconnect). Most small ones (echo, stat) are done by then, and skip the Map,
    // which would otherwise grow and shrink its table for each of them.
    if (!request.finished) this.#requests.set(id, request);
  }

  /** Answers a request its service never sees with `error`, and tells the service (its audit). */
  #refuse(header: FrameHeader, id: number, opener: RequestOpener, error: SockitError): void {
    this.#framed.send(errorHeader(error.code, error.message, id));
    try {
      opener.refused?.(header, this.context, error);
    } catch (hookError) {
      this.#log.error('a service failed to note a refused request', { error: String(hookError) });
    }
  }

  #mayUse(service: string): boolean {
    return this.#authenticated || this.#dispatch.openServices.has(service);
  }
}
