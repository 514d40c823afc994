import cluster from 'node:cluster';
import { X509Certificate } from 'node:crypto';
import { fstatSync, lstatSync, readFileSync, readlinkSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { fromSystemError, SockitError } from '../errors.js';
import { type Address, formatListenTarget, type ListenTarget, servesTls } from './address.js';

/** Certificate and key (PEM) for `tls://` listeners. */
export interface TlsServerCredentials {
  cert: string | Buffer;
  key: string | Buffer;
}

/** A bound stream listener: the real address (port 0 resolved) and the Node server. */
export interface StreamListener {
  readonly address: Address;
  readonly server: net.Server;
  /**
   * New certificate and key for connections accepted from now on (`tls://` only; a no-op on
   * plain listeners). Throws, changing nothing, when the pair is not usable.
   */
  setTls(credentials: TlsServerCredentials): void;
  close(): Promise<void>;
}

/**
 * Given with each `tls://` socket: registers the one call made when its TLS handshake is done
 * (never, if it fails). Writes and ends before that would break the handshake.
 */
export type SecureNotifier = (ready: () => void) => void;

/**
 * Whether this Node can give several processes their own listening socket on one TCP port
 * (`reusePort`, SO_REUSEPORT: the kernel spreads connections): Node ≥ 22.12 (or ≥ 23.1) on
 * Linux. Older Nodes accept the option and ignore it, so the version is what tells.
 */
export function reusePortSupported(
  version: string = process.versions.node,
  platform: string = process.platform,
): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return (
    platform === 'linux' && (major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12))
  );
}

/** Time a `tls://` client has from accept to finish its TLS handshake, unless the caller says. */
export const DEFAULT_TLS_HANDSHAKE_MS = 10_000;

/**
 * Binds a TCP, TLS or Unix-socket listener, or listens on an inherited socket (`fd:N`), and
 * reports its real address. `[::]` gives one dual-stack socket. A stale Unix socket file
 * (nobody accepting on it) is removed first; a live one is `UNAVAILABLE`, as with a TCP port in
 * use. `tls://` sockets reach `onSocket` at accept, before their TLS handshake, with a
 * `SecureNotifier`; one that does not finish the handshake within `tlsHandshakeTimeoutMs` is
 * destroyed.
 */
