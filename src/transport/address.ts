import { isIP } from 'node:net';
import { SockitError } from '../errors.js';

/** Stream and datagram transports sockit speaks. */
export type TransportKind = 'tcp' | 'tls' | 'udp';

/** A network address, written one way everywhere: see `parseAddress`. */
export type Address = { kind: TransportKind; host: string; port: number } | { kind: 'unix'; path: string };

export interface ParseAddressOptions {
  /** Kind for addresses without a scheme (`host:port`, `:port`, `port`). Default `tcp`. */
  defaultKind?: TransportKind;
  /** Host for `:port` and bare `port`. Default 127.0.0.1: loopback unless told otherwise. */
  defaultHost?: string;
}

const SCHEMES: Record<string, TransportKind> = { 'tcp:': 'tcp', 'tls:': 'tls', 'udp:': 'udp' };

/**
 * Parses the one address syntax of sockit:
 * `tcp://host:port`, `tls://host:port`, `udp://host:port`, `unix:/path` (or `unix:relative`),
 * `host:port` and `[v6]:port` (meaning `defaultKind`), `:port` and `port` (on the default host).
 */
export function parseAddress(text: string, options: ParseAddressOptions = {}): Address {
  const input = text.trim();
  const fail = (why: string): never => {
    throw new SockitError(
      'USAGE',
      `bad address "${text}": ${why} (use tcp://HOST:PORT, tls://HOST:PORT, udp://HOST:PORT, unix:/PATH or HOST:PORT)`,
    );
  };
  if (input.startsWith('unix:')) {
    const path = input.slice('unix:'.length).replace(/^\/\/(?=\/)/, '');
    if (path.length === 0) fail('empty socket path');
    return { kind: 'unix', path };
  }
  let kind = options.defaultKind ?? 'tcp';
  let rest = input;
  const scheme = /^([a-z]+:)\/\//.exec(input);
  if (scheme) {
    const named = SCHEMES[scheme[1]!];
    if (!named) fail(`unknown scheme ${scheme[1]}`);
    kind = named!;
    rest = input.slice(scheme[0].length).replace(/\/$/, '');
  }
  const defaultHost = options.defaultHost ?? '127.0.0.1';
  let host: string;
  let portText: string;
  if (/^\d+$/.test(rest)) {
    host = defaultHost;
    portText = rest;
  } else if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0 || rest[close + 1] !== ':') fail('an IPv6 address needs the form [ADDR]:PORT');
    host = rest.slice(1, close);
    portText = rest.slice(close + 2);
    if (isIP(host) !== 6) fail(`"${host}" is not an IPv6 address`);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon < 0) fail('missing port');
    host = rest.slice(0, colon) || defaultHost;
    portText = rest.slice(colon + 1);
    if (host.includes(':')) fail('write IPv6 addresses in brackets, e.g. [::1]:9000');
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) fail(`port "${portText}" is not 0-65535`);
  return { kind, host, port: Number(portText) };
}

/** The canonical text of an address: `tcp://127.0.0.1:9000`, `tls://[::1]:9000`, `unix:/run/s.sock`. */
export function formatAddress(address: Address): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  return `${address.kind}://${formatHostPort(address.host, address.port)}`;
}

/** `host:port`, with brackets around IPv6 hosts. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** True for 127.0.0.0/8, ::1, localhost, and unix sockets: addresses no other machine reaches. */
export function isLoopback(address: Address): boolean {
  if (address.kind === 'unix') return true;
  const host = address.host.toLowerCase();
  return (
    host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::ffff:127.0.0.1'
  );
}

/** An IPv4 client on a dual-stack socket appears as `::ffff:1.2.3.4`; this gives `1.2.3.4`. */
export function unmapIPv4(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return mapped ? mapped[1]! : ip;
}

/**
 * A listening socket this process inherited instead of binding one: `fd:N` (descriptor N, from
 * a supervisor such as systemd or a test's spawn), served as plain framed protocol, or
 * `tls+fd:N` with TLS on top. It is the socket's own kind (TCP or Unix) once listening.
 */
export interface InheritedSocket {
  kind: 'fd';
  fd: number;
  tls: boolean;
}

/** What a server may listen on: an address to bind, or an inherited socket. */
export type ListenTarget = Address | InheritedSocket;

/** `parseAddress`, plus `fd:N` and `tls+fd:N` for an inherited listening socket. */
export function parseListenTarget(text: string, options: ParseAddressOptions = {}): ListenTarget {
  const inherited = /^(tls\+)?fd:(.*)$/.exec(text.trim());
  if (!inherited) return parseAddress(text, options);
  const fd = Number(inherited[2]);
  if (!/^\d{1,6}$/.test(inherited[2]!) || fd < 3) {
    throw new SockitError(
      'USAGE',
      `bad address "${text}": fd:N takes a descriptor number from 3 up (0-2 are stdin, stdout and stderr)`,
    );
  }
  return { kind: 'fd', fd, tls: inherited[1] !== undefined };
}

/** `fd:3`, `tls+fd:4`, or the address's canonical text. */
export function formatListenTarget(target: ListenTarget): string {
  if (target.kind === 'fd') return `${target.tls ? 'tls+' : ''}fd:${target.fd}`;
  return formatAddress(target);
}

/** Whether serving this target needs a certificate. */
export function servesTls(target: ListenTarget): boolean {
  return target.kind === 'tls' || (target.kind === 'fd' && target.tls);
}
