/**
 * `put`: a file arrives in `data` frames and becomes visible only when it is whole and proven.
 *
 * The bytes go to a reserved partial file next to the target (`.sockit-part-…`), which the
 * jail never lets a client name. `put-end` carries the client's digest; only when size and
 * digest match is the partial fsynced, given its mode and mtime, and renamed over the target
 * (or hard-linked, which fails instead of replacing, when overwriting is not allowed). The
 * checksum is negotiated: the first of the client's `checksums` this side knows, SHA-256 for a
 * client that offers none. A
 * mismatch removes the partial and answers INTEGRITY. A broken transfer keeps the partial, so
 * a put with `resume` continues from its size; the kept prefix is hashed again so the final
 * digest still covers the whole file.
 */
import { constants } from 'node:fs';
import { type FileHandle, open, statfs, unlink } from 'node:fs/promises';
import { SockitError } from '../../errors.js';
import type { HeaderOfType } from '../../protocol/catalogue.js';
import {
  type ChecksumName,
  type CompressionName,
  digestField,
  digestFields,
  FILES_FRAMES,
  negotiateChecksum,
  negotiateCompression,
  partialUploadName,
} from '../../protocol/files.js';
import type { Frame, FrameHeader } from '../../protocol/frame.js';
import type { ServerRequest } from '../../server/request.js';
import { type Checksum, createChecksum } from '../../storage/checksum.js';
import { AVAILABLE_COMPRESSIONS, chunkParts } from '../../storage/chunk-compression.js';
import { hashRange } from '../../storage/file-reader.js';
import { SequentialWriter } from '../../storage/file-writer.js';
import { publishFile } from '../../storage/publish.js';
import { type FilesContext, requireAuthenticated } from './context.js';
import { fsFailure } from './fs-errors.js';
import type { JailedDir } from './jail.js';
import { parseRemotePath } from './path.js';
import type { UploadLock } from './upload-locks.js';

