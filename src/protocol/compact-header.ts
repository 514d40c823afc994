/**
 * The compact header: `{"type":"T","id":N,"size":N}`, with `id` and `size` each optional, in
 * this order and without spaces. Almost every frame on a busy connection (echo requests and
 * replies, exec output, file chunks) has this shape, so it is read and written byte by byte
 * here instead of through `JSON.parse`/`JSON.stringify`, which with the string each needs were
 * the largest part of the server's own work per small message. The bytes are ordinary JSON
 * and mean what JSON says: any other header, or a compact one outside what this reader accepts
 * (leading zeros, 16+ digits, a type not made of [a-z0-9-]), goes through JSON instead.
 */
import type { FrameHeader } from './frame.js';

/** `type` as the protocol allows it: `[a-z][a-z0-9-]{0,63}`. */
export const TYPE_PATTERN = /^[a-z][a-z0-9-]{0,63}$/;
const MAX_TYPE_LENGTH = 64;
/** 2^53 - 1 has 16 digits; longer numbers take the JSON path. */
const MAX_DIGITS = 16;

const QUOTE = 0x22;
const BRACE_CLOSE = 0x7d;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const TYPE_OPEN = Buffer.from('{"type":"', 'latin1');
const ID_KEY = Buffer.from(',"id":', 'latin1');
const SIZE_KEY = Buffer.from(',"size":', 'latin1');

// ---- reading ---------------------------------------------------------------------------------

/**
 * Recently seen type names by a hash of their bytes, so a compact header costs no new string
 * for its type. Bounded: a slot holds the last name that hashed to it.
 */
const TYPE_SLOTS = 64;
const typeNames: (string | undefined)[] = new Array(TYPE_SLOTS).fill(undefined);
/**
 * The type of the last compact header read, tried first (a connection starts with `hello`).
 * Never empty, so a match is a valid type: the bytes equal a name that passed the check below.
 */
let lastType = 'hello';

/**
 * Reads a compact header from `bytes[start, end)`, or returns undefined when the bytes are not
 * in the compact form (the caller then parses them as JSON, which also reports what is wrong).
 * A header returned here is valid: its type matches TYPE_PATTERN, `id` is 1..2^53-1 and `size`
 * a non-negative safe integer.
 */
export function readCompactHeader(bytes: Uint8Array, start: number, end: number): FrameHeader | undefined {
  if (end - start < TYPE_OPEN.length + 3 || !startsWith(bytes, start, end, TYPE_OPEN)) return undefined;
  const typeStart = start + TYPE_OPEN.length;
  let type = lastType;
  let at = typeStart + type.length;
  // Most frames have the type of the frame before them: then its bytes are only compared.
  if (at >= end || bytes[at] !== QUOTE || !sameAscii(bytes, typeStart, type)) {
    // The type: [a-z][a-z0-9-]*, hashed on the way for the name cache.
    const typeEnd = Math.min(end, typeStart + MAX_TYPE_LENGTH + 1);
    let hash = 0;
    for (at = typeStart; at < typeEnd; at++) {
      const byte = bytes[at]!;
      if (byte === QUOTE) break;
      const lower = byte >= 0x61 && byte <= 0x7a;
      if (!lower && (at === typeStart || !((byte >= DIGIT_0 && byte <= DIGIT_9) || byte === 0x2d))) {
        return undefined;
      }
      hash = (hash * 31 + byte) | 0;
    }
    const typeLength = at - typeStart;
    if (at === typeEnd || typeLength === 0) return undefined;
    type = typeName(bytes, typeStart, typeLength, hash);
    lastType = type;
  }
  at++; // the closing quote
  let id: number | undefined;
  let size: number | undefined;
  if (startsWith(bytes, at, end, ID_KEY)) {
    at += ID_KEY.length;
    const digitsEnd = scanDigits(bytes, at, end);
    if (digitsEnd < 0) return undefined;
    id = decimal(bytes, at, digitsEnd);
    if (id === 0 || id > Number.MAX_SAFE_INTEGER) return undefined; // JSON parsing reports it
    at = digitsEnd;
  }
  if (startsWith(bytes, at, end, SIZE_KEY)) {
    at += SIZE_KEY.length;
    const digitsEnd = scanDigits(bytes, at, end);
    if (digitsEnd < 0) return undefined;
    size = decimal(bytes, at, digitsEnd);
    if (size > Number.MAX_SAFE_INTEGER) return undefined;
    at = digitsEnd;
  }
  if (at !== end - 1 || bytes[at] !== BRACE_CLOSE) return undefined;
  // One literal per shape keeps the headers' hidden classes few for the code that reads them.
  if (id === undefined) return size === undefined ? { type } : { type, size };
  return size === undefined ? { type, id } : { type, id, size };
}

function startsWith(bytes: Uint8Array, at: number, end: number, prefix: Buffer): boolean {
  if (at + prefix.length > end) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (bytes[at + i] !== prefix[i]) return false;
  }
  return true;
}

