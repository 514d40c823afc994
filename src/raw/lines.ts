import { createReadStream } from 'node:fs';
import type { Input } from './stdio.js';

const NEWLINE = 0x0a;

/** A readable stream for an input, whatever its kind (line-oriented modes need no fast path). */
export function inputStream(input: Input): NodeJS.ReadableStream {
  return input.kind === 'fd' ? createReadStream('', { fd: input.fd, autoClose: false }) : input.stream;
}

/**
 * Calls `onLine` for every line of `stream`, newline included; a last line without one is
 * delivered at EOF. Resolves at EOF.
 */
export function forEachLine(stream: NodeJS.ReadableStream, onLine: (line: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let pending: Buffer[] = [];
    stream.on('data', (data: Buffer | string) => {
      const chunk = typeof data === 'string' ? Buffer.from(data) : data;
      let start = 0;
      for (let index = chunk.indexOf(NEWLINE); index !== -1; index = chunk.indexOf(NEWLINE, start)) {
        const piece = chunk.subarray(start, index + 1);
        onLine(pending.length > 0 ? Buffer.concat([...pending, piece]) : piece);
        pending = [];
        start = index + 1;
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
    });
    stream.once('end', () => {
      if (pending.length > 0) onLine(Buffer.concat(pending));
      resolve();
    });
    stream.once('error', reject);
  });
}
