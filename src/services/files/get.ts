import { SockitError } from '../../errors.js';
import type { HeaderOfType } from '../../protocol/catalogue.js';
import { digestFields, FILES_FRAMES, negotiateChecksum, negotiateCompression } from '../../protocol/files.js';
import type { ServerRequest } from '../../server/request.js';
import { createChecksum } from '../../storage/checksum.js';
import { AVAILABLE_COMPRESSIONS, encodeChunks } from '../../storage/chunk-compression.js';
import { hashRange, readChunks } from '../../storage/file-reader.js';
import { type FilesContext, requireAuthenticated } from './context.js';
import { fsFailure } from './fs-errors.js';
import { parseRemotePath } from './path.js';

/**
 * `get`: `get-start` (size, mode, mtime), the bytes from `offset` in `data` frames, then
 * `get-end` with the digest of the whole file (a kept prefix is hashed, not sent) in the
 * checksum negotiated from the request's `checksums` (SHA-256 when it names none). With a
 * compression negotiated from `compress`, chunks that shrink go as `data-z`. Sending
 * waits for the socket to drain, so a slow client holds one chunk of server memory, not a file.
 */
export async function handleGet(request: ServerRequest, context: FilesContext): Promise<void> {
  requireAuthenticated(request);
  const header = request.header as HeaderOfType<'get'>;
  const names = parseRemotePath(header.path);
  const path = names.join('/');
  const offset = header.offset ?? 0;
  const checksum = negotiateChecksum(header.checksums);
  const compression = negotiateCompression(header.compress, AVAILABLE_COMPRESSIONS);
  const { handle, stats } = await context.jail.openFile(names);
  try {
    const fileSize = stats.size;
    if (offset > fileSize) {
      throw new SockitError(
        'BAD_REQUEST',
        `offset ${offset} is past the end of ${path} (${fileSize} bytes): start the download again`,
      );
    }
    const { signal } = request;
    const hash = await createChecksum(checksum);
    if (offset > 0) await hashRange(handle, 0, offset, hash, signal);
    await request.write({
      type: FILES_FRAMES.getStart,
      fileSize,
      mode: stats.mode & 0o7777,
      mtimeMs: stats.mtimeMs,
      checksum,
      ...(compression ? { compression } : {}),
      // Lets a resuming client check that its kept prefix is this file's (a sockit extension).
      ...(offset > 0 ? digestFields(checksum, hash.digest(), true) : {}),
    });
    // The next chunk is read and hashed while the previous one is still being flushed.
    let flushing: Promise<void> | undefined;
    const outcome = { bytesOut: 0 };
    request.outcome = outcome;
    for await (const chunk of encodeChunks(readChunks(handle, offset, fileSize), compression)) {
      signal.throwIfAborted();
      hash.update(chunk.raw);
      outcome.bytesOut += chunk.raw.length;
      if (flushing) await flushing;
      signal.throwIfAborted();
      flushing = request.send({ type: chunk.type }, chunk.body) ? undefined : request.drained();
      // A rejection (the client went away) surfaces at the next await, not as an unhandled one.
      flushing?.catch(() => {});
    }
    if (flushing) await flushing;
    signal.throwIfAborted();
    request.reply({ type: FILES_FRAMES.getEnd, ...digestFields(checksum, hash.digest()) });
  } catch (error) {
    throw fsFailure(error, path);
  } finally {
    await handle.close().catch(() => {});
  }
}
