/**
 * Frame encoding: headers and small bodies are written straight into a shared slab, back to back,
 * so the frames one connection sends in one turn leave as one buffer (one `write`), however many
 * there are. No I/O here: a `FrameBatch` only hands out the buffers to write.
 *
 * Why a slab: encoding each frame into its own `Buffer.allocUnsafe`, then corking and writing
 * them one by one, cost an allocation per frame and, for pipelined replies, a `writev` of one
 * buffer per frame, which in Node costs more than the encoding itself. Regions of the slab that
 * were handed out are never written again (a pending socket write may still hold them); a full
 * slab is simply replaced, and the old one is freed once the last write that holds it is done.
 */
import { SockitError } from '../errors.js';
import { compactHeaderLength, compactHeaderStart, writeCompactHeader } from './compact-header.js';
import { type BodyEdit, type FrameHeader, LENGTH_PREFIX_BYTES, MAX_HEADER_BYTES } from './frame.js';

const EMPTY = Buffer.alloc(0);
/**
 * Bodies up to this size are copied next to their header; larger ones are handed out as they are,
 * so a file chunk is never copied just to prepend a header.
 */
const COALESCE_LIMIT = 4096;
/**
 * The slab's size. Small, because a peer that stops reading keeps alive the whole slab its
 * unsent frames are in: at most this much memory per stalled connection for a few bytes of its own.
 */
const SLAB_BYTES = 16 * 1024;
/** A frame this large (a huge JSON header) gets a buffer of its own rather than a slab. */
const OWN_BUFFER_BYTES = SLAB_BYTES / 4;

/**
 * Bytes a reader keeps free before a body it may send as a frame (`claimHeadroom`): a length
 * prefix and a compact header with a 16-digit id and size fit.
 */
export const FRAME_HEADROOM = 80;

/** Bodies whose FRAME_HEADROOM bytes before them are theirs to write a header into. */
const withHeadroom = new WeakSet<Uint8Array>();

/**
 * Marks `body` as having FRAME_HEADROOM bytes before it, in its own memory, that nothing else
 * reads: `FrameBatch.add` then writes the frame's prefix and header there and hands out header
 * and body as ONE buffer. Why: Node's TLS joins the buffers of a writev into a new buffer before
 * encrypting, so `[header, body]` cost a copy of every 64 KiB tunnel body on tls://.
 */
export function claimHeadroom(body: Buffer): Buffer {
  withHeadroom.add(body);
  return body;
}

let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
/** Bytes of `slab` handed out so far; everything before this offset belongs to some batch. */
let slabUsed = 0;

/**
 * Frames to be written together. `add` encodes a frame at the end of the batch; `take` returns the
 * batch as few buffers as possible (one, unless a large body or another connection's frames came
 * in between) and starts an empty one. The result is byte for byte the concatenation of each
 * frame's encoding.
 */
export class FrameBatch {
  /** Buffers closed so far: slab segments, large bodies, frames with their own buffer. */
  #parts: Buffer[] = [];
  /** The open segment of the slab: `[#start, #end)` of `#slab`, grown while it stays contiguous. */
  #slab: Buffer | undefined;
  #start = 0;
  #end = 0;
  #bytes = 0;

  /** Encoded bytes in the batch. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Encodes one frame at the end of the batch. `size` is set from the body, whatever the header
   * said; `id`, when given, replaces the header's own (a request's replies share the service's
   * header objects). `edit`, when given, changes the body's bytes as they are sent (the caller's
   * `body` stays as it was). Throws TOO_LARGE, with nothing added, for a header over the wire
   * ceiling.
   */
  add(
    header: FrameHeader,
    body: Uint8Array = EMPTY,
    id: number | undefined = header.id,
    edit?: BodyEdit | undefined,
  ): void {
    const size = body.byteLength;
    const withSize = size > 0 || header.size !== undefined;
    const inline = size <= COALESCE_LIMIT;
    const compactStart = compactHeaderStart(header, id);
    let json: string | undefined;
    let headerBytes: number;
    if (compactStart !== undefined) {
      headerBytes = compactHeaderLength(compactStart, id, size, withSize);
    } else {
      json = headerJson(header, id, size, withSize);
      headerBytes = Buffer.byteLength(json);
      if (headerBytes > MAX_HEADER_BYTES) {
        throw new SockitError(
          'TOO_LARGE',
          `frame header is ${headerBytes} bytes, over the ${MAX_HEADER_BYTES}-byte limit`,
        );
      }
    }
    if (
      !inline &&
      edit === undefined &&
      compactStart !== undefined &&
      LENGTH_PREFIX_BYTES + headerBytes <= FRAME_HEADROOM &&
      withHeadroom.has(body)
    ) {
      withHeadroom.delete(body);
      this.#addInPlace(body, compactStart, id, headerBytes);
      return;
    }
    const frameBytes = LENGTH_PREFIX_BYTES + headerBytes + (inline ? size : 0);
    const out = this.#reserve(frameBytes);
    let at = out === slab ? slabUsed : 0;
    out[at] = headerBytes >>> 24;
    out[at + 1] = (headerBytes >>> 16) & 0xff;
    out[at + 2] = (headerBytes >>> 8) & 0xff;
    out[at + 3] = headerBytes & 0xff;
    at += LENGTH_PREFIX_BYTES;
    if (compactStart !== undefined) writeCompactHeader(out, at, compactStart, id, size, withSize);
    else out.write(json!, at, headerBytes, 'utf8');
    if (inline && size > 0) {
      out.set(body, at + headerBytes);
      edit?.(out, at + headerBytes, at + headerBytes + size);
    }
    if (out === slab) {
      slabUsed += frameBytes;
      this.#end = slabUsed;
    }
    this.#bytes += frameBytes;
    if (!inline) {
      this.#close();
      this.#parts.push(edit === undefined ? asBuffer(body) : editedCopy(body, edit));
      this.#bytes += size;
    }
  }

