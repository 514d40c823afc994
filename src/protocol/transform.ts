/** How an echo server changes what it sends back: as is, or upper-cased like the tutorials. */
export type EchoTransform = 'none' | 'upper';

/** Upper-cases ASCII letters only, so binary and multi-byte UTF-8 pass through intact. */
export function upperAscii(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    out[i] = byte >= 0x61 && byte <= 0x7a ? byte - 0x20 : byte;
  }
  return out;
}
