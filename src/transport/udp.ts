import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { fromSystemError, SockitError } from '../errors.js';
import { type Address, formatAddress, formatHostPort } from './address.js';

/**
 * The largest UDP payload over IPv4: 65535 − 8 (UDP header) − 20 (IP header). Larger datagrams
 * are refused before sending (PROTOCOL section 5), with a message that says what to do.
 */
export const MAX_DATAGRAM_BYTES = 65_507;

/** Where a datagram came from: the `host:port` sockit prints and the parts to answer it. */
export interface DatagramPeer {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
  /** `127.0.0.1:5000` or `[::1]:5000`. */
  text: string;
}

type UdpAddress = Extract<Address, { kind: 'tcp' | 'tls' | 'udp' }>;

/** Throws TOO_LARGE for a payload that cannot travel in one UDP datagram. */
export function assertDatagramSize(size: number): void {
  if (size > MAX_DATAGRAM_BYTES) {
    throw new SockitError(
      'TOO_LARGE',
      `a datagram of ${size} bytes is over the UDP limit of ${MAX_DATAGRAM_BYTES} bytes; ` +
        'send less per datagram, or use a stream (tcp://) for large data',
    );
  }
}

function asUdp(address: Address): UdpAddress {
  if (address.kind === 'unix') {
    throw new SockitError('USAGE', `${formatAddress(address)}: UDP needs a host and port, not a socket path`);
  }
  return address;
}

/** IPv6 literals need an udp6 socket; names and IPv4 use udp4 (as `localhost` resolves for TCP). */
function socketType(host: string): 'udp4' | 'udp6' {
  return isIP(host) === 6 ? 'udp6' : 'udp4';
}

function peerOf(info: dgram.RemoteInfo): DatagramPeer {
  return {
    address: info.address,
    port: info.port,
    family: info.family === 'IPv6' ? 'IPv6' : 'IPv4',
    text: formatHostPort(info.address, info.port),
  };
}

/** A bound UDP socket that receives from anyone and answers each datagram to its sender. */
export interface UdpListener {
  /** The bound address, port 0 resolved: `udp://127.0.0.1:41234`. */
  readonly address: Address;
  readonly socket: dgram.Socket;
  /** Sends one datagram to `peer`; resolves once the kernel took it. */
  send(payload: Uint8Array, peer: { address: string; port: number }): Promise<void>;
  close(): Promise<void>;
}

/**
 * Binds a UDP socket on `address` and calls `onDatagram` for every datagram that arrives.
 * Errors from a single send (an unreachable peer) never close the listener.
 */
export async function listenUdp(
  address: Address,
  onDatagram: (payload: Buffer, peer: DatagramPeer) => void,
): Promise<UdpListener> {
  const target = asUdp(address);
  const socket = dgram.createSocket({ type: socketType(target.host), reuseAddr: false });
  socket.on('message', (payload, info) => onDatagram(payload, peerOf(info)));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', (error) =>
      reject(fromSystemError(error, `cannot listen on ${formatAddress({ ...target, kind: 'udp' })}`)),
    );
    socket.bind(target.port, target.host, () => resolve());
  });
  // After binding, a failed send to one peer (ICMP unreachable) must not end the listener.
  socket.removeAllListeners('error');
  socket.on('error', () => {});
  const bound: Address = { kind: 'udp', host: target.host, port: socket.address().port };
  return {
    address: bound,
    socket,
    send: (payload, peer) => sendTo(socket, payload, peer.port, peer.address),
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

function sendTo(socket: dgram.Socket, payload: Uint8Array, port?: number, host?: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    assertDatagramSize(payload.length); // a throw here rejects: nothing is sent
    const done = (error: Error | null): void => {
      if (error) reject(fromSystemError(error, 'cannot send datagram'));
      else resolve();
    };
    if (port === undefined) socket.send(payload, done);
    else socket.send(payload, port, host, done);
  });
}

/** A UDP socket connected to one server: it sends there and hears only from there. */
export interface UdpConnection {
  readonly remote: Address;
  readonly socket: dgram.Socket;
  send(payload: Uint8Array): Promise<void>;
  /**
   * Every datagram from the server, and errors such as "connection refused" (the kernel's
   * ICMP port-unreachable answer, reported on the next receive of a connected socket).
   */
  onDatagram(listener: (payload: Buffer) => void): void;
  onError(listener: (error: SockitError) => void): void;
  close(): Promise<void>;
}

