/**
 * What both ends of the tunnel service agree on (docs/protocol.md, "tunnel"). Every stream is
 * one request: its frames carry the request's id, and each direction has its own credit window.
 */

/** Frame types of the tunnel service, declared once. */
export const TUNNEL_FRAMES = {
  /** client → server, opens a stream: `{host, port}` or `{path}`, plus `window` (credit for the server). */
  open: 'tunnel-open',
  /** client → server, opens the stream of a connection a `-R` listener accepted: `{conn, window}`. */
  attach: 'tunnel-attach',
  /** server → client: the target is connected; `window` is the client's credit. */
  opened: 'tunnel-opened',
  /** either way: stream bytes in the body, never more than the receiver's remaining window. */
  data: 'tunnel-data',
  /** either way: `{bytes}` more credit, sent as the receiver's local socket drains. */
  window: 'tunnel-window',
  /** either way: no more data from this side (half-close, a FIN). */
  end: 'tunnel-end',
  /** server → client, final: both directions ended and were delivered. */
  closed: 'tunnel-closed',
  /** client → server, opens a `-R` listener: `{host, port}`. */
  listen: 'tunnel-listen',
  /** server → client: the listener is bound: `{host, port}`. */
  listening: 'tunnel-listening',
  /** server → client on a listen request: a connection arrived, `{conn, peer}`; attach it. */
  accept: 'tunnel-accept',
} as const;

/** Initial credit each side grants the other per stream, in bytes. */
export const TUNNEL_WINDOW = 1024 * 1024;

/** Largest window a side may announce (bounds the memory one stream can make the other buffer). */
export const TUNNEL_MAX_WINDOW = 16 * 1024 * 1024;

/** Largest body of one `tunnel-data` frame. */
export const TUNNEL_MAX_DATA = 64 * 1024;

/** How long an accepted `-R` connection waits for the client's `tunnel-attach`. */
export const TUNNEL_ATTACH_TIMEOUT_MS = 10_000;

/** Why a target could not be reached: the `reason` field of a stream's UNAVAILABLE error. */
export type TunnelFailure = 'refused' | 'unreachable' | 'timeout' | 'reset';

/** Whether a window value from the peer is acceptable. */
export function isValidWindow(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0 && (value as number) <= TUNNEL_MAX_WINDOW;
}
