import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { SockitError } from '../../errors.js';
import type { TunnelFailure } from '../../protocol/tunnel.js';
import { formatHostPort } from '../../transport/address.js';
import type { TunnelAllowList } from './allow.js';

/** Where a stream goes: a host and port, or a unix socket. */
export type TunnelTarget = { host: string; port: number } | { path: string };

/** A target that could not be reached, with the reason the client reports (SOCKS reply codes). */
export class TunnelDialError extends SockitError {
  readonly reason: TunnelFailure;
  constructor(reason: TunnelFailure, message: string) {
    super('UNAVAILABLE', message);
    this.reason = reason;
  }
}

/**
 * Checks the target against the allow-list and connects to it. Names are resolved here, on the
 * server, once; the connection goes to the address that was checked.
 */
export async function dialTarget(
  target: TunnelTarget,
  allow: TunnelAllowList,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<net.Socket> {
  if ('path' in target) {
    if (!allow.admitsPath(target.path))
      throw new SockitError('FORBIDDEN', `unix:${target.path} is not in the server's --tunnel-allow list`);
    return connectWithin({ path: target.path }, `unix:${target.path}`, timeoutMs, signal);
  }
  const shown = formatHostPort(target.host, target.port);
  let ip = target.host;
  if (net.isIP(target.host) === 0) {
    try {
      ip = (await lookup(target.host)).address;
    } catch {
      throw new TunnelDialError('unreachable', `${shown}: the server cannot resolve "${target.host}"`);
    }
  }
  if (!allow.admits(target.host, ip, target.port))
    throw new SockitError('FORBIDDEN', `${shown} is not in the server's --tunnel-allow list`);
  return connectWithin({ host: ip, port: target.port }, shown, timeoutMs, signal);
}

function connectWithin(
  where: { host: string; port: number } | { path: string },
  shown: string,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ ...where, allowHalfOpen: true });
    const fail = (error: SockitError): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(error);
    };
    const onAbort = (): void => fail(new SockitError('TIMEOUT', 'cancelled by the client'));
    const timer = setTimeout(
      () => fail(new TunnelDialError('timeout', `${shown}: no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const refused = error.code === 'ECONNREFUSED' || error.code === 'ENOENT';
      fail(
        new TunnelDialError(
          refused ? 'refused' : 'unreachable',
          `${shown}: ${refused ? 'connection refused' : `unreachable (${error.code ?? error.message})`}`,
        ),
      );
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.removeAllListeners('error');
      socket.pause();
      resolve(socket);
    });
  });
}
