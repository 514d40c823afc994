/**
 * `put-batch`: many small files of one directory in one request, the way `sync` sends a tree of
 * small files. Each file gets what `put` gives it, verified by its digest (all are checked
 * before any is written), written to its reserved partial name, given its mode and mtime,
 * fsynced, then renamed over its target; the directory is fsynced once for the whole batch
 * (shared with other publishes into it) before `put-batch-done`.
 *
 * Why a batch: a `put` costs five frames and about twenty file-system calls on the libuv pool
 * per file, which is all of the time for a 4 KiB file. Here the directory is opened through the
 * jail once per batch, and the per-file calls are synchronous: a batch is at most 1 MiB on
 * one local disk, so it holds the event loop for a few milliseconds, as rsync's receiver does.
 */
import { renameSync, unlinkSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { SockitError } from '../../errors.js';
import { FILES_FRAMES, partialUploadName, splitBatch } from '../../protocol/files.js';
import type { ServerRequest } from '../../server/request.js';
import { digestOf } from '../../storage/checksum.js';
import { writeSmallFile } from '../../storage/small-file.js';
import { type FilesContext, requireAuthenticated } from './context.js';
import { fsFailure } from './fs-errors.js';
import { parseRemotePath } from './path.js';
import type { UploadLock } from './upload-locks.js';

/** Handles one `put-batch`: checks every file, then publishes them all (see the file comment). */
export async function handlePutBatch(request: ServerRequest, context: FilesContext): Promise<void> {
  requireAuthenticated(request);
  const names = parseRemotePath(request.header.path ?? '', { allowRoot: true });
  const checksum = request.header.checksum;
  // Socket chunks are fresh allocations, so the body's views stay valid across awaits (as put's
  // queued data frames do): no copy.
  const files = splitBatch(request.header, request.body);
  for (const { file, data } of files) {
    const inner = parseRemotePath(file.name);
    const path = [...names, file.name].join('/');
    if (inner.length !== 1 || inner[0] !== file.name) {
      throw new SockitError('BAD_REQUEST', `put-batch: ${JSON.stringify(file.name)} is not one plain name`);
    }
    if (file.fileSize > context.maxFileSize) {
      throw new SockitError(
        'TOO_LARGE',
        `${path} is over this server's limit of ${context.maxFileSize} bytes`,
      );
    }
    if ((await digestOf(checksum as Parameters<typeof digestOf>[0], data)) !== file.digest) {
      throw new SockitError(
        'INTEGRITY',
        `${path}: ${String(checksum)} of the received bytes does not match the sender's; nothing of the batch was published`,
      );
    }
  }
  const dir = await context.jail.openDir(names, { create: true });
  const locks: UploadLock[] = [];
  const written: { temp: string; target: string }[] = [];
  try {
    const dirKey = await dir.key();
    const bytes = files.reduce((sum, { data }) => sum + data.length, 0);
    const space = await statfs(dir.at('.')).catch(() => undefined);
    if (space && space.bavail * space.bsize < bytes + context.reserveBytes) {
      throw new SockitError(
        'UNAVAILABLE',
        `not enough free space on the server for ${bytes} bytes in ${JSON.stringify(names.join('/'))}`,
      );
    }
    for (const { file } of files) {
      locks.push(
        await context.locks.acquire(`${dirKey}/${file.name}`, {
          takeover: false,
          abort: () => {},
          path: [...names, file.name].join('/'),
        }),
      );
    }
    request.signal.throwIfAborted();
    for (const { file, data } of files) {
      const temp = dir.at(partialUploadName(file.name));
      written.push({ temp, target: dir.at(file.name) });
      writeSmallFile(temp, { bytes: data, mode: file.mode, mtimeMs: file.mtimeMs });
    }
    await dir.assertStillInside();
    // Published one by one; on a failure the rest are still partials, removed below.
    while (written.length > 0) {
      renameSync(written[0]!.temp, written[0]!.target);
      written.shift();
    }
    await context.directorySyncs.sync(dirKey, dir.handle);
    // Counted as file bytes received, as a put's are (metrics).
    request.outcome = { bytesIn: bytes };
    request.reply({ type: FILES_FRAMES.putBatchDone, files: files.length });
  } catch (error) {
    for (const { temp } of written) {
      try {
        unlinkSync(temp);
      } catch {}
    }
    throw fsFailure(error, names.join('/'));
  } finally {
    for (const lock of locks) lock.release();
    await dir.close();
  }
}