const { O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;

/** What a put asks for, checked. */
interface PutRequest {
  names: string[];
  path: string;
  fileSize: number;
  overwrite: boolean;
  resume: boolean;
  mode: number | undefined;
  mtimeMs: number | undefined;
  /** Negotiated from the client's `checksums`. */
  checksum: ChecksumName;
  /** Negotiated from the client's `compress`; undefined: every chunk arrives plain. */
  compression: CompressionName | undefined;
}

export async function handlePut(request: ServerRequest, context: FilesContext): Promise<void> {
  requireAuthenticated(request);
  const put = readPutRequest(request);
  if (put.fileSize > context.maxFileSize) {
    throw new SockitError(
      'TOO_LARGE',
      `${put.path} is ${put.fileSize} bytes, over this server's limit of ${context.maxFileSize} bytes per file`,
    );
  }
  const name = put.names.at(-1)!;
  // Our own abort: the client's cancel or disconnect, or a resumed upload taking over. Set up
  // before the first await, so a disconnect or an early data frame during it is not missed.
  const stop = new AbortController();
  const onRequestAbort = (): void => stop.abort(request.signal.reason);
  if (request.signal.aborted) onRequestAbort();
  else request.signal.addEventListener('abort', onRequestAbort, { once: true });
  request.onFrame = () => {
    stop.abort(new SockitError('BAD_REQUEST', 'send "data" frames only after "put-ready"'));
  };
  let dir: JailedDir | undefined;
  let lock: UploadLock | undefined;
  let partial: FileHandle | undefined;
  let partialPath: string | undefined;
  try {
    dir = await context.jail.openDir(put.names.slice(0, -1), { create: true });
    stop.signal.throwIfAborted();
    const existing = await context.jail.entryStats(dir, name);
    if (existing?.isDirectory()) throw new SockitError('CONFLICT', `${put.path} is a directory`);
    if (existing && !put.overwrite) {
      throw new SockitError(
        'CONFLICT',
        `${put.path} already exists: pass overwrite (--overwrite) to replace it`,
      );
    }
    const dirKey = await dir.key();
    lock = await context.locks.acquire(`${dirKey}/${name}`, {
      takeover: put.resume,
      abort: (reason) => stop.abort(reason),
      path: put.path,
    });
    // From the moment it is stopped, a new upload of this name may wait for it to wind down.
    const held = lock;
    stop.signal.addEventListener('abort', () => held.markReleasing(), { once: true });
    stop.signal.throwIfAborted();
    partialPath = dir.at(partialUploadName(name));
    partial = await openPartial(partialPath, put);
    let offset = put.resume ? (await partial.stat()).size : 0;
    if (offset > put.fileSize) {
      await partial.truncate(0);
      offset = 0;
    }
    await checkFreeSpace(dir, put, put.fileSize - offset, context.reserveBytes);
    const hash = await createChecksum(put.checksum);
    if (offset > 0) await hashRange(partial, 0, offset, hash, stop.signal);
    stop.signal.throwIfAborted();
    request.send({
      type: FILES_FRAMES.putReady,
      offset,
      checksum: put.checksum,
      ...(put.compression ? { compression: put.compression } : {}),
      // The client compares this with its own prefix before sending the rest (a sockit extension).
      ...(offset > 0 ? digestFields(put.checksum, hash.digest(), true) : {}),
    });

    const received = await receive(request, partial, offset, put, hash, stop.signal, context, lock);
    const digest = hash.digest();
    if (received.end !== put.fileSize) {
      throw new SockitError(
        'INTEGRITY',
        `${put.path}: received ${received.end} of ${put.fileSize} bytes; nothing was published`,
      );
    }
    if (digest !== received.digest) {
      throw new SockitError(
        'INTEGRITY',
        `${put.path}: ${put.checksum} of the received bytes does not match the sender's; nothing was published, send it again`,
      );
    }
    await finishFile(partial, put);
    partial = undefined;
    await dir.assertStillInside();
    await publish(dir, name, partialPath, put);
    // The rename itself must survive a crash too: the directory entry is flushed before
    // put-done, in an fsync shared with the other publishes into this directory.
    await context.directorySyncs.sync(dirKey, dir.handle);
    request.reply({
      type: FILES_FRAMES.putDone,
      fileSize: put.fileSize,
      ...digestFields(put.checksum, digest),
    });
  } catch (error) {
    if (partial && partialPath) {
      await keepOrDiscard(request, partial, partialPath, put, error);
      partial = undefined;
    }
    throw fsFailure(error, put.path);
  } finally {
    request.signal.removeEventListener('abort', onRequestAbort);
    await partial?.close().catch(() => {});
    lock?.release();
    await dir?.close();
  }
}

/**
 * The partial file of a put. Its name is predictable, so whoever can write the directory could
 * have put something there first: a kept partial is taken only if it is a regular file with one
 * link (a hard link to a file elsewhere would have that file appended to, or truncated), opened
 * without following a symlink; a new partial replaces whatever had the name and is created
 * exclusively (O_EXCL), never opened through an existing entry.
 */
async function openPartial(path: string, put: PutRequest): Promise<FileHandle> {
  if (put.resume) {
    let kept: FileHandle | undefined;
    try {
      kept = await open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') throw notOwnPartial(put, 'is a symlink');
      if (code !== 'ENOENT') throw error;
    }
    if (kept) {
      try {
        const stats = await kept.stat();
        if (!stats.isFile()) throw notOwnPartial(put, 'is not a regular file');
        if (stats.nlink !== 1)
          throw notOwnPartial(put, `has ${stats.nlink} links (a hard link to another file)`);
        return kept;
      } catch (error) {
        await kept.close().catch(() => {});
        throw error;
      }
    }
  }
  const create = (): Promise<FileHandle> =>
    open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK, 0o600);
  try {
    // Usually nothing has the name: one exclusive create, no unlink that fails with ENOENT.
    return await create();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  // Unlinking drops a planted link (or an old partial) without touching what it points to.
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  return create();
}

function notOwnPartial(put: PutRequest, what: string): SockitError {
  return new SockitError(
    'FORBIDDEN',
    `the kept partial upload of ${put.path} ${what}: it is not one this server wrote; upload again without resume to replace it`,
  );
}

/** The put's fields as the service uses them; the catalogue checked their types and bounds. */
function readPutRequest(request: ServerRequest): PutRequest {
  const header = request.header as HeaderOfType<'put'>;
  const names = parseRemotePath(header.path);
  return {
    names,
    path: names.join('/'),
    fileSize: header.fileSize,
    overwrite: header.overwrite === true,
    resume: header.resume === true,
    mode: header.mode,
    mtimeMs: header.mtimeMs,
    checksum: negotiateChecksum(header.checksums),
    compression: negotiateCompression(header.compress, AVAILABLE_COMPRESSIONS),
  };
}

async function checkFreeSpace(
  dir: JailedDir,
  put: PutRequest,
  remaining: number,
  reserve: number,
): Promise<void> {
  const space = await statfs(dir.at('.')).catch(() => undefined);
  if (space === undefined) return; // a file system that cannot tell: let ENOSPC speak later
  const available = space.bavail * space.bsize;
  if (available < remaining + reserve) {
    throw new SockitError(
      'UNAVAILABLE',
      `not enough free space on the server for ${put.path}: ${remaining} bytes needed` +
        `${reserve > 0 ? ` (plus ${reserve} kept free)` : ''}, ${available} available`,
    );
  }
}

/**
 * Takes `data` frames until `put-end`, writing them in order while the socket waits for the
 * disk. Resolves with the end position and the client's digest; rejects on abort, a stall, a
 * frame that does not belong, or more bytes than announced.
 */
function receive(
  request: ServerRequest,
  partial: FileHandle,
  offset: number,
  put: PutRequest,
  hash: Checksum,
  signal: AbortSignal,
  context: FilesContext,
  lock: UploadLock,
): Promise<{ end: number; digest: string }> {
  let fail!: (error: unknown) => void;
  const writer = new SequentialWriter(partial, offset, {
    onError: (error) => fail(fsFailure(error, put.path)),
  });
  let received = offset;
  const outcome = { bytesIn: 0 };
  request.outcome = outcome;
  let stallTimer: NodeJS.Timeout | undefined;
  let finished = false;
  const ended = new Promise<FrameHeader>((resolve, reject) => {
    fail = reject;
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    if (signal.aborted) reject(signal.reason);
    const armStall = (): void => {
      if (context.stallTimeoutMs === 0 || finished) return;
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => {
        // Our own disk being slow is not the client stalling.
        if (writer.busy) armStall();
        else
          reject(
            new SockitError(
              'TIMEOUT',
              `${put.path}: no data for ${context.stallTimeoutMs} ms; the partial upload is kept, resume it`,
            ),
          );
      }, context.stallTimeoutMs);
    };
    armStall();
    request.onFrame = (frame: Frame) => {
      if (finished) return;
      armStall();
      const type = frame.header.type;
      if (type === FILES_FRAMES.data || type === FILES_FRAMES.dataCompressed) {
        const take = (parts: readonly Buffer[]): Promise<void> | undefined => {
          if (finished) return undefined;
          let length = 0;
          for (const part of parts) length += part.length;
          if (received + length > put.fileSize) {
            reject(
              new SockitError('INTEGRITY', `${put.path}: more bytes than the announced ${put.fileSize}`),
            );
            return undefined;
          }
          received += length;
          outcome.bytesIn += length;
          // Socket chunks and decompressed ones are fresh allocations: queued without a copy.
          let wait: Promise<void> | undefined;
          for (const part of parts) {
            hash.update(part);
            wait = writer.write(part) ?? wait;
          }
          return wait;
        };
        let bytes: readonly Buffer[] | Promise<readonly Buffer[]>;
        try {
          bytes = chunkParts(frame, put.compression);
        } catch (error) {
          reject(error);
          return;
        }
        // Decompressing holds the socket, so chunks are hashed and written in order.
        return bytes instanceof Promise ? bytes.then(take, reject) : take(bytes);
      }
      if (type === FILES_FRAMES.putEnd) {
        resolve(frame.header);
        return;
      }
      reject(new SockitError('BAD_REQUEST', `a put takes "data" and "put-end" frames, not "${type}"`));
    };
  });
  const cleanup = (): void => {
    finished = true;
    clearTimeout(stallTimer);
    // Frames still in flight after a failure are dropped, not answered.
    request.onFrame = () => {};
  };
  return ended.then(
    async (end) => {
      cleanup();
      const position = await writer.flush().catch((error: unknown) => {
        throw fsFailure(error, put.path);
      });
      const digest = digestField(end, put.checksum);
      if (digest === undefined) {
        throw new SockitError(
          'BAD_REQUEST',
          `put-end needs "digest": the hex ${put.checksum} of the whole file`,
        );
      }
      return { end: position, digest };
    },
    async (error: unknown) => {
      cleanup();
      lock.markReleasing();
      // Whatever arrived intact stays on disk for a resume.
      await writer.flush().catch(() => {});
      throw error;
    },
  );
}

