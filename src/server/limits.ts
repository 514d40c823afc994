import { invalidOption } from '../errors.js';
import { checkInteger } from '../options.js';
import { DEFAULT_MAX_BODY_BYTES, MAX_HEADER_BYTES } from '../protocol/frame.js';

/** Limits a server enforces. All are on by default; each can be changed. */
export interface Limits {
  /** Connections open at once across all addresses; extra clients get BUSY and are closed. */
  maxConnections: number;
  /** A connection with no traffic and no open request for this long is closed (TIMEOUT). 0 = never. */
  idleTimeoutMs: number;
  /** Time a new framed connection has to finish hello/auth. */
  handshakeTimeoutMs: number;
  /** Requests open at once on one connection; past it the server answers BUSY for that id. */
  maxOpenRequests: number;
  /** Largest accepted frame header (at most 65536). */
  maxHeaderBytes: number;
  /** Largest accepted frame body. */
  maxBodyBytes: number;
  /** Graceful shutdown: how long open requests may run before connections are force-closed. */
  shutdownDeadlineMs: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxConnections: 10_000,
  idleTimeoutMs: 300_000,
  handshakeTimeoutMs: 10_000,
  maxOpenRequests: 64,
  maxHeaderBytes: MAX_HEADER_BYTES,
  maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
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
