import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { fromSystemError, SockitError } from '../errors.js';
import { type Address, formatAddress, formatHostPort } from './address.js';
import type { ProxySpec } from './proxy.js';

/** How a client decides to trust a TLS server. */
export interface TlsTrust {
  /** Trust only a certificate with this SHA-256 fingerprint. */
  fingerprint?: string;
  /** Verify the chain against this CA (PEM) instead of pinning. */
  ca?: string | Buffer;
  /** Trust-on-first-use file; the fingerprint seen first is pinned there. */
  knownHostsFile?: string;
  /** The name sent in SNI (and checked against a CA-verified certificate). Default: the host, unless an IP. */
  servername?: string;
}

export interface DialOptions {
  /** Give up connecting after this long (TIMEOUT). Default 10 s. */
  timeoutMs?: number;
  tls?: TlsTrust;
  /** Called once with the server fingerprint and what the pinning decided. */
  onTlsPin?: (info: { fingerprint: string; status: 'known' | 'pinned' | 'matched' | 'ca' }) => void;
  /** Reach the address through this SOCKS5 or HTTP CONNECT proxy (TLS runs end to end inside it). */
  proxy?: ProxySpec | undefined;
}

/**
 * The modules only TLS needs: loaded on first use, since a plain tcp:// command-line run would
 * otherwise spend a good part of its start-up on them (docs/benchmarks.md).
 */
async function tlsModules(): Promise<{
  tls: typeof import('node:tls');
  knownHosts: typeof import('./known-hosts.js');
}> {
  const [tls, knownHosts] = await Promise.all([import('node:tls'), import('./known-hosts.js')]);
  return { tls, knownHosts };
}

/** A dial that got no answer in time (`what`: `cannot connect to …`), worded once for every dialler. */
export function dialTimeout(what: string, timeoutMs: number): SockitError {
  return new SockitError('TIMEOUT', `${what}: no answer within ${timeoutMs} ms`);
}

/** Connects a stream socket to a tcp, tls or unix address; TLS is verified before it resolves. */
export function dialStream(address: Address, options: DialOptions = {}): Promise<net.Socket> {
  if (address.kind === 'udp')
    return Promise.reject(new SockitError('USAGE', 'udp addresses carry datagrams, not streams'));
  if (options.proxy && address.kind === 'unix')
    return Promise.reject(new SockitError('USAGE', '--proxy reaches host:port addresses, not unix: sockets'));
  // A plain dial loads nothing and awaits nothing: a forwarder dials once per client.
  if (address.kind !== 'tls' && !options.proxy) return connectStream(address, options, undefined, undefined);
  return Promise.all([
    address.kind === 'tls' ? tlsModules() : undefined,
    options.proxy ? import('./proxy.js') : undefined,
  ]).then(([secure, proxying]) => connectStream(address, options, secure, proxying));
}

