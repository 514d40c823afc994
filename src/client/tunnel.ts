import net from 'node:net';
import { TLSSocket } from 'node:tls';
import { SockitError } from '../errors.js';
import type { HeaderOfType } from '../protocol/catalogue.js';
import { TUNNEL_FRAMES, TUNNEL_WINDOW } from '../protocol/tunnel.js';
import { formatHostPort } from '../transport/address.js';
import { descriptorOf } from '../transport/descriptor-relay.js';
import { channelKeys } from '../transport/sealed-channel.js';
import { sendGateOf } from '../transport/tunnel-gate.js';
import { TunnelStream } from '../transport/tunnel-stream.js';
import type { Client } from './client.js';
import { socksHandshake } from './tunnel-socks.js';

/** Where a stream comes out at the server: a host and port, or a unix socket there. */
export type TunnelTarget = { host: string; port: number } | { path: string };

/** A local end of a tunnel: `-L`/`-D` listen here, `-R` listens on the server. */
export interface TunnelEndpoint {
  /** Where it listens, `host:port`. */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Receives one line per stream that failed (refused target, reset): the CLI prints them. */
export type TunnelReport = (line: string) => void;

/**
 * Joins `socket` to a new stream of the tunnel service. Resolves once the server has connected
 * the stream's far end; rejects with the server's reason (FORBIDDEN, UNAVAILABLE with `reason`)
 * if it could not. `header` is a `tunnel-open` (or, for `-R`, `tunnel-attach`) without id.
 */
export function openTunnelStream(
  client: Client,
  header: { type: string; [field: string]: unknown },
  socket: net.Socket,
  start: {
    /** Bytes read from the socket before the stream opened (after a SOCKS request). */
    early?: Buffer;
    /** Runs once the far end is connected, before any of its bytes reach `socket` (the SOCKS reply). */
    onOpen?: () => void;
    /** The server ended the open stream with an error (its target reset, the server stopping). */
    onFailed?: (error: Error) => void;
  } = {},
): Promise<void> {
  socket.pause();
  return new Promise((resolve, reject) => {
    let stream: TunnelStream | undefined;
    const request = client.open({ ...header, window: TUNNEL_WINDOW });
    const earlyError = (): void => request.cancel();
    socket.once('error', earlyError);
    socket.once('close', earlyError);
    request.onFrame = (frame) => {
      if (frame.header.type === TUNNEL_FRAMES.offer && stream !== undefined) {
        joinSealedChannel(client, String(frame.header.key), stream);
        return;
      }
      if (stream !== undefined) return stream.onFrame(frame);
      // The catalogue checked the window of an `opened` before the frame got here.
      if (frame.header.type !== TUNNEL_FRAMES.opened) return;
      socket.off('error', earlyError);
      socket.off('close', earlyError);
      const opened = frame.header as HeaderOfType<'tunnel-opened'>;
      stream = new TunnelStream(socket, {
        send: (next, body) => {
          if (!request.settled) request.send(next, body);
        },
        gate: sendGateOf(client),
        credit: opened.window,
        window: TUNNEL_WINDOW,
        onDone: (error) => {
          if (error !== undefined) request.cancel();
        },
        switchesFirst: true,
        // A long stream asks for a sealed channel where both ends can have one.
        onLong:
          opened.channel === true && client.channelKind === 'sealed'
            ? () => {
                if (!request.settled) request.send({ type: TUNNEL_FRAMES.channel });
              }
            : undefined,
      });
      start.onOpen?.();
      stream.start(start.early);
      resolve();
    };
    request.done.then(
      () => {},
      (error: Error) => {
        if (stream === undefined) {
          socket.off('error', earlyError);
          socket.off('close', earlyError);
          reject(error);
        } else if (!stream.done) {
          start.onFailed?.(error);
          stream.abort(error instanceof SockitError ? error : new SockitError('CLOSED', error.message));
        }
      },
    );
  });
}

/**
 * Joins the sealed channel a stream was offered and hands it to the stream. A channel that
 * cannot be joined leaves the stream in frames, as it was: the server's offer expires.
 */
function joinSealedChannel(client: Client, key: string, stream: TunnelStream): void {
  client.joinChannel(key).then(
    ({ socket, early }) => {
      // The server sends nothing on the channel before our `tunnel-switch`: bytes here are wrong.
      if (stream.done || early.length > 0 || !(socket instanceof TLSSocket)) {
        socket.destroy();
        return;
      }
      stream.useChannel({
        fd: descriptorOf(socket),
        keys: channelKeys(socket, 'client'),
        destroy: () => socket.destroy(),
      });
    },
    () => {},
  );
}

/** The request header that opens a stream to `target`. */
export function openHeader(target: TunnelTarget): { type: string; [field: string]: unknown } {
  return { type: TUNNEL_FRAMES.open, ...target };
}

function describeTarget(target: TunnelTarget): string {
  return 'path' in target ? `unix:${target.path}` : formatHostPort(target.host, target.port);
}

async function listenLocal(
  host: string,
  port: number,
  onSocket: (socket: net.Socket) => void,
): Promise<{ server: net.Server; endpoint: TunnelEndpoint }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new SockitError('UNAVAILABLE', `cannot listen on ${formatHostPort(host, port)}: ${error.message}`),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as net.AddressInfo;
  return {
    server,
    endpoint: {
      address: formatHostPort(bound.address, bound.port),
      port: bound.port,
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const socket of sockets) socket.destroy();
        }),
    },
  };
}

