import { ERROR_CATALOGUE, isErrorCode, SockitError } from '../errors.js';
import { compactHeaderLength, compactHeaderStart, writeCompactHeader } from './compact-header.js';

/**
 * Frames: `uint32 BE header length` + `UTF-8 JSON header` + `body of header.size bytes`.
 * This module only turns values into bytes; it never touches a socket.
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
   * The frame's own bytes (length prefix, compact header, body), when the decoder has them
   * without copying: the header was in the compact form and the frame arrived as one whole
   * chunk. A reply that would be byte-identical (an echo) can be these bytes.
   */
  wire?: Buffer | undefined;
  /**
   * The body as the pieces it arrived in (views into the socket's chunks), for a large body that
   * spans chunks (SPLIT_BODY_MIN_BYTES and up). `body` then joins them on first use, so a
   * consumer that can take pieces (a file write, a hash) never pays for that copy.
   */
  parts?: readonly Buffer[] | undefined;
}

/** Bodies this large that span socket chunks are handed out as `Frame.parts` too. */
export const SPLIT_BODY_MIN_BYTES = 256 * 1024;

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

const EMPTY = Buffer.alloc(0);
/** Bodies up to this size are copied next to the header so the frame is one write. */
const COALESCE_LIMIT = 4096;

/**
 * Encodes one frame. `size` is set from the body, whatever the header said; `id`, when given,
 * replaces the header's own (a request's replies share the service's header objects).
 * Returns one buffer for small frames and `[prefix+header, body]` for large bodies, so a file
 * chunk is never copied just to prepend a header.
 */
export function encodeFrame(
  header: FrameHeader,
  body: Uint8Array = EMPTY,
  id: number | undefined = header.id,
): Buffer[] {
  const size = body.byteLength;
  const withSize = size > 0 || header.size !== undefined;
  const small = size <= COALESCE_LIMIT;
  const bodyBytes = small ? size : 0;
  let out: Buffer;
  let headerBytes: number;
  const compactStart = compactHeaderStart(header, id);
  if (compactStart !== undefined) {
    headerBytes = compactHeaderLength(compactStart, id, size, withSize);
    out = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + headerBytes + bodyBytes);
    writeCompactHeader(out, LENGTH_PREFIX_BYTES, compactStart, id, size, withSize);
  } else {
    const json = headerJson(header, id, size, withSize);
    headerBytes = Buffer.byteLength(json);
    if (headerBytes > MAX_HEADER_BYTES) {
      throw new SockitError(
        'TOO_LARGE',
        `frame header is ${headerBytes} bytes, over the ${MAX_HEADER_BYTES}-byte limit`,
      );
    }
    out = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + headerBytes + bodyBytes);
    out.write(json, LENGTH_PREFIX_BYTES, 'utf8');
  }
  out.writeUInt32BE(headerBytes, 0);
  if (small) {
    if (size > 0) out.set(body, LENGTH_PREFIX_BYTES + headerBytes);
    return [out];
  }
  return [out, Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, size)];
}

/**
 * The header as JSON with `id` and `size` set. The common case appends `"size":N` to the
 * JSON text instead of copying the header with `{ ...header, size }`, which in Node 20 costs
 * more than the stringify itself.
 */
function headerJson(header: FrameHeader, id: number | undefined, size: number, withSize: boolean): string {
  if (id !== header.id) return JSON.stringify({ ...header, id, size: withSize ? size : undefined });
  const json = JSON.stringify(header);
  if (header.size === size || !withSize) return json;
  if (header.size === undefined && json.length > 2 && json.endsWith('}')) {
    return `${json.slice(0, -1)},"size":${size}}`;
  }
  return JSON.stringify({ ...header, size });
}

/** Encodes one frame into a single buffer (tests, datagrams, small control frames). */
export function encodeFrameToBuffer(header: FrameHeader, body?: Uint8Array): Buffer {
  const parts = encodeFrame(header, body);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

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