/** dialStream once the modules it needs (TLS, proxies) are loaded. */
function connectStream(
  address: Address,
  options: DialOptions,
  secure: Awaited<ReturnType<typeof tlsModules>> | undefined,
  proxying: typeof import('./proxy.js') | undefined,
): Promise<net.Socket> {
  // Formatted only for an error: a forwarder dials once per client.
  const what = (): string =>
    proxying && options.proxy
      ? `cannot connect to ${formatAddress(address)} through ${proxying.formatProxy(options.proxy)}`
      : `cannot connect to ${formatAddress(address)}`;
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise<net.Socket>((resolve, reject) => {
    let socket: net.Socket | undefined;
    let done = false;
    const trust = options.tls ?? {};
    const timer = setTimeout(() => {
      done = true;
      socket?.destroy();
      reject(dialTimeout(what(), timeoutMs));
    }, timeoutMs);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      socket?.destroy();
      if (done) return;
      done = true;
      if (error instanceof SockitError) reject(error);
      else if (address.kind === 'tls' && isTlsError(error)) reject(tlsFailure(error, what()));
      else reject(fromSystemError(error, what()));
    };
    const start = (tunnel: net.Socket | undefined): void => {
      if (done) {
        tunnel?.destroy();
        return;
      }
      if (secure && address.kind === 'tls') {
        socket = secure.tls.connect({
          ...(tunnel ? { socket: tunnel } : { host: address.host, port: address.port }),
          servername: trust.servername ?? (net.isIP(address.host) ? undefined : address.host),
          ca: trust.ca,
          // Without a CA the chain cannot be verified; the fingerprint check below decides instead.
          rejectUnauthorized: trust.ca !== undefined,
        });
      } else if (tunnel) {
        socket = tunnel;
      } else if (address.kind === 'unix') {
        socket = net.connect({ path: address.path });
      } else {
        socket = net.connect({ host: address.host, port: address.port });
      }
      const connected = socket;
      const ready = (): void => {
        try {
          if (secure && address.kind === 'tls')
            verifyServer(connected as TLSSocket, address, trust, options.onTlsPin, secure.knownHosts);
        } catch (error) {
          fail(error as Error);
          return;
        }
        clearTimeout(timer);
        connected.off('error', fail);
        done = true;
        resolve(connected);
      };
      connected.once('error', fail);
      if (tunnel && address.kind !== 'tls') ready();
      else connected.once(address.kind === 'tls' ? 'secureConnect' : 'connect', ready);
    };
    if (!proxying || !options.proxy || address.kind === 'unix') {
      start(undefined);
      return;
    }
    proxying
      .openProxyTunnel(options.proxy, address.host, address.port, (raw) => {
        socket = raw;
        raw.once('error', fail);
      })
      .then((tunnel) => {
        tunnel.off('error', fail);
        start(tunnel);
      }, fail);
  });
}

/** OpenSSL's errors (`ERR_SSL_…`, with a `reason`) and Node's TLS ones (`ERR_TLS_…`). */
function isTlsError(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  return (
    code.startsWith('ERR_TLS') ||
    code.startsWith('ERR_SSL') ||
    'reason' in error ||
    error.message.includes('certificate')
  );
}

/**
 * One line instead of OpenSSL's `…:error:0A00010B:SSL routines:…` text: the reason, and a hint
 * when the server is not speaking TLS at all (a plain sockit server, an HTTP port).
 */
function tlsFailure(error: Error, what: string): SockitError {
  const reason = (error as { reason?: unknown }).reason;
  const text = typeof reason === 'string' ? reason : error.message;
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const plain =
    code === 'ERR_SSL_WRONG_VERSION_NUMBER' ||
    code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' ||
    /wrong version number|packet length too long|http request/i.test(text);
  const hint = plain ? ': the server does not speak TLS there (for a plain server use tcp://HOST:PORT)' : '';
  return new SockitError('TLS_FAILED', `${what}: TLS handshake failed (${text})${hint}`, { cause: error });
}

function verifyServer(
  socket: TLSSocket,
  address: { host: string; port: number },
  trust: TlsTrust,
  onTlsPin: DialOptions['onTlsPin'],
  { checkKnownHost, normalizeFingerprint }: typeof import('./known-hosts.js'),
): void {
  const fingerprint = socket.getPeerCertificate().fingerprint256;
  if (!fingerprint) throw new SockitError('TLS_FAILED', 'the server presented no certificate');
  if (trust.fingerprint !== undefined) {
    const expected = normalizeFingerprint(trust.fingerprint);
    if (expected !== fingerprint) {
      throw new SockitError(
        'TLS_FINGERPRINT_CHANGED',
        `the TLS certificate of ${formatHostPort(address.host, address.port)} has fingerprint ${fingerprint}, not the expected ${expected}`,
      );
    }
    onTlsPin?.({ fingerprint, status: 'matched' });
    return;
  }
  if (trust.ca !== undefined) {
    onTlsPin?.({ fingerprint, status: 'ca' });
    return;
  }
  if (trust.knownHostsFile === undefined) {
    throw new SockitError(
      'TLS_FAILED',
      'no way to trust the server: give a fingerprint, a CA, or a known-hosts file',
    );
  }
  const status = checkKnownHost(
    trust.knownHostsFile,
    formatHostPort(address.host, address.port),
    fingerprint,
  );
  onTlsPin?.({ fingerprint, status });
}
