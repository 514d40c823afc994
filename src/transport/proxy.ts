import net from 'node:net';
import { SockitError } from '../errors.js';
import { formatHostPort } from './address.js';

/** An outbound proxy every client can dial through (`--proxy`), like `ncat --proxy`. */
export interface ProxySpec {
  kind: 'socks5' | 'http';
  host: string;
  port: number;
}

/** The longest HTTP CONNECT answer header read: a proxy that sends more is not one. */
const MAX_HTTP_HEADER_BYTES = 16 * 1024;

/**
 * Parses `--proxy socks5://HOST:PORT` or `--proxy http://HOST:PORT` (HTTP CONNECT). With
 * SOCKS5, host names are sent to the proxy to resolve (as `socks5h` in curl), IPs as IPs.
 */
export function parseProxy(text: string): ProxySpec {
  const match = /^(socks5h?|http):\/\/(?:\[([^\]]+)\]|([^:/[\]]+)):(\d{1,5})\/?$/.exec(text.trim());
  const port = Number(match?.[4]);
  if (!match || port < 1 || port > 65535) {
    throw new SockitError(
      'USAGE',
      `--proxy "${text}": use socks5://HOST:PORT or http://HOST:PORT (an HTTP CONNECT proxy)`,
    );
  }
  return { kind: match[1] === 'http' ? 'http' : 'socks5', host: match[2] ?? match[3]!, port };
}

/** `socks5://127.0.0.1:1080`: the proxy as the user wrote it, for messages. */
export function formatProxy(proxy: ProxySpec): string {
  return `${proxy.kind}://${formatHostPort(proxy.host, proxy.port)}`;
}

/**
 * Connects to the proxy and asks it for a tunnel to `host:port`; resolves with the socket once
 * the proxy said yes, ready for the caller's bytes (or a TLS handshake on top). The caller owns
 * the deadline: it destroys the returned attempt through `onSocket` when time is up.
 */
export async function openProxyTunnel(
  proxy: ProxySpec,
  host: string,
  port: number,
  onSocket: (socket: net.Socket) => void,
): Promise<net.Socket> {
  const socket = net.connect({ host: proxy.host, port: proxy.port });
  onSocket(socket);
  const reader = new ByteReader(socket, formatProxy(proxy));
  await reader.connected;
  if (proxy.kind === 'http') await httpConnect(socket, reader, host, port);
  else await socks5Connect(socket, reader, host, port, formatProxy(proxy));
  reader.release();
  return socket;
}

async function httpConnect(
  socket: net.Socket,
  reader: ByteReader,
  host: string,
  port: number,
): Promise<void> {
  const target = formatHostPort(host, port);
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  const header = (await reader.readUntil('\r\n\r\n', MAX_HTTP_HEADER_BYTES)).toString('latin1');
  const status = /^HTTP\/1\.[01] (\d{3})([^\r\n]*)/.exec(header);
  if (!status) throw proxyFailure(reader.name, 'it did not answer as an HTTP proxy');
  if (status[1] !== '200') {
    throw proxyFailure(reader.name, `it refused CONNECT ${target}: ${status[1]}${status[2]}`);
  }
}

const SOCKS_REPLIES: Record<number, string> = {
  1: 'general failure',
  2: 'not allowed by its rules',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused by the target',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
};

async function socks5Connect(
  socket: net.Socket,
  reader: ByteReader,
  host: string,
  port: number,
  name: string,
): Promise<void> {
  socket.write(Buffer.from([5, 1, 0])); // version 5, one method: no authentication
  const choice = await reader.read(2);
  if (choice[0] !== 5) throw proxyFailure(name, 'it did not answer as a SOCKS5 proxy');
  if (choice[1] !== 0) throw proxyFailure(name, 'it wants an authentication sockit does not offer');
  socket.write(Buffer.concat([Buffer.from([5, 1, 0]), socksAddress(host), portBytes(port)]));
  const reply = await reader.read(4);
  if (reply[0] !== 5) throw proxyFailure(name, 'it did not answer as a SOCKS5 proxy');
  if (reply[1] !== 0) {
    throw proxyFailure(
      name,
      `it could not reach ${formatHostPort(host, port)}: ${SOCKS_REPLIES[reply[1]!] ?? `reply ${reply[1]}`}`,
    );
  }
  // The bound address that follows is of no use to a client; it is read and dropped.
  const type = reply[3];
  const length = type === 1 ? 4 : type === 4 ? 16 : type === 3 ? (await reader.read(1))[0]! : -1;
  if (length < 0) throw proxyFailure(name, `it answered with an unknown address type ${type}`);
  await reader.read(length + 2);
}

