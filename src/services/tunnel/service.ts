import net from 'node:net';
import { SockitError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log.js';
import type { HeaderOfType } from '../../protocol/catalogue.js';
import {
  TUNNEL_ATTACH_TIMEOUT_MS,
  TUNNEL_CHANNEL_WAIT_MS,
  TUNNEL_FRAMES,
  TUNNEL_WINDOW,
} from '../../protocol/tunnel.js';
import type { ServerRequest } from '../../server/request.js';
import type { ChannelOffer, Service } from '../../server/service.js';
import { describePeer } from '../../transport/listen.js';
import { sendGateOf } from '../../transport/tunnel-gate.js';
import { TunnelStream } from '../../transport/tunnel-stream.js';
import { TunnelAllowList } from './allow.js';
import { dialTarget, TunnelDialError, type TunnelTarget } from './dial.js';

export interface TunnelServiceOptions {
  /** `--tunnel-allow` entries: what streams may reach (nothing else is). */
  allow: readonly string[];
  /** Whether clients may open listeners on the server (`-R`, `--tunnel-remote`). */
  remote?: boolean;
  /** Deadline for connecting to a target. Default 10 s. */
  connectTimeoutMs?: number;
  log?: Logger;
}

/** The tunnel service, with counts for tests and status. */
export interface TunnelService extends Service {
  /** Streams open now. */
  readonly streams: number;
}

/** Connections a `-R` listener accepted, waiting for the client's attach. */
interface Pending {
  socket: net.Socket;
  connection: number;
  timer: NodeJS.Timeout;
  /** The waiting connections of its listener, which the cap counts: it leaves them at attach. */
  waitingAtListener: Set<number>;
}

/** Accepted connections of one `-R` listener that may wait for their attach at once. */
const MAX_PENDING_PER_LISTENER = 64;

/**
 * Tunnels (`sockit tunnel -L/-R/-D`): many streams over one authenticated connection, each a
 * request with its own credit windows (docs/protocol.md "tunnel"). A refused or unreachable
 * target fails that stream alone; the connection lives on.
 */
export function tunnelService(options: TunnelServiceOptions): TunnelService {
  const allow = new TunnelAllowList(options.allow);
  const log = options.log ?? silentLogger;
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const streams = new Set<TunnelStream>();
  const listeners = new Set<net.Server>();
  const pending = new Map<number, Pending>();
  let nextConn = 1;

  const refuseUnauthenticated = (request: ServerRequest): boolean => {
    if (request.connection.authenticated) return false;
    request.fail('AUTH_REQUIRED', 'tunnels need authentication: set SOCKIT_TOKEN or pass --token-file');
    return true;
  };

  function run(request: ServerRequest, socket: net.Socket, what: string): void {
    const credit = request.header.window ?? TUNNEL_WINDOW;
    const started = Date.now();
    /** The sealed channel offered to this stream (one at most), until it is joined or the stream ends. */
    let offer: ChannelOffer | undefined;
    const stream: TunnelStream = new TunnelStream(socket, {
      send: (header, body) => request.send(header, body),
      gate: sendGateOf(request.connection),
      credit: credit as number,
      window: TUNNEL_WINDOW,
      onDone: (error) => {
        streams.delete(stream);
        offer?.withdraw();
        log.info('tunnel stream closed', {
          peer: request.connection.peer,
          target: what,
          bytesIn: stream.bytesIn,
          bytesOut: stream.bytesOut,
          sealed: stream.sealed,
          ms: Date.now() - started,
          ...(error ? { error: error.message } : {}),
        });
        if (request.aborted) request.finish();
        else if (error?.code === 'BAD_REQUEST') request.fail('BAD_REQUEST', error.message);
        else if (error) request.fail('UNAVAILABLE', `${what}: ${error.message}`, { reason: 'reset' });
        else request.reply({ type: TUNNEL_FRAMES.closed });
      },
    });
    streams.add(stream);
    const sealedChannels = request.connection.channelKind === 'sealed';
    request.onFrame = (frame) => {
      if (frame.header.type === TUNNEL_FRAMES.switch && offer === undefined) {
        return stream.abort(new SockitError('BAD_REQUEST', 'tunnel-switch without a sealed channel offered'));
      }
      if (frame.header.type !== TUNNEL_FRAMES.channel) return stream.onFrame(frame);
      // Asked for before (one per stream), or never offered: the stream stays in frames.
      if (offer !== undefined || !sealedChannels || stream.done) return;
      offer = request.connection.offerChannel(TUNNEL_CHANNEL_WAIT_MS, 'sealed');
      if (offer === undefined) return;
      request.send({ type: TUNNEL_FRAMES.offer, key: offer.key });
      void offer.attached.then((channel) => {
        const sealed = channel?.sealed();
        if (sealed === undefined) {
          channel?.destroy();
          // The client may have switched already: without the channel its bytes never come.
          stream.abandonChannel();
          return;
        }
        log.debug('tunnel stream sealed channel joined', { peer: request.connection.peer, target: what });
        stream.useChannel(sealed);
      });
    };
    request.signal.addEventListener('abort', () => stream.abort(new SockitError('CLOSED', 'cancelled')), {
      once: true,
    });
    request.send({
      type: TUNNEL_FRAMES.opened,
      window: TUNNEL_WINDOW,
      ...(sealedChannels ? { channel: true } : {}),
    });
    stream.start();
  }

  async function open(request: ServerRequest): Promise<void> {
    if (refuseUnauthenticated(request)) return;
    const target = targetOf(request.header as HeaderOfType<'tunnel-open'>);
    if (allow.size === 0) {
      request.fail('FORBIDDEN', 'this server allows no tunnel targets (--tunnel-allow)');
      return;
    }
    request.onFrame = () => {}; // only a cancel can come before `tunnel-opened`
    let socket: net.Socket;
    try {
      socket = await dialTarget(target, allow, connectTimeoutMs, request.signal);
    } catch (error) {
      if (request.aborted) return request.finish();
      if (error instanceof TunnelDialError)
        request.fail('UNAVAILABLE', error.message, { reason: error.reason });
      else if (error instanceof SockitError) request.fail(error.code, error.message);
      else throw error;
      return;
    }
    if (request.aborted) {
      socket.destroy();
      request.finish();
      return;
    }
    run(request, socket, 'path' in target ? `unix:${target.path}` : `${target.host}:${target.port}`);
  }

  function attach(request: ServerRequest): void {
    if (refuseUnauthenticated(request)) return;
    const conn = request.header.conn;
    const waiting = typeof conn === 'number' ? pending.get(conn) : undefined;
    if (waiting === undefined || waiting.connection !== request.connection.id) {
      request.fail('NOT_FOUND', `no accepted connection ${String(conn)} is waiting for this client`);
      return;
    }
    leavePending(conn as number, waiting);
    run(request, waiting.socket, `-R connection ${String(conn)}`);
  }

  /** The `-R` connection `conn` stops waiting for its attach: attached, refused or timed out. */
  function leavePending(conn: number, waiting: Pending): void {
    pending.delete(conn);
    waiting.waitingAtListener.delete(conn);
    clearTimeout(waiting.timer);
  }

  /** Closes an accepted `-R` connection that will never be attached. */
  function dropPending(conn: number, waiting: Pending): void {
    leavePending(conn, waiting);
    waiting.socket.destroy();
  }

  async function listen(request: ServerRequest): Promise<void> {
    if (refuseUnauthenticated(request)) return;
    if (!options.remote) {
      request.fail('FORBIDDEN', 'this server does not allow -R listeners (start it with --tunnel-remote)');
      return;
    }
    const { host = '127.0.0.1', port } = request.header as HeaderOfType<'tunnel-listen'>;
    /** Accepted connections waiting for their attach (not those already attached). */
    const mine = new Set<number>();
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      socket.on('error', () => {});
      if (mine.size >= MAX_PENDING_PER_LISTENER) {
        log.warn('tunnel -R: connection refused, too many waiting for the client to attach', {
          peer: describePeer(socket),
          waiting: mine.size,
        });
        socket.destroy();
        return;
      }
      const conn = nextConn++;
      const waiting: Pending = {
        socket,
        connection: request.connection.id,
        timer: setTimeout(() => dropPending(conn, waiting), TUNNEL_ATTACH_TIMEOUT_MS),
        waitingAtListener: mine,
      };
      pending.set(conn, waiting);
      mine.add(conn);
      socket.once('close', () => mine.delete(conn));
      request.send({ type: TUNNEL_FRAMES.accept, conn, peer: describePeer(socket) });
    });
    request.onFrame = () => {};
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port as number, host, () => resolve());
      });
    } catch (error) {
      request.fail('UNAVAILABLE', `cannot listen on ${host}:${String(port)}: ${(error as Error).message}`);
      return;
    }
    listeners.add(server);
    const stop = (): void => {
      listeners.delete(server);
      server.close();
      for (const conn of mine) {
        const waiting = pending.get(conn);
        if (waiting) dropPending(conn, waiting);
      }
      request.finish();
    };
    if (request.aborted) return stop();
    request.signal.addEventListener('abort', stop, { once: true });
    const bound = server.address() as net.AddressInfo;
    log.info('tunnel -R listener', { peer: request.connection.peer, host: bound.address, port: bound.port });
    request.send({ type: TUNNEL_FRAMES.listening, host: bound.address, port: bound.port });
  }

  return {
    name: 'tunnel',
    requests: {
      [TUNNEL_FRAMES.open]: open,
      [TUNNEL_FRAMES.attach]: attach,
      [TUNNEL_FRAMES.listen]: listen,
    },
    // An attach the connection refused (BUSY: too many streams open) is never coming: its `-R`
    // connection is closed now, not at the attach timeout, as a refused `-L` stream is.
    refused(header, connection, error) {
      const conn = header.conn;
      if (header.type !== TUNNEL_FRAMES.attach || typeof conn !== 'number') return;
      const waiting = pending.get(conn);
      if (waiting === undefined || waiting.connection !== connection.id) return;
      log.warn('tunnel -R: connection closed, its attach was refused', {
        peer: describePeer(waiting.socket),
        error: error.code,
      });
      dropPending(conn, waiting);
    },
    get streams() {
      return streams.size;
    },
    close() {
      for (const server of listeners) server.close();
      for (const stream of streams) stream.abort(new SockitError('UNAVAILABLE', 'server is shutting down'));
      for (const waiting of pending.values()) {
        clearTimeout(waiting.timer);
        waiting.socket.destroy();
      }
      pending.clear();
    },
  };
}

/** Where a `tunnel-open` goes; the catalogue checked it names `host` and `port` or a `path`. */
function targetOf(header: HeaderOfType<'tunnel-open'>): TunnelTarget {
  return header.path !== undefined ? { path: header.path } : { host: header.host!, port: header.port! };
}
