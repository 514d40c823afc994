import { lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { fromSystemError, SockitError } from '../errors.js';
import { type Address, formatAddress } from './address.js';

/** Certificate and key (PEM) for `tls://` listeners. */
export interface TlsServerCredentials {
  cert: string | Buffer;
  key: string | Buffer;
}

/** A bound stream listener: the real address (port 0 resolved) and the Node server. */
export interface StreamListener {
  readonly address: Address;
  readonly server: net.Server;
  close(): Promise<void>;
}

/**
 * Given with each `tls://` socket: registers the one call made when its TLS handshake is done
 * (never, if it fails). Writes and ends before that would break the handshake.
 */
export type SecureNotifier = (ready: () => void) => void;

/** Time a `tls://` client has from accept to finish its TLS handshake, unless the caller says. */
export const DEFAULT_TLS_HANDSHAKE_MS = 10_000;

/**
 * Binds a TCP, TLS or Unix-socket listener and reports its real address. `[::]` gives one
 * dual-stack socket. A stale Unix socket file (nobody accepting on it) is removed first; a live
 * one is `UNAVAILABLE`, as with a TCP port in use. `tls://` sockets reach `onSocket` at accept,
 * before their TLS handshake, with a `SecureNotifier`; one that does not finish the handshake
 * within `tlsHandshakeTimeoutMs` is destroyed.
 */
export async function listenStream(
  address: Address,
  onSocket: (socket: net.Socket, onSecure: SecureNotifier | undefined) => void,
  options: { tls?: TlsServerCredentials; backlog?: number; tlsHandshakeTimeoutMs?: number } = {},
): Promise<StreamListener> {
  if (address.kind === 'udp') throw new SockitError('USAGE', 'listenStream takes tcp, tls or unix addresses');
  let server: net.Server;
  if (address.kind === 'tls') {
    if (!options.tls) throw new SockitError('USAGE', `${formatAddress(address)} needs a certificate and key`);
    const context = tls.createSecureContext({
      cert: options.tls.cert,
      key: options.tls.key,
      minVersion: 'TLSv1.2',
    });
    const handshakeMs = options.tlsHandshakeTimeoutMs ?? DEFAULT_TLS_HANDSHAKE_MS;
    // The TLS socket is handed over at accept, not after its handshake as tls.Server does, so
    // the owner counts it against its connection cap from accept; `onSecure` says when it may
    // be used. A handshake not done within the deadline (not Node's own 120 s) loses the socket.
    server = net.createServer((raw) => {
      const socket = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
      const timer = setTimeout(() => socket.destroy(), handshakeMs);
      socket.once('secure', () => clearTimeout(timer));
      socket.once('close', () => clearTimeout(timer));
      onSocket(socket, (ready) => socket.once('secure', ready));
    });
  } else {
    server = net.createServer((socket) => onSocket(socket, undefined));
  }
  server.on('error', () => {});
  if (address.kind === 'unix') await removeStaleUnixSocket(address.path);
  await new Promise<void>((resolve, reject) => {
    const fail = (error: Error): void =>
      reject(fromSystemError(error, `cannot listen on ${formatAddress(address)}`));
    server.once('error', fail);
    const ready = (): void => {
      server.off('error', fail);
      resolve();
    };
    if (address.kind === 'unix')
      server.listen({ path: address.path, backlog: options.backlog ?? 511 }, ready);
    else server.listen({ host: address.host, port: address.port, backlog: options.backlog ?? 511 }, ready);
  });
  const bound = boundAddress(address, server);
  return {
    address: bound,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}

function boundAddress(requested: Address, server: net.Server): Address {
  if (requested.kind === 'unix') return requested;
  const info = server.address();
  if (info === null || typeof info === 'string') return requested;
  return { kind: requested.kind, host: requested.host, port: info.port };
}

async function removeStaleUnixSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket)
    throw new SockitError(
      'UNAVAILABLE',
      `cannot listen on unix:${path}: a file that is not a socket is there`,
    );
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live)
    throw new SockitError('UNAVAILABLE', `cannot listen on unix:${path}: another server is accepting there`);
  try {
    unlinkSync(path);
  } catch (error) {
    throw fromSystemError(error, `cannot remove stale socket ${path}`);
  }
}

/** A printable name for the remote end of a socket. */
export function describePeer(socket: net.Socket): string {
  if (socket.remoteAddress === undefined) return 'unix';
  return socket.remoteFamily === 'IPv6'
    ? `[${socket.remoteAddress}]:${socket.remotePort}`
    : `${socket.remoteAddress}:${socket.remotePort}`;
}