/** Gives the verified partial its mode and mtime and makes it durable before it is published. */
async function finishFile(partial: FileHandle, put: PutRequest): Promise<void> {
  // Owner read/write always: the server must be able to serve and delete what it stores.
  await partial.chmod(((put.mode ?? 0o644) & 0o777) | 0o600);
  if (put.mtimeMs !== undefined) await partial.utimes(new Date(), new Date(put.mtimeMs));
  await partial.sync();
  await partial.close();
}

/** Renames the partial onto the target (overwrite) or links it there only if the name is free. */
async function publish(dir: JailedDir, name: string, partialPath: string, put: PutRequest): Promise<void> {
  let published: boolean;
  try {
    published = await publishFile(partialPath, dir.at(name), put.overwrite);
  } catch (error) {
    throw fsFailure(error, put.path);
  }
  if (!published) {
    throw new SockitError(
      'CONFLICT',
      `${put.path} appeared while it was uploaded; the verified upload is kept: put again with overwrite and resume to publish it without resending`,
    );
  }
}

/**
 * After a failed put: a partial whose bytes are known to be wrong (INTEGRITY) or that holds
 * nothing is removed; anything else is kept for a resume.
 */
async function keepOrDiscard(
  request: ServerRequest,
  partial: FileHandle,
  partialPath: string,
  put: PutRequest,
  error: unknown,
): Promise<void> {
  const kept = (await partial.stat().catch(() => undefined))?.size ?? 0;
  await partial.close().catch(() => {});
  if ((error instanceof SockitError && error.code === 'INTEGRITY') || kept === 0) {
    await unlink(partialPath).catch(() => {});
    return;
  }
  request.connection.log.info('upload interrupted; partial kept for a resume', {
    path: put.path,
    kept,
    of: put.fileSize,
    reason: error instanceof Error ? error.message : String(error),
  });
}