/**
 * `-L [bind:]port:host:hostport`: a local listener (loopback by default) whose connections come
 * out at the server, to `target`.
 */
export async function forwardLocal(
  client: Client,
  listen: { host: string; port: number },
  target: TunnelTarget,
  report: TunnelReport = () => {},
): Promise<TunnelEndpoint> {
  const { endpoint } = await listenLocal(listen.host, listen.port, (socket) => {
    const failed = (error: Error): void => report(`-L ${describeTarget(target)}: ${error.message}`);
    openTunnelStream(client, openHeader(target), socket, { onFailed: failed }).catch((error: Error) => {
      failed(error);
      socket.destroy();
    });
  });
  return endpoint;
}

/**
 * `-D [bind:]port`: a SOCKS5 server (CONNECT; IPv4, IPv6, names resolved by the server). A
 * target the server refuses gets the matching SOCKS reply (0x02 for the allow-list).
 */
export async function forwardSocks(
  client: Client,
  listen: { host: string; port: number },
  report: TunnelReport = () => {},
): Promise<TunnelEndpoint> {
  const { endpoint } = await listenLocal(listen.host, listen.port, (socket) => {
    socksHandshake(socket, (target, early, onOpen) =>
      openTunnelStream(client, openHeader(target), socket, {
        early,
        onOpen,
        onFailed: (error) => report(`-D ${describeTarget(target)}: ${error.message}`),
      }),
    ).catch((error: Error) => {
      report(`-D: ${error.message}`);
      socket.destroy();
    });
  });
  return endpoint;
}

/**
 * `-R [bind:]port:host:hostport`: a listener on the server (which must run `--tunnel-remote`)
 * whose connections come out here, to `target`.
 */
export function forwardRemote(
  client: Client,
  listen: { host: string; port: number },
  target: { host: string; port: number },
  report: TunnelReport = () => {},
): Promise<TunnelEndpoint> {
  return new Promise((resolve, reject) => {
    let endpoint: TunnelEndpoint | undefined;
    let closing = false;
    const request = client.open({ type: TUNNEL_FRAMES.listen, ...listen });
    request.onFrame = (frame) => {
      const { header } = frame;
      if (header.type === TUNNEL_FRAMES.listening && endpoint === undefined) {
        const { host, port } = header as HeaderOfType<'tunnel-listening'>;
        endpoint = {
          address: formatHostPort(host, port),
          port,
          close: async () => {
            closing = true;
            request.cancel();
          },
        };
        resolve(endpoint);
      } else if (header.type === TUNNEL_FRAMES.accept) {
        const attach = { type: TUNNEL_FRAMES.attach, conn: header.conn };
        const socket = net.connect({ ...target, allowHalfOpen: true });
        socket.once('connect', () => {
          socket.removeAllListeners('error');
          const failed = (error: Error): void =>
            report(`-R ${formatHostPort(target.host, target.port)}: ${error.message}`);
          openTunnelStream(client, attach, socket, { onFailed: failed }).catch((error: Error) => {
            failed(error);
            socket.destroy();
          });
        });
        socket.once('error', (error) => {
          report(`-R cannot connect to ${formatHostPort(target.host, target.port)}: ${error.message}`);
          // Attach and cancel at once: the server drops the connection it accepted.
          client.open({ ...attach, window: TUNNEL_WINDOW }).cancel();
        });
      }
    };
    request.done.catch((error: Error) => {
      if (endpoint === undefined) reject(error);
      else if (!closing) report(`-R listener ${endpoint.address} ended: ${error.message}`);
    });
  });
}
