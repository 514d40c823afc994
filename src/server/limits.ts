import { invalidOption } from '../errors.js';
import { checkInteger } from '../options.js';
import { DEFAULT_MAX_BODY_BYTES, MAX_HEADER_BYTES } from '../protocol/frame.js';

/** Limits a server enforces. All are on by default; each can be changed. */
export interface Limits {
  /** Connections open at once across all addresses; extra clients get BUSY and are closed. */
  maxConnections: number;
  /** A connection with no traffic and no open request for this long is closed (TIMEOUT). 0 = never. */
  idleTimeoutMs: number;
  /**
   * Time a new connection has, from accept, to finish its TLS handshake and hello/auth (or start
   * using open services). A fixed deadline: bytes arriving do not extend it.
   */
  handshakeTimeoutMs: number;
  /** A frame whose first bytes arrived must be complete within this (TIMEOUT). 0 = no limit. */
  frameTimeoutMs: number;
  /** Requests open at once on one connection; past it the server answers BUSY for that id. */
  maxOpenRequests: number;
  /** Largest accepted frame header (at most 65536). */
  maxHeaderBytes: number;
  /** Largest accepted frame body, after authentication. */
  maxBodyBytes: number;
  /** Largest body of a request to an open service before authentication (hello/auth take none). */
  preAuthBodyBytes: number;
  /**
   * Bytes held in all connections' decoders together. Past it, connections holding part of a
   * frame stop reading until it drops. 0 = no budget.
   */
  maxBufferedBytes: number;
  /**
   * After the server ends a connection (an error, a refusal at the cap), the peer has this long
   * to close its side before the socket is destroyed. Fixed from the end: bytes do not extend it.
   */
  closeGraceMs: number;
  /** Graceful shutdown: how long open requests may run before connections are force-closed. */
  shutdownDeadlineMs: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxConnections: 10_000,
  idleTimeoutMs: 300_000,
  handshakeTimeoutMs: 10_000,
  frameTimeoutMs: 60_000,
  maxOpenRequests: 64,
  maxHeaderBytes: MAX_HEADER_BYTES,
  maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
  preAuthBodyBytes: 64 * 1024,
  maxBufferedBytes: 256 * 1024 * 1024,
  closeGraceMs: 5000,
  shutdownDeadlineMs: 10_000,
});

/** Merges user limits over the defaults and checks every field. */
export function resolveLimits(overrides: Partial<Limits> = {}): Limits {
  const limits: Limits = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(overrides) as [keyof Limits, number | undefined][]) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_LIMITS)) throw invalidOption(`unknown limit "${key}"`);
    limits[key] = checkInteger(value, `limit ${key}`);
  }
  if (limits.maxHeaderBytes > MAX_HEADER_BYTES || limits.maxHeaderBytes < 2) {
    throw invalidOption(`limit maxHeaderBytes must be 2-${MAX_HEADER_BYTES}`);
  }
  checkInteger(limits.maxConnections, 'limit maxConnections', 1);
  checkInteger(limits.maxOpenRequests, 'limit maxOpenRequests', 1);
  return limits;
}
