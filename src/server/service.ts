import type { SockitError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Frame, FrameHeader } from '../protocol/frame.js';
import type { FrameDeclarations } from '../protocol/schema.js';
import type { ChannelKind } from '../protocol/session.js';
import type { ChannelOffer, DataChannel } from './channels.js';
import type { ServerRequest } from './request.js';

export type { ChannelKind, ChannelOffer, DataChannel };

/** What a service sees of a connection: who is there, and a way to push frames to it. */
export interface ConnectionContext {
  /** Server-unique number of this connection, for logs. */
  readonly id: number;
  /** The peer, e.g. `127.0.0.1:51234` or `unix`. */
  readonly peer: string;
  /** Whether the peer proved it holds the token (or the server runs without auth). */
  readonly authenticated: boolean;
  readonly log: Logger;
  /** Sends a frame not tied to a request (chat messages). False: wait for `drained()`. */
  send(header: FrameHeader, body?: Uint8Array): boolean;
  drained(): Promise<void>;
  /**
   * Bytes sent on the connection (encoded frames included) and not yet handed to the kernel:
   * lets a fan-out drop a member that lags, and tunnel streams take turns.
   */
  readonly writableLength: number;
  /**
   * Offers a data channel of `kind` (server/channels.ts) that waits `deadlineMs` for its
   * attach; undefined where there can be none of that kind: `raw` needs a plain connection (a
   * TLS connection's bytes are not the socket's), `sealed` a TLS one and the seal addon, and a
   * server that offers none (`serve --workers`) has neither.
   */
  offerChannel(deadlineMs: number, kind: ChannelKind): ChannelOffer | undefined;
  /** The kind of data channel this connection can offer (offerChannel), or undefined for none. */
  readonly channelKind: ChannelKind | undefined;
  /** Closes the connection with a connection-level error frame. */
  closeWithError(code: string, message: string): void;
  /** Per-connection state for services, keyed by something the service owns. */
  readonly state: Map<unknown, unknown>;
  /** Runs when the connection closes, after all its requests were aborted. */
  onClose(listener: () => void): void;
  /** Keeps an otherwise idle connection open (a chat member waiting for messages). */
  hold(): () => void;
}

/** Handles a frame that opens a request (it carries an `id`). */
export type RequestHandler = (request: ServerRequest) => void | Promise<void>;

/** Handles a frame without `id` on a ready connection (chat `say`). */
export type MessageHandler = (frame: Frame, connection: ConnectionContext) => void | Promise<void>;

/**
 * A service is a set of handlers on the server core for frame types the catalogue declares
 * (src/protocol/catalogue.ts): it never sees bytes, nor a header that breaks its declaration,
 * and it answers through `ServerRequest`/`ConnectionContext`. A service of your own declares
 * its frames in `frames`.
 *
 * @example
 * const time: Service = {
 *   name: 'time',
 *   frames: declareFrames({
 *     time: { service: 'time', role: 'request', from: 'client', id: 'required', body: 0,
 *             phases: ['authenticated'], replies: ['now'], final: ['now'], fields: {}, doc: 'the clock' },
 *     now: { service: 'time', role: 'reply', from: 'server', id: 'required', body: 0,
 *            fields: { ms: { kind: 'number', min: 0, max: Number.MAX_SAFE_INTEGER } }, doc: 'final: the time' },
 *   }),
 *   requests: { time: (req) => req.reply({ type: 'now', ms: Date.now() }) },
 * };
 */
export interface Service {
  /** Name announced in `welcome.services`. */
  readonly name: string;
  /** Frame types that open a request, e.g. `{ exec: handler }`; each declared with role `request`. */
  readonly requests?: Readonly<Record<string, RequestHandler>>;
  /** Frame types without id, e.g. `{ say: handler }`; each declared with role `message`. */
  readonly messages?: Readonly<Record<string, MessageHandler>>;
  /**
   * Declarations of frame types the built-in catalogue does not have (a service of your own).
   * A request's follow-ups, replies and final frames come from there, never from the handlers.
   */
  readonly frames?: FrameDeclarations;
  /**
   * Told when the connection refused a request of this service before its handler ran: the
   * header broke its declaration (BAD_REQUEST), the connection may not use the service
   * (AUTH_REQUIRED), has too many requests open (BUSY), or the server is draining (UNAVAILABLE).
   * Only BAD_REQUEST comes after the header was checked against its declaration: read its fields
   * as untrusted. The error frame is already sent; exec writes its audit record here, and the
   * tunnel service drops the `-R` connection an attach was for.
   */
  refused?(header: FrameHeader, connection: ConnectionContext, error: SockitError): void;
  /** Called once when the server closes, to release what the service holds. */
  close?(): void | Promise<void>;
}