/**
 * An error on a connected UDP socket: ECONNREFUSED is the kernel's report of an ICMP
 * port-unreachable answer, so it says nothing listens there; others keep their system code.
 */
function receiveError(error: Error, remote: Address): SockitError {
  const what = formatAddress(remote);
  return (error as NodeJS.ErrnoException).code === 'ECONNREFUSED'
    ? new SockitError('CONNECT_FAILED', `${what}: nothing is listening there (port unreachable)`, {
        cause: error,
      })
    : fromSystemError(error, what);
}

/** Opens a UDP socket connected to `address` (resolving a host name once). */
export async function connectUdp(address: Address): Promise<UdpConnection> {
  const target = asUdp(address);
  const remote: Address = { kind: 'udp', host: target.host, port: target.port };
  const what = formatAddress(remote);
  // Resolved here, not by dgram: a failed lookup inside socket.connect() surfaces as a bogus
  // "Port should be > 0" error instead of ENOTFOUND.
  let ip = target.host;
  if (isIP(ip) === 0) {
    try {
      ip = (await lookup(target.host)).address;
    } catch (error) {
      throw fromSystemError(error, `cannot reach ${what}`);
    }
  }
  const socket = dgram.createSocket(socketType(ip));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', (error) => reject(fromSystemError(error, `cannot reach ${what}`)));
    socket.connect(target.port, ip, () => resolve());
  });
  socket.removeAllListeners('error');
  const errorListeners: ((error: SockitError) => void)[] = [];
  socket.on('error', (error) => {
    const wrapped = receiveError(error, remote);
    for (const listener of errorListeners) listener(wrapped);
  });
  let closed = false;
  return {
    remote,
    socket,
    send: (payload) => sendTo(socket, payload),
    onDatagram: (listener) => {
      socket.on('message', (payload) => listener(payload));
    },
    onError: (listener) => {
      errorListeners.push(listener);
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        closed = true;
        socket.close(() => resolve());
      }),
  };
}

export interface UdpRequestOptions {
  /** How long to wait for a reply before sending again. Default 1000 ms. */
  timeoutMs?: number;
  /** Extra attempts after the first. Default 3. */
  retries?: number;
}

/** A reply to `udpRequest`, with how many sends it took and the round trip of the answered one. */
export interface UdpReply {
  payload: Buffer;
  attempts: number;
  rttMs: number;
}

/**
 * Sends `payload` and waits for the next datagram from the server, sending again after each
 * timeout. UDP may lose either datagram, so a request is retried, not assumed lost.
 * Rejects with TIMEOUT after the last attempt, CONNECT_FAILED if the port is unreachable.
 */
export function udpRequest(
  connection: UdpConnection,
  payload: Uint8Array,
  options: UdpRequestOptions = {},
): Promise<UdpReply> {
  try {
    assertDatagramSize(payload.length);
  } catch (error) {
    return Promise.reject(error);
  }
  const timeoutMs = options.timeoutMs ?? 1000;
  const attemptsAllowed = (options.retries ?? 3) + 1;
  return new Promise<UdpReply>((resolve, reject) => {
    let attempts = 0;
    let sentAt = 0;
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      clearTimeout(timer);
      connection.socket.off('message', onMessage);
      connection.socket.off('error', onError);
    };
    const onMessage = (reply: Buffer): void => {
      cleanup();
      resolve({ payload: reply, attempts, rttMs: performance.now() - sentAt });
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(receiveError(error, connection.remote));
    };
    const attempt = (): void => {
      if (attempts === attemptsAllowed) {
        cleanup();
        reject(
          new SockitError(
            'TIMEOUT',
            `no reply from ${formatAddress(connection.remote)} after ${attempts} attempts ` +
              `(${timeoutMs} ms each); is a UDP server answering there?`,
          ),
        );
        return;
      }
      attempts++;
      sentAt = performance.now();
      connection.send(payload).catch(onError);
      timer = setTimeout(attempt, timeoutMs);
    };
    connection.socket.on('message', onMessage);
    connection.socket.on('error', onError);
    attempt();
  });
}
