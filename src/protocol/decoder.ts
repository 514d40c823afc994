import { isUtf8 } from 'node:buffer';
import { SockitError } from '../errors.js';
import { readCompactHeader, TYPE_PATTERN } from './compact-header.js';
import {
  DEFAULT_MAX_BODY_BYTES,
  type Frame,
  type FrameHeader,
  LENGTH_PREFIX_BYTES,
  MAX_HEADER_BYTES,
  MAX_REQUEST_ID,
  SPLIT_BODY_MIN_BYTES,
} from './frame.js';

/**
 * The largest body accepted for a frame with this header, asked right after the header is
 * parsed and before any body byte is buffered. The seam for limits that depend on a
 * connection's phase or on the frame's type: the owner decides, the decoder enforces.
 */
export type BodyLimit = (header: FrameHeader) => number;

export interface DecoderOptions {
  /** Largest accepted header, at most 65536 (the wire ceiling). */
  maxHeaderBytes?: number;
  /** Largest accepted body of one frame. Default 16 MiB. */
  maxBodyBytes?: number;
  /** A tighter limit per frame, below `maxBodyBytes` (which stays the ceiling). */
  bodyLimit?: BodyLimit | undefined;
  /**
   * Server side: treat a first length prefix made of printable ASCII that decodes past the
   * ceiling as a text client (`GET `, `hell`) rather than as a broken frame.
   */
  detectTextClient?: boolean;
}

/** A framing violation. `textClient` marks a peer that sent plain text instead of frames. */
export class FrameError extends SockitError {
  readonly textClient: boolean;
  constructor(code: 'FRAME_INVALID' | 'TOO_LARGE' | 'TIMEOUT', message: string, textClient = false) {
    super(code, message);
    this.name = 'FrameError';
    this.textClient = textClient;
  }
}

const State = { Length: 0, Header: 1, Body: 2, Failed: 3 } as const;
type State = (typeof State)[keyof typeof State];

/**
 * Streaming frame decoder. `push` stores a chunk; `next` returns the next whole frame or
 * `undefined` when more bytes are needed. Pull-based so a caller that must wait (a slow file
 * write) simply stops pulling and pauses its socket, with nothing decoded ahead of it.
 *
 * Chunks are kept in a list with a byte count, never concatenated: a header or body that lies
 * inside one chunk is handed out as a view, one that spans chunks is copied once into an
 * exactly sized buffer. Header length and body size are checked as soon as they are known,
 * before their bytes are buffered.
 */
export class FrameDecoder {
  readonly #maxHeaderBytes: number;
  readonly #maxBodyBytes: number;
  readonly #bodyLimit: BodyLimit | undefined;
  #detectTextClient: boolean;
  #chunks: Buffer[] = [];
  /** Read offset into `#chunks[0]`. */
  #offset = 0;
  #buffered = 0;
  #state: State = State.Length;
  #headerLength = 0;
  #header: FrameHeader | undefined;
  #bodySize = 0;

  constructor(options: DecoderOptions = {}) {
    this.#maxHeaderBytes = Math.min(options.maxHeaderBytes ?? MAX_HEADER_BYTES, MAX_HEADER_BYTES);
    this.#maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.#bodyLimit = options.bodyLimit;
    this.#detectTextClient = options.detectTextClient ?? false;
  }

  /** Bytes received but not yet handed out as frames. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /**
   * How many of the chunks pushed last it still holds bytes of: chunks are used up in the order
   * they came, so every earlier one is free (what a reader that recycles its buffers watches).
   */
  get heldChunks(): number {
    return this.#chunks.length;
  }

  /** Whether the decoder is between frames (no partial frame buffered). */
  get idle(): boolean {
    return this.#buffered === 0 && this.#state === State.Length;
  }