  /** Writes prefix and compact header into the claimed headroom before `body`: one part, no copy. */
  #addInPlace(body: Uint8Array, compactStart: Buffer, id: number | undefined, headerBytes: number): void {
    const size = body.byteLength;
    const frameBytes = LENGTH_PREFIX_BYTES + headerBytes;
    const whole = Buffer.from(body.buffer, body.byteOffset - frameBytes, frameBytes + size);
    whole.writeUInt32BE(headerBytes, 0);
    writeCompactHeader(whole, LENGTH_PREFIX_BYTES, compactStart, id, size, true);
    this.#close();
    this.#parts.push(whole);
    this.#bytes += frameBytes + size;
  }

  /**
   * The batch as one buffer when it is one slab segment (no large body, no other connection's
   * frames in between: nearly always), the batch then empty; else undefined, and `take` gives
   * its parts. Saves the array `take` would create for that one buffer, once per write.
   */
  takeSingle(): Buffer | undefined {
    const open = this.#slab;
    if (this.#parts.length !== 0 || open === undefined || this.#end === this.#start) return undefined;
    this.#slab = undefined;
    this.#bytes = 0;
    return open.subarray(this.#start, this.#end);
  }

  /** The batch's buffers, to be written in order; the batch is empty afterwards. */
  take(): Buffer[] {
    this.#close();
    const parts = this.#parts;
    this.#parts = [];
    this.#bytes = 0;
    return parts;
  }

  /**
   * Where the next `bytes` go: the slab, continuing the open segment when nothing else was
   * written to the slab since, or a buffer of their own for a frame too large for a slab.
   */
  #reserve(bytes: number): Buffer {
    if (bytes > OWN_BUFFER_BYTES) {
      this.#close();
      const own = Buffer.allocUnsafe(bytes);
      this.#parts.push(own);
      return own;
    }
    if (slabUsed + bytes > SLAB_BYTES) {
      slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      slabUsed = 0;
    }
    if (this.#slab !== slab || this.#end !== slabUsed) {
      this.#close();
      this.#slab = slab;
      this.#start = slabUsed;
      this.#end = slabUsed;
    }
    return slab;
  }

  /** Ends the open slab segment, if any, as one part. */
  #close(): void {
    const open = this.#slab;
    if (open === undefined) return;
    if (this.#end > this.#start) this.#parts.push(open.subarray(this.#start, this.#end));
    this.#slab = undefined;
  }
}

function asBuffer(body: Uint8Array): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/** A large body that is to be changed as sent: changed in a copy, the caller's left as it was. */
function editedCopy(body: Uint8Array, edit: BodyEdit): Buffer {
  const copy = Buffer.allocUnsafe(body.byteLength);
  copy.set(body);
  edit(copy, 0, copy.length);
  return copy;
}

/**
 * The header as JSON with `id` and `size` set. The common cases append `"id":N` and
 * `"size":N` to the JSON text instead of copying the header with `{ ...header, id, size }`,
 * which in Node 20 costs more than the stringify itself (a reply's header is a service's object
 * without an id: exec's `started` and `exit`). The bytes are the same: the copy would put both
 * keys last too.
 */
function headerJson(header: FrameHeader, id: number | undefined, size: number, withSize: boolean): string {
  if (id !== header.id) {
    if ('id' in header || 'size' in header || !Number.isSafeInteger(id)) {
      return JSON.stringify({ ...header, id, size: withSize ? size : undefined });
    }
    const json = JSON.stringify(header);
    if (json.length <= 2 || !json.endsWith('}'))
      return JSON.stringify({ ...header, id, size: withSize ? size : undefined });
    return `${json.slice(0, -1)},"id":${id}${withSize ? `,"size":${size}` : ''}}`;
  }
  const json = JSON.stringify(header);
  if (header.size === size || !withSize) return json;
  if (header.size === undefined && json.length > 2 && json.endsWith('}')) {
    return `${json.slice(0, -1)},"size":${size}}`;
  }
  return JSON.stringify({ ...header, size });
}

/**
 * Encodes one frame (see `FrameBatch.add`). Returns one buffer for a small frame and
 * `[prefix+header, body]` for a large body, which is passed on without a copy.
 */
export function encodeFrame(
  header: FrameHeader,
  body: Uint8Array = EMPTY,
  id: number | undefined = header.id,
): Buffer[] {
  const batch = new FrameBatch();
  batch.add(header, body, id);
  return batch.take();
}

/** Encodes one frame into a single buffer (tests, datagrams, small control frames). */
export function encodeFrameToBuffer(header: FrameHeader, body?: Uint8Array): Buffer {
  const parts = encodeFrame(header, body);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
