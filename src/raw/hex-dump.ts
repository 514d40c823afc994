/** Direction of a dumped chunk: `>` we sent it, `<` we received it. */
export type Direction = '>' | '<';

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/**
 * Formats bytes like `hexdump -C`, one 16-byte row per line, with the stream offset, a direction
 * marker and an optional label (the peer when several clients share one dump):
 *
 * `> 00000010  68 65 6c 6c 6f 20 77 6f  72 6c 64 0a              |hello world.|`
 */
export function formatHexRows(bytes: Uint8Array, offset: number, direction: Direction, label = ''): string {
  const prefix = label === '' ? `${direction} ` : `${label} ${direction} `;
  let out = '';
  for (let row = 0; row < bytes.length; row += 16) {
    let hex = '';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      const index = row + i;
      if (i === 8) hex += ' ';
      if (index < bytes.length) {
        const byte = bytes[index]!;
        hex += `${HEX[byte]} `;
        ascii += byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : '.';
      } else {
        hex += '   ';
      }
    }
    out += `${prefix}${(offset + row).toString(16).padStart(8, '0')}  ${hex} |${ascii}|\n`;
  }
  return out;
}

/** A per-connection dumper: keeps one offset per direction so rows line up with the stream. */
export class HexDumper {
  readonly #write: (text: string) => void;
  readonly #label: string;
  #sent = 0;
  #received = 0;

  /** `write` defaults to stderr, which Node writes synchronously for files, pipes and terminals. */
  constructor(label = '', write: (text: string) => void = (text) => process.stderr.write(text)) {
    this.#label = label;
    this.#write = write;
  }

  sent(chunk: Uint8Array): void {
    this.#write(formatHexRows(chunk, this.#sent, '>', this.#label));
    this.#sent += chunk.length;
  }

  received(chunk: Uint8Array): void {
    this.#write(formatHexRows(chunk, this.#received, '<', this.#label));
    this.#received += chunk.length;
  }
}