export async function listenStream(
  target: ListenTarget,
  onSocket: (socket: net.Socket, onSecure: SecureNotifier | undefined) => void,
  options: {
    tls?: TlsServerCredentials;
    backlog?: number;
    tlsHandshakeTimeoutMs?: number;
    /** TCP only: a socket of this process's own on a port others bind too (`reusePortSupported`). */
    reusePort?: boolean;
  } = {},
): Promise<StreamListener> {
  if (target.kind === 'udp')
    throw new SockitError('USAGE', 'listenStream takes tcp, tls, unix or fd addresses');
  let server: net.Server;
  let context: tls.SecureContext | undefined;
  if (servesTls(target)) {
    if (!options.tls)
      throw new SockitError('USAGE', `${formatListenTarget(target)} needs a certificate and key`);
    context = secureContext(options.tls);
    const handshakeMs = options.tlsHandshakeTimeoutMs ?? DEFAULT_TLS_HANDSHAKE_MS;
    // The TLS socket is handed over at accept, not after its handshake as tls.Server does, so
    // the owner counts it against its connection cap from accept; `onSecure` says when it may
    // be used. A handshake not done within the deadline (not Node's own 120 s) loses the socket.
    // `context` is read per accept, so a reload (setTls) reaches new clients only.
    server = net.createServer((raw) => {
      const socket = new tls.TLSSocket(raw, { isServer: true, secureContext: context! });
      const timer = setTimeout(() => socket.destroy(), handshakeMs);
      socket.once('secure', () => clearTimeout(timer));
      socket.once('close', () => clearTimeout(timer));
      onSocket(socket, (ready) => socket.once('secure', ready));
    });
  } else {
    server = net.createServer((socket) => onSocket(socket, undefined));
  }
  server.on('error', () => {});
  if (target.kind === 'unix') await removeStaleUnixSocket(target.path);
  await new Promise<void>((resolve, reject) => {
    const fail = (error: Error): void =>
      reject(fromSystemError(error, `cannot listen on ${formatListenTarget(target)}`));
    server.once('error', fail);
    const ready = (): void => {
      server.off('error', fail);
      resolve();
    };
    const backlog = options.backlog ?? 511;
    if (target.kind === 'unix') server.listen({ path: target.path, backlog }, ready);
    else if (target.kind === 'fd') listenOnDescriptor(server, target.fd, backlog, ready, fail);
    else if (options.reusePort) {
      // exclusive: a cluster worker binds its own socket instead of sharing the primary's.
      const reuse = { host: target.host, port: target.port, backlog, reusePort: true, exclusive: true };
      server.listen(reuse as net.ListenOptions, ready);
    } else server.listen({ host: target.host, port: target.port, backlog }, ready);
  });
  const bound = boundAddress(target, server);
  return {
    address: bound,
    server,
    setTls(credentials) {
      if (context !== undefined) context = secureContext(credentials);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}

/**
 * Loads a certificate and key as a listener would, and gives the certificate's SHA-256
 * fingerprint; throws `USAGE` with the reason when they do not load or do not match.
 */
export function validateTlsCredentials(credentials: TlsServerCredentials): string {
  try {
    secureContext(credentials);
    return new X509Certificate(credentials.cert).fingerprint256;
  } catch (error) {
    throw new SockitError('USAGE', `certificate and key do not load: ${(error as Error).message}`);
  }
}

function secureContext(credentials: TlsServerCredentials): tls.SecureContext {
  return tls.createSecureContext({ cert: credentials.cert, key: credentials.key, minVersion: 'TLSv1.2' });
}

/**
 * Listens on an inherited descriptor: one that is not open or not a socket is a `USAGE` line
 * (Node would say EINVAL, which names neither); the rest of `listen({ fd })`'s failures, thrown
 * or emitted, become `fail`.
 */
function listenOnDescriptor(
  server: net.Server,
  fd: number,
  backlog: number,
  ready: () => void,
  fail: (error: Error) => void,
): void {
  try {
    if (!fstatSync(fd).isSocket()) {
      throw new SockitError('USAGE', `cannot listen on fd:${fd}: descriptor ${fd} is not a socket`);
    }
  } catch (error) {
    if (error instanceof SockitError) throw error;
    throw new SockitError(
      'USAGE',
      `cannot listen on fd:${fd}: descriptor ${fd} is not open (pass a listening socket as fd ${fd}, or use socket activation)`,
    );
  }
  try {
    server.listen({ fd, backlog }, ready);
  } catch (error) {
    fail(error as Error);
  }
}

/** The address clients reach: port 0 resolved; an inherited socket's own TCP or Unix address. */
function boundAddress(requested: ListenTarget, server: net.Server): Address {
  if (requested.kind === 'unix') return requested;
  const info = server.address();
  if (requested.kind === 'fd') {
    // A TCP handle always knows its address; a Unix one taken over by descriptor does not.
    if (info === null || typeof info === 'string')
      return { kind: 'unix', path: unixSocketPath(requested.fd) };
    return { kind: requested.tls ? 'tls' : 'tcp', host: info.address, port: info.port };
  }
  if (info === null || typeof info === 'string') return requested;
  return { kind: requested.kind, host: requested.host, port: info.port };
}

/**
 * The path a Unix listening socket we inherited as `fd` is bound to, from the kernel's table
 * (`/proc/net/unix`, by the socket's inode); `fd:N` when unnamed or not on Linux. In a
 * `--workers` worker the socket is the primary's (cluster listens there), so its table is read.
 */
function unixSocketPath(fd: number): string {
  try {
    const owner = cluster.isWorker ? String(process.ppid) : 'self';
    const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${owner}/fd/${fd}`))?.[1];
    const line = readFileSync('/proc/net/unix', 'utf8')
      .split('\n')
      .find((row) => row.trim().split(/\s+/)[6] === inode);
    const path = line?.trim().split(/\s+/)[7];
    if (inode !== undefined && path !== undefined && path.startsWith('/')) return path;
  } catch {
    // not Linux, or /proc not mounted: the descriptor is name enough
  }
  return `fd:${fd}`;
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
