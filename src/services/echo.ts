import type { Service } from '../server/service.js';

/** How the echo service changes what it sends back: as is, or upper-cased like the tutorials. */
export type EchoTransform = 'none' | 'upper';

export interface EchoOptions {
  transform?: EchoTransform;
}

/** Upper-cases ASCII letters only, so binary and multi-byte UTF-8 pass through intact. */
export function upperAscii(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    out[i] = byte >= 0x61 && byte <= 0x7a ? byte - 0x20 : byte;
  }
  return out;
}

/** Echo: `{"type":"echo","id":N}` + body comes back with the same id, through the transform. */
export function echoService(options: EchoOptions = {}): Service {
  const transform = options.transform ?? 'none';
  if (transform !== 'none' && transform !== 'upper') {
    throw new TypeError(`echo transform must be "none" or "upper", got "${String(transform)}"`);
  }
  return {
    name: 'echo',
    requests: {
      echo(request) {
        request.reply({ type: 'echo' }, transform === 'upper' ? upperAscii(request.body) : request.body);
      },
    },
  };
}
