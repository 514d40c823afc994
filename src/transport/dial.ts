import net from 'node:net';
import tls from 'node:tls';
import { fromSystemError, SockitError } from '../errors.js';
import { type Address, formatAddress, formatHostPort } from './address.js';
import { checkKnownHost, normalizeFingerprint } from './known-hosts.js';

/** How a client decides to trust a TLS server. */
export interface TlsTrust {
  /** Trust only a certificate with this SHA-256 fingerprint. */
  fingerprint?: string;
  /** Verify the chain against this CA (PEM) instead of pinning. */
  ca?: string | Buffer;
  /** Trust-on-first-use file; the fingerprint seen first is pinned there. */
  knownHostsFile?: string;
}

export interface DialOptions {
  /** Give up connecting after this long (TIMEOUT). Default 10 s. */
  timeoutMs?: number;
  tls?: TlsTrust;
  /** Called once with the server fingerprint and what the pinning decided. */
  onTlsPin?: (info: { fingerprint: string; status: 'known' | 'pinned' | 'matched' | 'ca' }) => void;
}

/** Connects a stream socket to a tcp, tls or unix address; TLS is verified before it resolves. */
export function dialStream(address: Address, options: DialOptions = {}): Promise<net.Socket> {
  if (address.kind === 'udp')
    return Promise.reject(new SockitError('USAGE', 'udp addresses carry datagrams, not streams'));
  const what = `cannot connect to ${formatAddress(address)}`;
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise<net.Socket>((resolve, reject) => {
    let socket: net.Socket;
    const trust = options.tls ?? {};
    if (address.kind === 'tls') {
      socket = tls.connect({
        host: address.host,
        port: address.port,
        servername: net.isIP(address.host) ? undefined : address.host,
        ca: trust.ca,
        // Without a CA the chain cannot be verified; the fingerprint check below decides instead.
        rejectUnauthorized: trust.ca !== undefined,
      });
    } else if (address.kind === 'unix') {
      socket = net.connect({ path: address.path });
    } else {
      socket = net.connect({ host: address.host, port: address.port });
    }
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new SockitError('TIMEOUT', `${what}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error instanceof SockitError) reject(error);
      else if (address.kind === 'tls' && isTlsError(error)) reject(tlsFailure(error, what));
      else reject(fromSystemError(error, what));
    };
    socket.once('error', fail);
    socket.once(address.kind === 'tls' ? 'secureConnect' : 'connect', () => {
      try {
        if (address.kind === 'tls') verifyServer(socket as tls.TLSSocket, address, trust, options.onTlsPin);
      } catch (error) {
        fail(error as Error);
        return;
      }
      clearTimeout(timer);
      socket.off('error', fail);
      resolve(socket);
    });
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
  socket: tls.TLSSocket,
  address: { host: string; port: number },
  trust: TlsTrust,
  onTlsPin: DialOptions['onTlsPin'],
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
