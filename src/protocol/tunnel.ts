/**
 * What both ends of the tunnel service agree on (docs/protocol.md, "tunnel"). Every stream is
 * one request: its frames carry the request's id, and each direction has its own credit window.
 */
import { declareFrames } from './schema.js';
import { CHANNEL_KEY_FIELD } from './session.js';

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
  /** client → server: asks for a sealed channel for this stream (docs/protocol.md "Sealed channels"). */
  channel: 'tunnel-channel',
  /** server → client: the sealed channel's key: attach a new TLS connection with it. */
  offer: 'tunnel-offer',
  /** either way: the rest of this direction, and its end, come sealed on the channel. */
  switch: 'tunnel-switch',
} as const;

/** Initial credit each side grants the other per stream, in bytes. */
export const TUNNEL_WINDOW = 4 * 1024 * 1024;

/** Largest window a side may announce (bounds the memory one stream can make the other buffer). */
export const TUNNEL_MAX_WINDOW = 16 * 1024 * 1024;

/** Largest body of one `tunnel-data` frame. */
export const TUNNEL_MAX_DATA = 64 * 1024;

/**
 * Bytes a stream carries in frames before its client asks for a sealed channel: a short stream
 * never pays for a second connection, a long one moves the rest in C. About where the two cost
 * alike: a channel's TLS handshake is 1–2 ms of CPU, 256 KiB in frames over TLS about 1 ms; and
 * streams that begin together all cross it before the first of them runs sealed and busies the
 * loops their channels' handshakes need (docs/benchmarks.md, thirteenth session).
 */
export const TUNNEL_CHANNEL_AFTER_BYTES = 256 * 1024;

/** How long a sealed channel's offer waits for its attach. */
export const TUNNEL_CHANNEL_WAIT_MS = 10_000;

/** How long an accepted `-R` connection waits for the client's `tunnel-attach`. */
export const TUNNEL_ATTACH_TIMEOUT_MS = 10_000;

/** Why a target could not be reached: the `reason` field of a stream's UNAVAILABLE error. */
export type TunnelFailure = 'refused' | 'unreachable' | 'timeout' | 'reset';

/** A credit window a side may announce: 1 byte to TUNNEL_MAX_WINDOW. */
const WINDOW = {
  kind: 'integer',
  min: 1,
  max: TUNNEL_MAX_WINDOW,
  message: 'tunnel "window" must be a positive whole number up to 16 MiB',
} as const;
/** A `-R` connection's number on its listener. */
const CONN = { kind: 'integer', min: 1, max: Number.MAX_SAFE_INTEGER } as const;
/** A host name or address (a DNS name is at most 253 characters; a bracketed IPv6 fits). */
const HOST = { kind: 'string', min: 1, max: 255 } as const;
/** A Unix socket path (sun_path is 108 bytes; a little room for the error to say so). */
const UNIX_PATH = { kind: 'string', min: 1, max: 4096, noNul: true } as const;

/** What the client sends on an open stream. */
const STREAM_FOLLOW_UPS = [
  TUNNEL_FRAMES.data,
  TUNNEL_FRAMES.window,
  TUNNEL_FRAMES.end,
  TUNNEL_FRAMES.channel,
  TUNNEL_FRAMES.switch,
];
/** What the server sends on an open stream. */
const STREAM_REPLIES = [
  TUNNEL_FRAMES.opened,
  TUNNEL_FRAMES.data,
  TUNNEL_FRAMES.window,
  TUNNEL_FRAMES.end,
  TUNNEL_FRAMES.offer,
  TUNNEL_FRAMES.switch,
  TUNNEL_FRAMES.closed,
];

