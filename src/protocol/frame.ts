import { ERROR_CATALOGUE, isErrorCode, SockitError } from '../errors.js';

export { encodeFrame, encodeFrameToBuffer } from './encoder.js';

/**
 * Frames: `uint32 BE header length` + `UTF-8 JSON header` + `body of header.size bytes`.
 * This module declares them; `encoder.ts` turns them into bytes, `decoder.ts` back. Neither
 * touches a socket.
 */

/** The JSON header of a frame. `type` is always present; `id` ties a frame to a request. */
export interface FrameHeader {
  type: string;
  id?: number;
  size?: number;
  [field: string]: unknown;
}

/** A decoded frame. `body` may be a view into the socket's chunk: copy it to keep it. */
export interface Frame {
  header: FrameHeader;
  body: Buffer;
  /**
   * The body as the pieces it arrived in (views into the socket's chunks), for a large body that
   * spans chunks (SPLIT_BODY_MIN_BYTES and up). `body` then joins them on first use, so a
   * consumer that can take pieces (a file write, a hash) never pays for that copy.
   */
  parts?: readonly Buffer[] | undefined;
  /**
   * Set on frames whose body lies in recycled read buffers (transport/read-pool.ts): call it once
   * nothing will read the body's bytes again (their writes completed), and the buffers may serve
   * another read. Not calling it is always safe (the memory is then left to the GC); calling it
   * while the bytes are still in use is not.
   */
  release?: (() => void) | undefined;
}

/**
 * Changes the bytes `[start, end)` of a buffer in place (an echo transform, a mask). Handed to a
 * frame's send with the body it applies to, it runs on the copy of the body the encoder makes
 * anyway (into the outgoing batch), so a changed body needs no buffer of its own.
 */
export type BodyEdit = (out: Buffer, start: number, end: number) => void;

/**
 * Bodies this large that span socket chunks are handed out as `Frame.parts` too. One TLS record
 * (16 KiB of plaintext): a 64 KiB `tunnel-data` body over tls:// always spans four or five
 * chunks, and the tunnel writes the pieces to its socket with one writev instead of copying them.
 */
export const SPLIT_BODY_MIN_BYTES = 16 * 1024;

/** The bytes of a frame's body in order: its parts when it has them, else the body itself. */
export function bodyParts(frame: Frame): readonly Buffer[] {
  return frame.parts ?? [frame.body];
}

/** The wire ceiling for the header length; receivers may set a lower limit. */
export const MAX_HEADER_BYTES = 65536;
/** Default cap on one frame's body; large payloads travel as many frames. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
/** Largest request id: ids must be exact in an IEEE double (2^53 − 1). */
export const MAX_REQUEST_ID = Number.MAX_SAFE_INTEGER;
/** Bytes before the header: its length as uint32 big-endian. */
export const LENGTH_PREFIX_BYTES = 4;

/** Error messages are cut to this many characters. */
export const MAX_ERROR_MESSAGE = 1024;

/** The `error` frame of PROTOCOL section 3; without `id` it is a connection error. */
export function errorHeader(
  code: string,
  text: string,
  id?: number,
  extra?: Record<string, unknown>,
): FrameHeader {
  // Messages often quote what the peer sent (a path, a room, a version); a peer must not be able
  // to make the answer longer than a header may be.
  const message = text.length > MAX_ERROR_MESSAGE ? `${text.slice(0, MAX_ERROR_MESSAGE)}…` : text;
  return id === undefined
    ? { type: 'error', code, message, ...extra }
    : { type: 'error', id, code, message, ...extra };
}

/**
 * The error an `error` frame reports, with the peer's code kept when it is a wire code (anything
 * else is INTERNAL: a peer cannot make us report a local condition such as a usage error).
 */
export function errorFromHeader(header: FrameHeader, fallbackMessage: string): SockitError {
  const code = isErrorCode(header.code) && ERROR_CATALOGUE[header.code].wire ? header.code : 'INTERNAL';
  const message = typeof header.message === 'string' ? header.message : fallbackMessage;
  return new SockitError(code, message, { details: header });
}
