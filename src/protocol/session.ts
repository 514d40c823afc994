/**
 * The frames of the connection itself (docs/protocol.md sections 2 and 3): the handshake,
 * liveness, cancel and errors. Every service's requests may be answered by `error`.
 */
import { MAX_ERROR_MESSAGE } from './frame.js';
import { declareFrames } from './schema.js';

/** Longest agent string (`sockit/0.1.0`) and nonce or proof accepted in the handshake. */
const MAX_HANDSHAKE_TEXT = 256;
/** Most services a welcome may name. */
const MAX_SERVICES = 64;
/** A service name as `welcome` lists it. */
const SERVICE_NAME = 64;

/** Random bytes in a data channel's key. */
export const CHANNEL_KEY_BYTES = 32;

/**
 * What a data channel carries: `raw` bytes as they are (a terminal's, on a plain connection),
 * or `sealed` records on a TLS connection (a tunnel stream's; docs/protocol.md "Sealed channels").
 */
export type ChannelKind = 'raw' | 'sealed';
/** Characters of a key in base64url without padding. */
const CHANNEL_KEY_LENGTH = Math.ceil((CHANNEL_KEY_BYTES * 4) / 3);

/**
 * A data channel's key (`channel` reply of a terminal, `attach`): CHANNEL_KEY_BYTES random bytes
 * in base64url, no padding. A bearer secret: whoever holds it may join that one request's
 * terminal, once. Declared once here, for both frames that carry it.
 */
export const CHANNEL_KEY_FIELD = {
  kind: 'string',
  min: CHANNEL_KEY_LENGTH,
  max: CHANNEL_KEY_LENGTH,
  pattern: new RegExp(`^[A-Za-z0-9_-]{${CHANNEL_KEY_LENGTH}}$`),
  message: `"key" must be the ${CHANNEL_KEY_LENGTH}-character key of a \`channel\` reply`,
} as const;

/** The handshake and connection-control frames, declared once. */
export const SESSION_FRAMES = declareFrames({
  hello: {
    service: 'session',
    role: 'session',
    from: 'client',
    id: 'none',
    body: 0,
    phases: ['handshake'],
    invalidCode: 'UNSUPPORTED',
    doc: 'the first frame of a connection: the protocol version the client speaks',
    fields: {
      version: { kind: 'integer', min: 0, max: 65535 },
      client: { kind: 'string', max: MAX_HANDSHAKE_TEXT, optional: true },
      keepalive: { kind: 'boolean', optional: true, doc: 'the client answers the server pings' },
    },
  },
  attach: {
    service: 'session',
    role: 'session',
    from: 'client',
    id: 'none',
    body: 0,
    phases: ['handshake'],
    invalidCode: 'AUTH_FAILED',
    doc: 'instead of `hello`: this connection is the data channel a `channel` reply offered',
    fields: {
      key: CHANNEL_KEY_FIELD,
    },
  },
  attached: {
    service: 'session',
    role: 'session',
    from: 'server',
    id: 'none',
    body: 0,
    doc: 'the data channel is joined: from the next byte on it carries the request raw bytes, unframed',
    fields: {},
  },
  welcome: {
    service: 'session',
    role: 'session',
    from: 'server',
    id: 'none',
    body: 0,
    doc: 'the server, its services, and how to authenticate',
    fields: {
      version: { kind: 'integer', min: 0, max: 65535 },
      server: { kind: 'string', max: MAX_HANDSHAKE_TEXT, optional: true },
      services: { kind: 'strings', minItems: 0, maxItems: MAX_SERVICES, itemMax: SERVICE_NAME },
      auth: { kind: 'enum', values: ['token', 'none'] },
      nonce: { kind: 'string', max: MAX_HANDSHAKE_TEXT, optional: true },
      open: { kind: 'strings', minItems: 0, maxItems: MAX_SERVICES, itemMax: SERVICE_NAME, optional: true },
    },
  },
  auth: {
    service: 'session',
    role: 'session',
    from: 'client',
    id: 'none',
    body: 0,
    phases: ['anonymous'],
    invalidCode: 'AUTH_FAILED',
    doc: 'the token proof for the nonce',
    fields: { proof: { kind: 'string', max: MAX_HANDSHAKE_TEXT } },
  },
  ready: {
    service: 'session',
    role: 'session',
    from: 'server',
    id: 'none',
    body: 0,
    doc: 'authenticated (or no authentication): every service may be used',
    fields: {},
  },
  ping: {
    service: 'session',
    role: 'request',
    from: 'both',
    id: 'required',
    body: 0,
    phases: ['anonymous', 'authenticated'],
    replies: ['pong'],
    final: ['pong'],
    doc: 'liveness; the server pings only clients that said `keepalive`',
    fields: {},
  },
  pong: {
    service: 'session',
    role: 'reply',
    from: 'both',
    id: 'required',
    body: 0,
    phases: ['anonymous', 'authenticated'],
    doc: 'the answer to a ping',
    fields: {},
  },
  cancel: {
    service: 'session',
    role: 'follow-up',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['anonymous', 'authenticated'],
    doc: 'ends request `id` early; an unknown id is ignored',
    fields: {},
  },
  error: {
    service: 'session',
    role: 'reply',
    from: 'both',
    id: 'optional',
    body: 0,
    phases: ['anonymous', 'authenticated'],
    doc: 'ends request `id`, or without `id` the connection; may carry extra fields (`versions`, `reason`)',
    fields: {
      code: { kind: 'string', min: 1, max: 64 },
      // The sender cuts messages to MAX_ERROR_MESSAGE and appends `…`.
      message: { kind: 'string', max: MAX_ERROR_MESSAGE + 1 },
    },
  },
});