function socksAddress(host: string): Buffer {
  const version = net.isIP(host);
  if (version === 4) return Buffer.from([1, ...host.split('.').map(Number)]);
  if (version === 6) return Buffer.concat([Buffer.from([4]), ipBytes(host, 6)]);
  const name = Buffer.from(host, 'utf8');
  if (name.length > 255) throw new SockitError('USAGE', `host name ${host} is too long for SOCKS5`);
  return Buffer.concat([Buffer.from([3, name.length]), name]);
}

/**
 * An IP address in network byte order: 4 bytes, or 16 for family 6 (an IPv4 address given for
 * family 6 becomes `::ffff:a.b.c.d`). Shared by SOCKS5 requests and PROXY v2 headers.
 */
export function ipBytes(ip: string, family: 4 | 6): Buffer {
  if (family === 4) return Buffer.from(ip.split('.').map(Number));
  let text = net.isIP(ip) === 4 ? `::ffff:${ip}` : ip.replace(/%.*$/, '');
  const v4Tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4Tail) {
    const [a, b, c, d] = v4Tail.slice(1).map(Number);
    text = `${text.slice(0, v4Tail.index)}${((a! << 8) | b!).toString(16)}:${((c! << 8) | d!).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups =
    tail === undefined
      ? headGroups
      : [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  const bytes = Buffer.alloc(16);
  for (const [index, group] of groups.entries())
    bytes.writeUInt16BE(Number.parseInt(group || '0', 16), index * 2);
  return bytes;
}

function portBytes(port: number): Buffer {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16BE(port);
  return bytes;
}

function proxyFailure(name: string, why: string): SockitError {
  return new SockitError('CONNECT_FAILED', `proxy ${name}: ${why}`);
}

/**
 * Reads exact byte counts from a socket during a handshake; `release()` hands any bytes read
 * past the handshake back to the socket (unshift), so the caller's first read sees them.
 */
class ByteReader {
  readonly name: string;
  readonly connected: Promise<void>;
  readonly #socket: net.Socket;
  #buffered = Buffer.alloc(0);
  #waiter: (() => void) | undefined;
  #failure: Error | undefined;
  // Paused-mode reads: once the 'readable' listener is gone the socket is neither flowing nor
  // paused, so the caller's own 'data' listener starts it, with the unshifted bytes first.
  readonly #onReadable = (): void => {
    let chunk: Buffer | null = this.#socket.read() as Buffer | null;
    while (chunk !== null) {
      this.#buffered = Buffer.concat([this.#buffered, chunk]);
      chunk = this.#socket.read() as Buffer | null;
    }
    this.#wake();
  };
  readonly #onEnd = (): void => {
    this.#failure ??= proxyFailure(this.name, 'it closed the connection during the handshake');
    this.#wake();
  };

  constructor(socket: net.Socket, name: string) {
    this.#socket = socket;
    this.name = name;
    this.connected = new Promise((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('close', () => reject(this.#failure ?? proxyFailure(name, 'the connection closed')));
    });
    socket.on('readable', this.#onReadable);
    socket.once('end', this.#onEnd);
    socket.once('close', this.#onEnd);
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }

  async #until(ready: () => boolean, limit: number): Promise<void> {
    while (!ready()) {
      if (this.#failure) throw this.#failure;
      if (this.#buffered.length > limit) throw proxyFailure(this.name, 'its answer is too long');
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
      });
    }
  }

  async read(count: number): Promise<Buffer> {
    await this.#until(() => this.#buffered.length >= count, count);
    const bytes = this.#buffered.subarray(0, count);
    this.#buffered = this.#buffered.subarray(count);
    return bytes;
  }

  async readUntil(marker: string, limit: number): Promise<Buffer> {
    await this.#until(() => this.#buffered.includes(marker), limit);
    const end = this.#buffered.indexOf(marker) + marker.length;
    const bytes = this.#buffered.subarray(0, end);
    this.#buffered = this.#buffered.subarray(end);
    return bytes;
  }

  release(): void {
    this.#socket.off('readable', this.#onReadable);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onEnd);
    if (this.#buffered.length > 0) this.#socket.unshift(this.#buffered);
  }
}