  push(chunk: Buffer): void {
    if (this.#state === State.Failed) return;
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /**
   * Hands out the bytes buffered past the last whole frame and forgets them: where a stream
   * stops carrying frames (a data channel after `attached`), its raw bytes begin there. Only
   * between frames; undefined while part of a frame is buffered.
   */
  takeRemaining(): Buffer | undefined {
    if (this.#state !== State.Length) return undefined;
    return this.#take(this.#buffered);
  }

  /** Next whole frame, or undefined if more bytes are needed. Throws FrameError on bad input. */
  next(): Frame | undefined {
    // Each step returns early when bytes are short and falls into the next when they are not.
    if (this.#state === State.Length) {
      if (this.#buffered < LENGTH_PREFIX_BYTES) return undefined;
      this.#headerLength = this.#takeLength();
      this.#checkHeaderLength();
      this.#state = State.Header;
    }
    if (this.#state === State.Header) {
      if (this.#buffered < this.#headerLength) return undefined;
      this.#header = this.#takeHeader(this.#headerLength);
      this.#bodySize = this.#header.size ?? 0;
      if (this.#bodyLimit !== undefined) this.#checkBodyLimit(this.#header, this.#bodyLimit(this.#header));
      this.#state = State.Body;
    }
    if (this.#state === State.Body) {
      if (this.#buffered < this.#bodySize) return undefined;
      const header = this.#header!;
      if (this.#bodySize >= SPLIT_BODY_MIN_BYTES && this.#chunks[0]!.length - this.#offset < this.#bodySize) {
        // A large body across chunks: its pieces, joined only if someone asks for `body`.
        const parts = this.#takeParts(this.#bodySize);
        this.#header = undefined;
        this.#state = State.Length;
        return new SplitBodyFrame(header, parts, this.#bodySize);
      }
      const body = this.#take(this.#bodySize);
      this.#header = undefined;
      this.#state = State.Length;
      return { header, body, release: undefined };
    }
    return undefined;
  }

  #checkHeaderLength(): void {
    const length = this.#headerLength;
    if (this.#detectTextClient) {
      this.#detectTextClient = false;
      if (length > MAX_HEADER_BYTES && isPrintableAscii(length)) {
        this.#fail('FRAME_INVALID', 'the peer sent plain text, not sockit frames', true);
      }
    }
    if (length < 2) this.#fail('FRAME_INVALID', `header length ${length} is below the minimum of 2`);
    if (length > this.#maxHeaderBytes) {
      this.#fail('TOO_LARGE', `header length ${length} is over the limit of ${this.#maxHeaderBytes} bytes`);
    }
  }

  #parseHeader(text: string): FrameHeader {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.#fail('FRAME_INVALID', 'header is not valid JSON');
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.#fail('FRAME_INVALID', 'header must be a JSON object');
    }
    const header = value as Record<string, unknown>;
    const type = header.type;
    if (typeof type !== 'string' || !TYPE_PATTERN.test(type)) {
      this.#fail('FRAME_INVALID', 'header.type must be a string of 1-64 characters matching [a-z][a-z0-9-]*');
    }
    const size = header.size;
    if (size !== undefined) {
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
        this.#fail('FRAME_INVALID', 'header.size must be a non-negative integer');
      }
      this.#checkBodySize(size);
    }
    const id = header.id;
    if (
      id !== undefined &&
      (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > MAX_REQUEST_ID)
    ) {
      this.#fail('FRAME_INVALID', 'header.id must be an integer from 1 to 2^53-1');
    }
    return header as FrameHeader;
  }

  /** Removes the 4-byte length prefix and returns its value, without a view when it lies in one chunk. */
  #takeLength(): number {
    const first = this.#chunks[0]!;
    if (first.length - this.#offset < LENGTH_PREFIX_BYTES) {
      return this.#take(LENGTH_PREFIX_BYTES).readUInt32BE(0);
    }
    // By hand: `readUInt32BE` checks its argument and bounds again on every call.
    const at = this.#offset;
    const length =
      ((first[at]! << 24) | (first[at + 1]! << 16) | (first[at + 2]! << 8) | first[at + 3]!) >>> 0;
    this.#skip(first, LENGTH_PREFIX_BYTES);
    return length;
  }

  #checkBodySize(size: number): void {
    if (size > this.#maxBodyBytes) {
      this.#fail('TOO_LARGE', `body of ${size} bytes is over the limit of ${this.#maxBodyBytes} bytes`);
    }
  }

  #checkBodyLimit(header: FrameHeader, limit: number): void {
    if (this.#bodySize <= limit) return;
    this.#fail(
      'TOO_LARGE',
      limit === 0
        ? `a "${header.type}" frame takes no body here (it announced ${this.#bodySize} bytes)`
        : `body of ${this.#bodySize} bytes is over the limit of ${limit} bytes for a "${header.type}" frame here`,
    );
  }

  /**
   * Removes `n` header bytes and returns the header. One that lies in one chunk is read in
   * place, without a view; the compact form is read without JSON.parse (compact-header.ts).
   */
  #takeHeader(n: number): FrameHeader {
    const first = this.#chunks[0]!;
    let bytes: Buffer;
    let start = 0;
    if (first.length - this.#offset >= n) {
      bytes = first;
      start = this.#offset;
      this.#skip(first, n);
    } else {
      bytes = this.#take(n);
    }
    const compact = readCompactHeader(bytes, start, start + n);
    if (compact === undefined) return this.#parseHeader(this.#headerText(bytes, start, n));
    if (compact.size !== undefined) this.#checkBodySize(compact.size);
    return compact;
  }

