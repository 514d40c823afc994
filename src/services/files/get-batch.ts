/**
 * `get-batch`: many small files of one directory in one reply, the way `sync` pulls a tree of
 * small files. The reply lists each file sent (size, mode, mtime, digest in the negotiated
 * checksum) and carries their bytes back to back; a name that is no longer a small regular file
 * (grown, replaced by a link or a directory, gone) is listed in `skipped` and the client gets it
 * on its own. Files are opened through the jail's directory without following links, and read
 * synchronously (a batch is about 1 MiB; see storage/small-file.ts).
 */
import { SockitError } from '../../errors.js';
import type { HeaderOfType } from '../../protocol/catalogue.js';
import {
  BATCH_BODY_BYTES,
  BATCH_MAX_FILE_BYTES,
  type BatchFile,
  FILES_FRAMES,
  negotiateChecksum,
} from '../../protocol/files.js';
import type { ServerRequest } from '../../server/request.js';
import { digestOf } from '../../storage/checksum.js';
import { readSmallFile } from '../../storage/small-file.js';
import { type FilesContext, requireAuthenticated } from './context.js';
import { parseRemotePath } from './path.js';

/** Handles one `get-batch`: the small files asked for, read through the jail's directory. */
export async function handleGetBatch(request: ServerRequest, context: FilesContext): Promise<void> {
  requireAuthenticated(request);
  const names = parseRemotePath(request.header.path ?? '', { allowRoot: true });
  const checksum = negotiateChecksum(request.header.checksums);
  const wanted = (request.header as HeaderOfType<'get-batch'>).names;
  for (const name of wanted) {
    const inner = parseRemotePath(name);
    if (inner.length !== 1 || inner[0] !== name) {
      throw new SockitError('BAD_REQUEST', `get-batch: ${JSON.stringify(name)} is not one plain name`);
    }
  }
  const dir = await context.jail.openDir(names);
  try {
    const files: BatchFile[] = [];
    const bodies: Buffer[] = [];
    const skipped: string[] = [];
    let bytes = 0;
    for (const name of wanted) {
      const file = bytes < BATCH_BODY_BYTES ? readSmallFile(dir.at(name), BATCH_MAX_FILE_BYTES) : undefined;
      if (file === undefined) {
        skipped.push(name);
        continue;
      }
      files.push({
        name,
        fileSize: file.bytes.length,
        mode: file.mode,
        mtimeMs: file.mtimeMs,
        digest: await digestOf(checksum, file.bytes),
      });
      bodies.push(file.bytes);
      bytes += file.bytes.length;
    }
    request.signal.throwIfAborted();
    // Counted as file bytes sent, as a get's are (metrics).
    request.outcome = { bytesOut: bytes };
    request.reply({ type: FILES_FRAMES.getBatchResult, checksum, files, skipped }, Buffer.concat(bodies));
  } finally {
    await dir.close();
  }
}
