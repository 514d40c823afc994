import type { FileHandle } from 'node:fs/promises';
import { cancelled, SockitError } from '../errors.js';
import { DATA_CHUNK_BYTES } from '../protocol/files.js';

/**
 * Reads `[start, end)` of a file as chunks of at most `chunkSize` bytes, one read ahead so the
 * disk works while the caller sends. Every chunk is a fresh buffer: a socket may still hold the
 * previous one. A file that shrinks underneath ends in an INTEGRITY error rather than short data.
 */
export async function* readChunks(
  handle: FileHandle,
  start: number,
  end: number,
  chunkSize = DATA_CHUNK_BYTES,
): AsyncGenerator<Buffer> {
  let position = start;
  const readAt = async (at: number): Promise<Buffer> => {
    const length = Math.min(chunkSize, end - at);
    const buffer = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await handle.read(buffer, filled, length - filled, at + filled);
      if (bytesRead === 0) {
        throw new SockitError('INTEGRITY', 'the file became shorter while it was being read; try again');
      }
      filled += bytesRead;
    }
    return buffer;
  };
  let next = position < end ? readAt(position) : undefined;
  // A rejected read-ahead that is never awaited (the caller stopped early) must stay quiet.
  next?.catch(() => {});
  while (next) {
    const chunk = await next;
    position += chunk.length;
    next = position < end ? readAt(position) : undefined;
    next?.catch(() => {});
    yield chunk;
  }
}

/** Feeds `[start, end)` of a file into `hash` (the kept prefix of a resumed transfer). */
export async function hashRange(
  handle: FileHandle,
  start: number,
  end: number,
  hash: { update(data: Uint8Array): unknown },
  signal?: AbortSignal,
): Promise<void> {
  for await (const chunk of readChunks(handle, start, end, 1024 * 1024)) {
    if (signal?.aborted) throw cancelled(signal.reason);
    hash.update(chunk);
  }
}