  /**
   * The header's text. Invalid UTF-8 decodes to U+FFFD, so only a header that contains one
   * needs the exact check.
   */
  #headerText(bytes: Buffer, start: number, n: number): string {
    const text = bytes.toString('utf8', start, start + n);
    if (text.includes('\uFFFD') && !isUtf8(bytes.subarray(start, start + n))) {
      this.#fail('FRAME_INVALID', 'header is not valid UTF-8');
    }
    return text;
  }

  /** Advances past `n` bytes that lie in `first`, the first chunk. */
  #skip(first: Buffer, n: number): void {
    this.#buffered -= n;
    this.#offset += n;
    if (this.#offset === first.length) {
      this.#chunks.shift();
      this.#offset = 0;
    }
  }

  /** Removes `n` buffered bytes: a view when they lie in one chunk, else one exact copy. */
  #take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.#chunks[0]!;
    const available = first.length - this.#offset;
    this.#buffered -= n;
    if (available > n) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#offset += n;
      return view;
    }
    if (available === n) {
      const view = this.#offset === 0 ? first : first.subarray(this.#offset);
      this.#chunks.shift();
      this.#offset = 0;
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0]!;
      const want = n - filled;
      const have = chunk.length - this.#offset;
      if (have <= want) {
        chunk.copy(out, filled, this.#offset);
        filled += have;
        this.#chunks.shift();
        this.#offset = 0;
      } else {
        chunk.copy(out, filled, this.#offset, this.#offset + want);
        filled += want;
        this.#offset += want;
      }
    }
    return out;
  }

  /** Removes `n` buffered bytes as views into the chunks they lie in, no copy. */
  #takeParts(n: number): Buffer[] {
    const parts: Buffer[] = [];
    this.#buffered -= n;
    let left = n;
    while (left > 0) {
      const chunk = this.#chunks[0]!;
      const have = chunk.length - this.#offset;
      if (have <= left) {
        parts.push(this.#offset === 0 ? chunk : chunk.subarray(this.#offset));
        left -= have;
        this.#chunks.shift();
        this.#offset = 0;
      } else {
        parts.push(chunk.subarray(this.#offset, this.#offset + left));
        this.#offset += left;
        left = 0;
      }
    }
    return parts;
  }

  #fail(code: 'FRAME_INVALID' | 'TOO_LARGE', message: string, textClient = false): never {
    this.#state = State.Failed;
    this.#chunks = [];
    this.#buffered = 0;
    throw new FrameError(code, message, textClient);
  }
}

const EMPTY = Buffer.alloc(0);

/** A frame whose large body arrived in pieces: `parts` as they are, `body` joined on first use. */
class SplitBodyFrame implements Frame {
  readonly header: FrameHeader;
  readonly parts: readonly Buffer[];
  release: (() => void) | undefined = undefined;
  readonly #size: number;
  #body: Buffer | undefined;

  constructor(header: FrameHeader, parts: Buffer[], size: number) {
    this.header = header;
    this.parts = parts;
    this.#size = size;
  }

  get body(): Buffer {
    this.#body ??= Buffer.concat(this.parts, this.#size);
    return this.#body;
  }
}

/** Whether the four bytes of a big-endian length are all printable ASCII (`GET `, `hell`). */
function isPrintableAscii(length: number): boolean {
  for (let shift = 0; shift < 32; shift += 8) {
    const byte = (length >>> shift) & 0xff;
    if (byte < 0x20 || byte > 0x7e) return false;
  }
  return true;
}

/** The one line a server sends to a peer that speaks plain text to a framed port. */
export const TEXT_CLIENT_REPLY =
  'This port speaks the sockit framed protocol (4-byte length, JSON header, body), not plain text. ' +
  'Use `sockit ping HOST:PORT` or a sockit client; see docs/protocol.md.\n';