/** The tunnel service's frames, declared once (docs/protocol.md "tunnel"). */
export const TUNNEL_FRAME_SPECS = declareFrames({
  [TUNNEL_FRAMES.open]: {
    service: 'tunnel',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    followUps: STREAM_FOLLOW_UPS,
    replies: STREAM_REPLIES,
    final: [TUNNEL_FRAMES.closed],
    doc: 'opens a stream to `host`:`port` or a Unix `path`; `window` is the credit for the server',
    ruleDoc: '`host` and `port`, or an absolute `path` alone',
    rule: (header) =>
      (typeof header.path === 'string' && header.path.startsWith('/') && header.host === undefined) ||
      (header.host !== undefined && header.port !== undefined && header.path === undefined)
        ? undefined
        : 'tunnel-open needs "host" and "port" 1-65535, or an absolute unix "path"',
    fields: {
      host: { ...HOST, optional: true },
      port: { kind: 'integer', min: 1, max: 65535, optional: true },
      path: { ...UNIX_PATH, optional: true },
      window: { ...WINDOW, optional: true },
    },
  },
  [TUNNEL_FRAMES.attach]: {
    service: 'tunnel',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    followUps: STREAM_FOLLOW_UPS,
    replies: STREAM_REPLIES,
    final: [TUNNEL_FRAMES.closed],
    doc: 'opens the stream of connection `conn` a `-R` listener accepted',
    fields: { conn: CONN, window: { ...WINDOW, optional: true } },
  },
  [TUNNEL_FRAMES.opened]: {
    service: 'tunnel',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'the target is connected; `window` is the credit for the client; `channel`: a sealed channel may be asked for',
    fields: {
      window: WINDOW,
      channel: {
        kind: 'boolean',
        optional: true,
        doc: 'the server offers sealed channels on this connection',
      },
    },
  },
  [TUNNEL_FRAMES.data]: {
    service: 'tunnel',
    role: 'follow-up',
    from: 'both',
    id: 'required',
    body: TUNNEL_MAX_DATA,
    phases: ['authenticated'],
    doc: "stream bytes, never more than the receiver's remaining window",
    fields: {},
  },
  [TUNNEL_FRAMES.window]: {
    service: 'tunnel',
    role: 'follow-up',
    from: 'both',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    doc: '`bytes` more credit, as the receiver drains',
    fields: {
      bytes: {
        kind: 'integer',
        min: 1,
        max: TUNNEL_MAX_WINDOW,
        message: 'tunnel-window needs a positive "bytes" up to 16 MiB',
      },
    },
  },
  [TUNNEL_FRAMES.end]: {
    service: 'tunnel',
    role: 'follow-up',
    from: 'both',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    doc: 'no more data this way (a FIN)',
    fields: {},
  },
  [TUNNEL_FRAMES.channel]: {
    service: 'tunnel',
    role: 'follow-up',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    doc: 'asks for a sealed channel for this stream (only after an `opened` with `channel`)',
    fields: {},
  },
  [TUNNEL_FRAMES.offer]: {
    service: 'tunnel',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: "the sealed channel's key: `attach` it on a new TLS connection within 10 s",
    fields: { key: CHANNEL_KEY_FIELD },
  },
  [TUNNEL_FRAMES.switch]: {
    service: 'tunnel',
    role: 'follow-up',
    from: 'both',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    doc: 'no more `tunnel-data` or `tunnel-end` this way: the rest comes sealed on the channel',
    fields: {},
  },
  [TUNNEL_FRAMES.closed]: {
    service: 'tunnel',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'final: both ways ended and were delivered',
    fields: {},
  },
  [TUNNEL_FRAMES.listen]: {
    service: 'tunnel',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    replies: [TUNNEL_FRAMES.listening, TUNNEL_FRAMES.accept],
    final: [],
    doc: 'opens a `-R` listener (the server needs `--tunnel-remote`); ends by cancel',
    fields: {
      host: { ...HOST, optional: true },
      port: {
        kind: 'integer',
        min: 0,
        max: 65535,
        message: 'tunnel-listen needs a "host" string and a "port" 0-65535',
      },
    },
  },
  [TUNNEL_FRAMES.listening]: {
    service: 'tunnel',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'the listener is bound',
    fields: { host: HOST, port: { kind: 'integer', min: 0, max: 65535 } },
  },
  [TUNNEL_FRAMES.accept]: {
    service: 'tunnel',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'a connection arrived: attach it as `conn`',
    fields: { conn: CONN, peer: { kind: 'string', max: 300 } },
  },
});