/** End of a JSON non-negative integer of 1..16 digits starting at `at`, or -1. */
function scanDigits(bytes: Uint8Array, at: number, end: number): number {
  let i = at;
  while (i < end && bytes[i]! >= DIGIT_0 && bytes[i]! <= DIGIT_9) i++;
  const digits = i - at;
  if (digits === 0 || digits > MAX_DIGITS) return -1;
  if (digits > 1 && bytes[at] === DIGIT_0) return -1; // a leading zero is not JSON
  return i;
}

/**
 * The digits' value. Exact below 2^53; above it rounding may change the value but never
 * brings it below 2^53, so the caller's `> MAX_SAFE_INTEGER` check is exact.
 */
function decimal(bytes: Uint8Array, from: number, to: number): number {
  let value = 0;
  for (let i = from; i < to; i++) value = value * 10 + (bytes[i]! - DIGIT_0);
  return value;
}

/** Whether `bytes` at `start` hold the characters of `text` (ASCII). */
function sameAscii(bytes: Uint8Array, start: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) !== bytes[start + i]) return false;
  }
  return true;
}

function typeName(bytes: Uint8Array, start: number, length: number, hash: number): string {
  const slot = hash & (TYPE_SLOTS - 1);
  const cached = typeNames[slot];
  if (cached !== undefined && cached.length === length && sameAscii(bytes, start, cached)) return cached;
  const name = Buffer.from(bytes.buffer, bytes.byteOffset + start, length).toString('latin1');
  typeNames[slot] = name;
  return name;
}

// ---- writing ---------------------------------------------------------------------------------

/** `{"type":"T"` as bytes for the types written so far; cleared if it ever grows large. */
const typePrefixes = new Map<string, Buffer>();
const MAX_TYPE_PREFIXES = 256;

/**
 * The bytes `{"type":"T"` that start the compact form of `header` with `id` in place of its own,
 * or undefined when the header has other fields or values the compact form cannot carry (JSON
 * is used then).
 */
export function compactHeaderStart(header: FrameHeader, id: number | undefined): Buffer | undefined {
  if (id !== undefined && !(Number.isSafeInteger(id) && id >= 0)) return undefined;
  if (header === lastFrozen) return lastFrozenStart;
  for (const key in header) {
    if (key !== 'type' && key !== 'id' && key !== 'size') return undefined;
  }
  const start = typePrefix(header.type);
  if (Object.isFrozen(header)) {
    lastFrozen = header;
    lastFrozenStart = start;
  }
  return start;
}

/**
 * The last frozen header seen and its start. A service's reply headers are shared frozen objects
 * (echo's `{ type: 'echo' }`), sent over and over; frozen, their fields cannot change, so their
 * start is found once instead of by walking their keys and looking up their type each time.
 */
let lastFrozen: FrameHeader | undefined;
let lastFrozenStart: Buffer | undefined;

/** Length of the compact header that starts with `start`; `size` is written when `withSize`. */
export function compactHeaderLength(
  start: Buffer,
  id: number | undefined,
  size: number,
  withSize: boolean,
): number {
  let length = start.length + 1;
  if (id !== undefined) length += ID_KEY.length + decimalLength(id);
  if (withSize) length += SIZE_KEY.length + decimalLength(size);
  return length;
}

/** Writes the compact header measured by `compactHeaderLength` into `out` at `at`. */
export function writeCompactHeader(
  out: Buffer,
  at: number,
  start: Buffer,
  id: number | undefined,
  size: number,
  withSize: boolean,
): void {
  at = put(out, at, start);
  if (id !== undefined) at = writeDecimal(out, put(out, at, ID_KEY), id);
  if (withSize) at = writeDecimal(out, put(out, at, SIZE_KEY), size);
  out[at] = BRACE_CLOSE;
}

/** Copies a few bytes; a loop beats `Buffer.copy`'s native call at these lengths. */
function put(out: Buffer, at: number, bytes: Buffer): number {
  for (let i = 0; i < bytes.length; i++) out[at + i] = bytes[i]!;
  return at + bytes.length;
}

function typePrefix(type: unknown): Buffer | undefined {
  if (typeof type !== 'string') return undefined;
  let prefix = typePrefixes.get(type);
  if (prefix === undefined) {
    if (!TYPE_PATTERN.test(type)) return undefined;
    if (typePrefixes.size >= MAX_TYPE_PREFIXES) typePrefixes.clear();
    prefix = Buffer.from(`{"type":"${type}"`, 'latin1');
    typePrefixes.set(type, prefix);
  }
  return prefix;
}

function decimalLength(value: number): number {
  let length = 1;
  for (let bound = 10; value >= bound && length < 16; bound *= 10) length++;
  return length;
}

/** Writes a non-negative safe integer in decimal at `at`; returns the offset after it. */
function writeDecimal(out: Buffer, at: number, value: number): number {
  const end = at + decimalLength(value);
  let rest = value;
  let i = end - 1;
  // Above 2^31 the digits come from floating-point division; below it, from integer division.
  for (; rest > 0x7fffffff; i--) {
    const next = Math.floor(rest / 10);
    out[i] = DIGIT_0 + (rest - next * 10);
    rest = next;
  }
  for (; i >= at; i--) {
    const next = (rest / 10) | 0;
    out[i] = DIGIT_0 + (rest - next * 10);
    rest = next;
  }
  return end;
}
