import type { BodyEdit } from './frame.js';

/** How an echo server changes what it sends back: as is, or upper-cased like the tutorials. */
export type EchoTransform = 'none' | 'upper';

/** Every transform, for option checks and help texts. */
export const ECHO_TRANSFORMS: readonly EchoTransform[] = ['none', 'upper'];

/**
 * Upper-cases ASCII letters only, so binary and multi-byte UTF-8 pass through intact: a copy of
 * `bytes` (`upperAsciiInPlace` changes them where they already are).
 */
export function upperAscii(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(bytes.length);
  out.set(bytes);
  upperAsciiInPlace(out, 0, out.length);
  return out;
}

/**
 * Upper-cases the ASCII letters of `out[start, end)` in place (a `BodyEdit`), four bytes at a
 * time (a byte-wise test done with word arithmetic): per-byte typed-array access costs ~20
 * instructions a byte in V8, which made a 64 KiB echo far slower than the copy itself.
 */
export const upperAsciiInPlace: BodyEdit = (out, start, end) => {
  const length = end - start;
  const head = Math.min(length, (4 - ((out.byteOffset + start) % 4)) % 4);
  const words = (length - head) >>> 2;
  upperBytes(out, start, start + head);
  if (words > 0) {
    const view = wordsOf(out.buffer);
    const first = (out.byteOffset + start + head) >>> 2;
    for (let i = first; i < first + words; i++) {
      const word = view[i]!;
      const low7 = word & 0x7f7f7f7f;
      // Per byte, bit 7 of: (b & 0x7f) >= 'a', (b & 0x7f) > 'z', and b itself >= 0x80. No byte
      // carries into the next: 0x7f + 0x1f < 0x100.
      const isLower = (low7 + 0x1f1f1f1f) & ~(low7 + 0x05050505) & ~word & 0x80808080;
      view[i] = word ^ (isLower >>> 2);
    }
  }
  upperBytes(out, start + head + words * 4, end);
};

/** The last buffer memory seen as words, and that view: small buffers share Node's pool. */
let wordsMemory: ArrayBufferLike | undefined;
let wordsView: Int32Array<ArrayBufferLike> = new Int32Array(0);

/**
 * All of `memory` as 32-bit words. Small `Buffer.allocUnsafe` results are slices of one 8 KiB
 * pool, and an outgoing batch's bodies lie in one 16 KiB slab, so one view serves many calls:
 * creating a typed array per call cost more than upper-casing 64 bytes.
 */
function wordsOf(memory: ArrayBufferLike): Int32Array {
  if (memory !== wordsMemory) {
    wordsMemory = memory;
    wordsView = new Int32Array(memory, 0, memory.byteLength >>> 2);
  }
  return wordsView;
}

function upperBytes(out: Buffer, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const byte = out[i]!;
    if (byte >= 0x61 && byte <= 0x7a) out[i] = byte - 0x20;
  }
}
